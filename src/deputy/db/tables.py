"""The tables, as SQLAlchemy Core: the single description Alembic migrations are checked against.

Columns follow Prefect 3.9.1's names so the wire schemas map one to one. Differences that
are ours: ``total_run_time`` is float seconds (not an interval) and ``flow_run.state_id`` has no
foreign key (a state row only ever dies with its run).
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)

from deputy.db.types import Timestamp, json_type

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s__%(column_0_N_name)s",
    "uq": "uq_%(table_name)s__%(column_0_N_name)s",
    "ck": "ck_%(table_name)s__%(constraint_name)s",
    "fk": "fk_%(table_name)s__%(column_0_name)s__%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _base_columns(*, index_updated: bool = True) -> list[Column[object]]:
    """id, created and updated: every table has them. Tables written on every request
    (runs, events, logs) skip the ``updated`` index: no query reads by it, and every index
    is more pages to write per commit."""
    return [
        Column("id", Uuid, primary_key=True, default=uuid.uuid4),
        Column("created", Timestamp, nullable=False),
        Column("updated", Timestamp, nullable=False, index=index_updated),
    ]


def _owner(
    name: str, table: str, *, index: bool = True, constraint: str | None = None
) -> Column[object]:
    """A required reference to the row this one belongs to, deleted with it. ``constraint``
    names the foreign key where the conventional name is over PostgreSQL's 63 characters."""
    key = ForeignKey(f"{table}.id", ondelete="CASCADE", name=constraint)
    return Column(name, Uuid, key, nullable=False, index=index)


flow = Table(
    "flow",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False, unique=True),
    Column("tags", json_type(), nullable=False, server_default="[]"),
    Column("labels", json_type(nullable=True)),
    Index(None, "created"),
)

work_pool = Table(
    "work_pool",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False, unique=True),
    Column("description", String),
    Column("type", String, nullable=False, index=True),
    Column("base_job_template", json_type(), nullable=False, server_default="{}"),
    Column("is_paused", Boolean, nullable=False, server_default=text("false")),
    # No foreign key: pool and default queue point at each other; the service keeps them paired.
    Column("default_queue_id", Uuid),
    Column("concurrency_limit", Integer),
    Column("status", String, nullable=False, server_default="NOT_READY"),
    Column("last_transitioned_status_at", Timestamp),
    Column("last_status_event_id", Uuid),
    Column("storage_configuration", json_type(), nullable=False, server_default="{}"),
)

work_queue = Table(
    "work_queue",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False),
    Column("description", String, nullable=False, server_default=""),
    Column("is_paused", Boolean, nullable=False, server_default=text("false")),
    Column("concurrency_limit", Integer),
    Column("priority", Integer, nullable=False),
    Column("last_polled", Timestamp),
    Column("status", String, nullable=False, server_default="NOT_READY"),
    Column("filter", json_type(nullable=True)),
    Column(
        "work_pool_id",
        Uuid,
        ForeignKey("work_pool.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    UniqueConstraint("work_pool_id", "name"),
    Index(None, "work_pool_id", "priority"),
)

variable = Table(
    "variable",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False, unique=True),
    Column("value", json_type(nullable=True)),
    Column("tags", json_type(), nullable=False, server_default="[]"),
)

block_type = Table(
    "block_type",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False),
    Column("slug", String, nullable=False, unique=True),
    Column("logo_url", String),
    Column("documentation_url", String),
    Column("description", String),
    Column("code_example", String),
    # System types (secret, webhook, local-file-system): the API may not change or delete them.
    Column("is_protected", Boolean, nullable=False, server_default=text("false")),
)

block_schema = Table(
    "block_schema",
    metadata,
    *_base_columns(),
    Column("checksum", String, nullable=False),
    Column("fields", json_type(), nullable=False, server_default="{}"),
    Column("capabilities", json_type(), nullable=False, server_default="[]"),
    Column("version", String, nullable=False, server_default="non-versioned"),
    _owner("block_type_id", "block_type"),
    # Saving the same schema twice answers the first: decided by this constraint.
    UniqueConstraint("checksum", "version"),
    Index(None, "created"),
)

#: A schema's fields that are blocks themselves, by field name.
block_schema_reference = Table(
    "block_schema_reference",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False),
    _owner(
        "parent_block_schema_id", "block_schema", constraint="fk_block_schema_reference__parent"
    ),
    _owner(
        "reference_block_schema_id",
        "block_schema",
        constraint="fk_block_schema_reference__reference",
    ),
)

block_document = Table(
    "block_document",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False, index=True),
    _owner("block_type_id", "block_type", index=False),
    _owner("block_schema_id", "block_schema"),
    Column("is_anonymous", Boolean, nullable=False, server_default=text("false"), index=True),
    # The document's data (references taken out), as a Fernet token: see services/blocks/crypto.py.
    Column("encrypted_data", Text, nullable=False),
    Column("block_type_name", String),
    UniqueConstraint("block_type_id", "name"),
)

#: A document's fields that hold other documents (``parent.data[name]`` is ``reference``).
block_document_reference = Table(
    "block_document_reference",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False),
    _owner(
        "parent_block_document_id",
        "block_document",
        constraint="fk_block_document_reference__parent",
    ),
    _owner(
        "reference_block_document_id",
        "block_document",
        constraint="fk_block_document_reference__reference",
    ),
    CheckConstraint(
        "parent_block_document_id != reference_block_document_id", name="no_self_reference"
    ),
)

#: Server-wide facts kept in the database, by key (e.g. the check of the encryption key).
configuration = Table(
    "configuration",
    metadata,
    *_base_columns(),
    Column("key", String, nullable=False, unique=True),
    Column("value", json_type(), nullable=False),
)

concurrency_limit_v2 = Table(
    "concurrency_limit_v2",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False, unique=True),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("limit", Integer, nullable=False),
    Column("active_slots", Integer, nullable=False, server_default="0"),
    Column("denied_slots", Integer, nullable=False, server_default="0"),
    Column("slot_decay_per_second", Float, nullable=False, server_default="0"),
    Column("avg_slot_occupancy_seconds", Float, nullable=False, server_default="2"),
)

deployment = Table(
    "deployment",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False),
    Column("version", String),
    Column("version_info", json_type(nullable=True)),
    Column("description", Text),
    Column("flow_id", Uuid, ForeignKey("flow.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("work_queue_name", String, index=True),
    Column("work_queue_id", Uuid, ForeignKey("work_queue.id", ondelete="SET NULL"), index=True),
    Column("job_variables", json_type(), nullable=False, server_default="{}"),
    Column("path", String),
    Column("entrypoint", String),
    Column("pull_steps", json_type(nullable=True)),
    Column("last_polled", Timestamp),
    Column("status", String, nullable=False, server_default="NOT_READY"),
    Column("paused", Boolean, nullable=False, server_default=text("false"), index=True),
    Column(
        "concurrency_limit_id",
        Uuid,
        ForeignKey("concurrency_limit_v2.id", ondelete="SET NULL"),
    ),
    Column("concurrency_options", json_type(nullable=True)),
    Column("tags", json_type(), nullable=False, server_default="[]"),
    Column("labels", json_type(nullable=True)),
    Column("parameters", json_type(), nullable=False, server_default="{}"),
    Column("parameter_openapi_schema", json_type(nullable=True)),
    Column("enforce_parameter_schema", Boolean, nullable=False, server_default=text("true")),
    Column("created_by", json_type(nullable=True)),
    Column("updated_by", json_type(nullable=True)),
    Column(
        "infrastructure_document_id",
        Uuid,
        ForeignKey("block_document.id", ondelete="CASCADE"),
    ),
    Column(
        "storage_document_id",
        Uuid,
        ForeignKey("block_document.id", ondelete="CASCADE"),
    ),
    UniqueConstraint("flow_id", "name"),
    Index(None, "created"),
)

deployment_schedule = Table(
    "deployment_schedule",
    metadata,
    *_base_columns(),
    Column(
        "deployment_id",
        Uuid,
        ForeignKey("deployment.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("schedule", json_type(), nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("max_scheduled_runs", Integer),
    Column("parameters", json_type(), nullable=False, server_default="{}"),
    Column("slug", String),
    # Ours: when the scheduler must next look at this schedule (null: never again until it
    # is edited). An idle scheduler pass is one range scan of this index.
    Column("refill_at", Timestamp, index=True),
    UniqueConstraint("deployment_id", "slug"),
)

task_run = Table(
    "task_run",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False, index=True),
    Column("flow_run_id", Uuid, ForeignKey("flow_run.id", ondelete="CASCADE"), index=True),
    Column("task_key", String, nullable=False),
    Column("dynamic_key", String, nullable=False),
    Column("cache_key", String),
    Column("cache_expiration", Timestamp),
    Column("task_version", String),
    Column("flow_run_run_count", Integer, nullable=False, server_default="0"),
    Column("empirical_policy", json_type(), nullable=False, server_default="{}"),
    Column("task_inputs", json_type(), nullable=False, server_default="{}"),
    Column("tags", json_type(), nullable=False, server_default="[]"),
    Column("labels", json_type(nullable=True)),
    Column("state_id", Uuid, index=True),
    Column("state_type", String, index=True),
    Column("state_name", String, index=True),
    Column("state_timestamp", Timestamp),
    Column("run_count", Integer, nullable=False, server_default="0"),
    Column("expected_start_time", Timestamp),
    Column("next_scheduled_start_time", Timestamp),
    Column("start_time", Timestamp),
    Column("end_time", Timestamp),
    Column("total_run_time", Float, nullable=False, server_default="0"),
    UniqueConstraint("flow_run_id", "task_key", "dynamic_key"),
)

flow_run = Table(
    "flow_run",
    metadata,
    *_base_columns(index_updated=False),
    Column("name", String, nullable=False, index=True),
    # Indexed by uq_flow_run__flow_id_idempotency_key, whose first column it is.
    Column("flow_id", Uuid, ForeignKey("flow.id", ondelete="CASCADE"), nullable=False),
    # No foreign key, as in Prefect: runs outlive their deployment.
    Column("deployment_id", Uuid),
    Column("deployment_version", String),
    Column("work_queue_name", String, index=True),
    # Indexed first in ix_flow_run__work_queue_id_state_type_next_scheduled_start_time.
    Column("work_queue_id", Uuid, ForeignKey("work_queue.id", ondelete="SET NULL")),
    Column("flow_version", String),
    Column("parameters", json_type(), nullable=False, server_default="{}"),
    Column("idempotency_key", String),
    Column("context", json_type(), nullable=False, server_default="{}"),
    Column("empirical_policy", json_type(), nullable=False, server_default="{}"),
    Column("tags", json_type(), nullable=False, server_default="[]"),
    Column("labels", json_type(nullable=True)),
    Column("created_by", json_type(nullable=True)),
    Column("infrastructure_pid", String),
    Column("job_variables", json_type(nullable=True)),
    Column(
        "infrastructure_document_id",
        Uuid,
        ForeignKey("block_document.id", ondelete="CASCADE"),
        index=True,
    ),
    Column(
        "parent_task_run_id",
        Uuid,
        ForeignKey("task_run.id", ondelete="SET NULL", use_alter=True),
        index=True,
    ),
    Column("auto_scheduled", Boolean, nullable=False, server_default=text("false")),
    Column("state_id", Uuid),
    Column("state_type", String),
    Column("state_name", String),
    Column("state_timestamp", Timestamp),
    Column("run_count", Integer, nullable=False, server_default="0"),
    Column("expected_start_time", Timestamp),
    Column("next_scheduled_start_time", Timestamp),
    Column("start_time", Timestamp),
    Column("end_time", Timestamp),
    Column("total_run_time", Float, nullable=False, server_default="0"),
    UniqueConstraint("flow_id", "idempotency_key"),
    # Exactly one auto-scheduled run per deployment and slot, whichever schedule (or
    # scheduler process) proposes it; also the scheduler's index for a deployment's runs.
    # PostgreSQL's copy of the condition: see use_postgresql_options.
    Index(
        "uq_flow_run__auto_scheduled_slot",
        "deployment_id",
        "expected_start_time",
        unique=True,
        sqlite_where=text("auto_scheduled"),
    ),
    # A deployment's runs, and in expected-start order (a page of them read in order).
    Index(None, "deployment_id", "expected_start_time"),
    Index(None, "state_type", "next_scheduled_start_time"),
    Index(None, "work_queue_id", "state_type", "next_scheduled_start_time"),
    Index(None, "expected_start_time"),
    Index(None, "start_time"),
    Index(None, "end_time"),
    Index(None, "state_name"),
)

flow_run_state = Table(
    "flow_run_state",
    metadata,
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("created", Timestamp, nullable=False),
    Column("updated", Timestamp, nullable=False),
    Column(
        "flow_run_id",
        Uuid,
        ForeignKey("flow_run.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("type", String, nullable=False),
    Column("timestamp", Timestamp, nullable=False),
    Column("name", String, nullable=False),
    Column("message", Text),
    Column("state_details", json_type(), nullable=False, server_default="{}"),
    Column("data", json_type(nullable=True)),
    UniqueConstraint("flow_run_id", "timestamp"),
)

task_run_state = Table(
    "task_run_state",
    metadata,
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("created", Timestamp, nullable=False),
    Column("updated", Timestamp, nullable=False),
    Column(
        "task_run_id",
        Uuid,
        ForeignKey("task_run.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("type", String, nullable=False),
    Column("timestamp", Timestamp, nullable=False),
    Column("name", String, nullable=False),
    Column("message", Text),
    Column("state_details", json_type(), nullable=False, server_default="{}"),
    Column("data", json_type(nullable=True)),
    UniqueConstraint("task_run_id", "timestamp"),
)

#: COMPLETED task-run states by cache key, for set_state's cache rules (Prefect's
#: ``task_run_state_cache``). No foreign key, as in Prefect: an entry outlives its run.
task_run_state_cache = Table(
    "task_run_state_cache",
    metadata,
    *_base_columns(),
    Column("cache_key", String, nullable=False),
    Column("cache_expiration", Timestamp),
    Column("task_run_state_id", Uuid, nullable=False),
    Index(None, "cache_key", "created"),
)

worker = Table(
    "worker",
    metadata,
    *_base_columns(),
    Column("name", String, nullable=False),
    Column(
        "work_pool_id",
        Uuid,
        ForeignKey("work_pool.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("last_heartbeat_time", Timestamp, nullable=False),
    Column("heartbeat_interval_seconds", Integer),
    Column("status", String, nullable=False, server_default="OFFLINE"),
    UniqueConstraint("work_pool_id", "name"),
    Index(None, "work_pool_id", "last_heartbeat_time"),
)

#: Concurrency slots held for a while: kept in the database (not in memory) so leases survive
#: restarts and are shared by every server process; expired leases are reclaimed by a service.
#: One row per limit a lease holds slots on: a lease over several limits (a task with several
#: tags) is several rows sharing its ``id``, renewed, released and reaped together by that id.
concurrency_lease = Table(
    "concurrency_lease",
    metadata,
    Column("id", Uuid, primary_key=True, default=uuid.uuid4),
    Column("created", Timestamp, nullable=False),
    Column("updated", Timestamp, nullable=False, index=True),
    Column(
        "concurrency_limit_id",
        Uuid,
        ForeignKey("concurrency_limit_v2.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column("slots", Integer, nullable=False),
    Column("expiration", Timestamp, nullable=False, index=True),
    Column("holder", json_type(nullable=True)),
)

log = Table(
    "log",
    metadata,
    *_base_columns(index_updated=False),
    Column("name", String, nullable=False),
    Column("level", Integer, nullable=False, index=True),
    # No foreign keys, as in Prefect: logs may arrive before (or outlive) their runs.
    Column("flow_run_id", Uuid, index=True),
    Column("task_run_id", Uuid, index=True),
    Column("message", Text, nullable=False),
    Column("timestamp", Timestamp, nullable=False, index=True),
)

event = Table(
    "event",
    metadata,
    *_base_columns(index_updated=False),
    Column("occurred", Timestamp, nullable=False, index=True),
    Column("event", String, nullable=False, index=True),
    Column("resource_id", String, nullable=False, index=True),
    Column("resource", json_type(), nullable=False, server_default="{}"),
    Column("related_resource_ids", json_type(), nullable=False, server_default="[]"),
    Column("related", json_type(), nullable=False, server_default="[]"),
    Column("payload", json_type(), nullable=False, server_default="{}"),
    Column("received", Timestamp, nullable=False),
    Column("recorded", Timestamp, nullable=False),
    Column("follows", Uuid),
)

#: One row per resource an event names (its own and each related one), for filtering.
event_resource = Table(
    "event_resource",
    metadata,
    *_base_columns(index_updated=False),
    Column("occurred", Timestamp, nullable=False),
    Column("resource_id", String, nullable=False),
    Column("resource_role", String, nullable=False),
    Column("resource", json_type(), nullable=False, server_default="{}"),
    Column(
        "event_id", Uuid, ForeignKey("event.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Index(None, "resource_id", "occurred"),
)


#: Key/value inputs of a flow run: what a paused run asked for and was resumed with
#: (``pause_flow_run(wait_for_input=...)``), and what ``send_input`` sends it.
flow_run_input = Table(
    "flow_run_input",
    metadata,
    *_base_columns(),
    Column("flow_run_id", Uuid, ForeignKey("flow_run.id", ondelete="CASCADE"), nullable=False),
    Column("key", String, nullable=False),
    Column("value", Text, nullable=False),
    Column("sender", String),
    # Also the index of a run's inputs by key prefix (the first column is the run's).
    UniqueConstraint("flow_run_id", "key"),
)

#: Artifacts, as Prefect keeps them: no foreign keys, so they outlive their runs.
artifact = Table(
    "artifact",
    metadata,
    *_base_columns(),
    Column("key", String),
    Column("type", String),
    Column("description", Text),
    Column("data", json_type(nullable=True)),
    Column("metadata_", json_type(nullable=True)),
    Column("flow_run_id", Uuid, index=True),
    Column("task_run_id", Uuid, index=True),
    # A key's versions newest first: the "latest" of a key, and the one after a deletion.
    Index(None, "key", "created"),
)

#: One row per artifact key: a copy of its newest version (``latest_id``), so the latest
#: artifacts are one indexed read. Written in the transaction that writes the version.
artifact_collection = Table(
    "artifact_collection",
    metadata,
    *_base_columns(),
    Column("key", String, nullable=False, unique=True),
    Column("latest_id", Uuid, nullable=False),
    Column("type", String),
    Column("description", Text),
    Column("data", json_type(nullable=True)),
    Column("metadata_", json_type(nullable=True)),
    Column("flow_run_id", Uuid),
    Column("task_run_id", Uuid),
)


def use_postgresql_options() -> None:
    """Give the partial indexes their PostgreSQL condition (as ``postgresql_where=``).

    Added when a PostgreSQL database is opened rather than written above: SQLAlchemy checks a
    ``postgresql_*`` option by importing its PostgreSQL dialect, over 2 MiB of memory that a
    server on SQLite should not carry.
    """
    for table in metadata.tables.values():
        for index in table.indexes:
            where = index.dialect_options["sqlite"]["where"]
            if where is not None:
                index.dialect_options["postgresql"]["where"] = where
