"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-30 02:45:34.803069
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import deputy.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def _parent_task_run_fk_inline() -> list[sa.ForeignKeyConstraint]:
    """SQLite cannot add a foreign key later, and does not mind a forward reference."""
    if not _is_sqlite():
        return []
    return [
        sa.ForeignKeyConstraint(
            ["parent_task_run_id"],
            ["task_run.id"],
            name=op.f("fk_flow_run__parent_task_run_id__task_run"),
            ondelete="SET NULL",
        )
    ]


def upgrade() -> None:
    op.create_table(
        "block_document",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("block_type_id", sa.Uuid(), nullable=True),
        sa.Column("block_schema_id", sa.Uuid(), nullable=True),
        sa.Column("is_anonymous", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_block_document")),
    )
    with op.batch_alter_table("block_document", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_block_document__updated"), ["updated"], unique=False)

    op.create_table(
        "concurrency_limit_v2",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("limit", sa.Integer(), nullable=False),
        sa.Column("active_slots", sa.Integer(), server_default="0", nullable=False),
        sa.Column("denied_slots", sa.Integer(), server_default="0", nullable=False),
        sa.Column("slot_decay_per_second", sa.Float(), server_default="0", nullable=False),
        sa.Column("avg_slot_occupancy_seconds", sa.Float(), server_default="2", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_limit_v2")),
        sa.UniqueConstraint("name", name=op.f("uq_concurrency_limit_v2__name")),
    )
    with op.batch_alter_table("concurrency_limit_v2", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_concurrency_limit_v2__updated"), ["updated"], unique=False
        )

    op.create_table(
        "flow",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "labels",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow")),
        sa.UniqueConstraint("name", name=op.f("uq_flow__name")),
    )
    with op.batch_alter_table("flow", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow__created"), ["created"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow__updated"), ["updated"], unique=False)

    op.create_table(
        "variable",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column(
            "value",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="[]",
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variable")),
        sa.UniqueConstraint("name", name=op.f("uq_variable__name")),
    )
    with op.batch_alter_table("variable", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_variable__updated"), ["updated"], unique=False)

    op.create_table(
        "work_pool",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column(
            "base_job_template",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("is_paused", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("default_queue_id", sa.Uuid(), nullable=True),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), server_default="NOT_READY", nullable=False),
        sa.Column(
            "last_transitioned_status_at", deputy.db.types.Timestamp(timezone=True), nullable=True
        ),
        sa.Column("last_status_event_id", sa.Uuid(), nullable=True),
        sa.Column(
            "storage_configuration",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_pool")),
        sa.UniqueConstraint("name", name=op.f("uq_work_pool__name")),
    )
    with op.batch_alter_table("work_pool", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_pool__type"), ["type"], unique=False)
        batch_op.create_index(batch_op.f("ix_work_pool__updated"), ["updated"], unique=False)

    op.create_table(
        "work_queue",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("description", sa.String(), server_default="", nullable=False),
        sa.Column("is_paused", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("concurrency_limit", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("last_polled", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("status", sa.String(), server_default="NOT_READY", nullable=False),
        sa.Column(
            "filter",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("work_pool_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["work_pool_id"],
            ["work_pool.id"],
            name=op.f("fk_work_queue__work_pool_id__work_pool"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_queue")),
        sa.UniqueConstraint("work_pool_id", "name", name=op.f("uq_work_queue__work_pool_id_name")),
    )
    with op.batch_alter_table("work_queue", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_queue__updated"), ["updated"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_work_queue__work_pool_id"), ["work_pool_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_work_queue__work_pool_id_priority"),
            ["work_pool_id", "priority"],
            unique=False,
        )

    op.create_table(
        "deployment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=True),
        sa.Column(
            "version_info",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("work_queue_name", sa.String(), nullable=True),
        sa.Column("work_queue_id", sa.Uuid(), nullable=True),
        sa.Column(
            "job_variables",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("path", sa.String(), nullable=True),
        sa.Column("entrypoint", sa.String(), nullable=True),
        sa.Column(
            "pull_steps",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("last_polled", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("status", sa.String(), server_default="NOT_READY", nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("concurrency_limit_id", sa.Uuid(), nullable=True),
        sa.Column(
            "concurrency_options",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "labels",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "parameter_openapi_schema",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "enforce_parameter_schema",
            sa.Boolean(),
            server_default=sa.text("(true)"),
            nullable=False,
        ),
        sa.Column(
            "created_by",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "updated_by",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("infrastructure_document_id", sa.Uuid(), nullable=True),
        sa.Column("storage_document_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["concurrency_limit_id"],
            ["concurrency_limit_v2.id"],
            name=op.f("fk_deployment__concurrency_limit_id__concurrency_limit_v2"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flow.id"], name=op.f("fk_deployment__flow_id__flow"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["infrastructure_document_id"],
            ["block_document.id"],
            name=op.f("fk_deployment__infrastructure_document_id__block_document"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["storage_document_id"],
            ["block_document.id"],
            name=op.f("fk_deployment__storage_document_id__block_document"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["work_queue_id"],
            ["work_queue.id"],
            name=op.f("fk_deployment__work_queue_id__work_queue"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment")),
        sa.UniqueConstraint("flow_id", "name", name=op.f("uq_deployment__flow_id_name")),
    )
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployment__created"), ["created"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployment__flow_id"), ["flow_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployment__paused"), ["paused"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployment__updated"), ["updated"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deployment__work_queue_id"), ["work_queue_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deployment__work_queue_name"), ["work_queue_name"], unique=False
        )

    op.create_table(
        "flow_run",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("flow_id", sa.Uuid(), nullable=False),
        sa.Column("deployment_id", sa.Uuid(), nullable=True),
        sa.Column("deployment_version", sa.String(), nullable=True),
        sa.Column("work_queue_name", sa.String(), nullable=True),
        sa.Column("work_queue_id", sa.Uuid(), nullable=True),
        sa.Column("flow_version", sa.String(), nullable=True),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "empirical_policy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "labels",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "created_by",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("infrastructure_pid", sa.String(), nullable=True),
        sa.Column(
            "job_variables",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("infrastructure_document_id", sa.Uuid(), nullable=True),
        sa.Column("parent_task_run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "auto_scheduled", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
        ),
        sa.Column("state_id", sa.Uuid(), nullable=True),
        sa.Column("state_type", sa.String(), nullable=True),
        sa.Column("state_name", sa.String(), nullable=True),
        sa.Column("state_timestamp", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("run_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expected_start_time", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column(
            "next_scheduled_start_time", deputy.db.types.Timestamp(timezone=True), nullable=True
        ),
        sa.Column("start_time", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("end_time", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("total_run_time", sa.Float(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["flow.id"], name=op.f("fk_flow_run__flow_id__flow"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["infrastructure_document_id"],
            ["block_document.id"],
            name=op.f("fk_flow_run__infrastructure_document_id__block_document"),
            ondelete="CASCADE",
        ),
        *_parent_task_run_fk_inline(),
        sa.ForeignKeyConstraint(
            ["work_queue_id"],
            ["work_queue.id"],
            name=op.f("fk_flow_run__work_queue_id__work_queue"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_run")),
        sa.UniqueConstraint(
            "flow_id", "idempotency_key", name=op.f("uq_flow_run__flow_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_run__created"), ["created"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flow_run__deployment_id"), ["deployment_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_flow_run__end_time"), ["end_time"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flow_run__expected_start_time"), ["expected_start_time"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_flow_run__flow_id"), ["flow_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flow_run__infrastructure_document_id"),
            ["infrastructure_document_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_flow_run__name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flow_run__parent_task_run_id"), ["parent_task_run_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_flow_run__start_time"), ["start_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run__state_name"), ["state_name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flow_run__state_type_next_scheduled_start_time"),
            ["state_type", "next_scheduled_start_time"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_flow_run__updated"), ["updated"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_flow_run__work_queue_id"), ["work_queue_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_flow_run__work_queue_id_state_type_next_scheduled_start_time"),
            ["work_queue_id", "state_type", "next_scheduled_start_time"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_flow_run__work_queue_name"), ["work_queue_name"], unique=False
        )

    op.create_table(
        "flow_run_state",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("timestamp", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column(
            "state_details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "data",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["flow_run_id"],
            ["flow_run.id"],
            name=op.f("fk_flow_run_state__flow_run_id__flow_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_run_state")),
        sa.UniqueConstraint(
            "flow_run_id", "timestamp", name=op.f("uq_flow_run_state__flow_run_id_timestamp")
        ),
    )
    with op.batch_alter_table("flow_run_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_run_state__name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_run_state__type"), ["type"], unique=False)

    op.create_table(
        "task_run",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_key", sa.String(), nullable=False),
        sa.Column("dynamic_key", sa.String(), nullable=False),
        sa.Column("cache_key", sa.String(), nullable=True),
        sa.Column("cache_expiration", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("task_version", sa.String(), nullable=True),
        sa.Column("flow_run_run_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "empirical_policy",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "task_inputs",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "labels",
            sa.JSON(none_as_null=True).with_variant(
                postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("state_id", sa.Uuid(), nullable=True),
        sa.Column("state_type", sa.String(), nullable=True),
        sa.Column("state_name", sa.String(), nullable=True),
        sa.Column("state_timestamp", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("run_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expected_start_time", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column(
            "next_scheduled_start_time", deputy.db.types.Timestamp(timezone=True), nullable=True
        ),
        sa.Column("start_time", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("end_time", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("total_run_time", sa.Float(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["flow_run_id"],
            ["flow_run.id"],
            name=op.f("fk_task_run__flow_run_id__flow_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_run")),
        sa.UniqueConstraint(
            "flow_run_id",
            "task_key",
            "dynamic_key",
            name=op.f("uq_task_run__flow_run_id_task_key_dynamic_key"),
        ),
    )
    if not _is_sqlite():
        # flow_run and task_run reference each other; PostgreSQL needs the second key added later.
        op.create_foreign_key(
            op.f("fk_flow_run__parent_task_run_id__task_run"),
            "flow_run",
            "task_run",
            ["parent_task_run_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_run__flow_run_id"), ["flow_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__state_id"), ["state_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__state_name"), ["state_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__state_type"), ["state_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run__updated"), ["updated"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_run__updated"))
        batch_op.drop_index(batch_op.f("ix_task_run__state_type"))
        batch_op.drop_index(batch_op.f("ix_task_run__state_name"))
        batch_op.drop_index(batch_op.f("ix_task_run__state_id"))
        batch_op.drop_index(batch_op.f("ix_task_run__name"))
        batch_op.drop_index(batch_op.f("ix_task_run__flow_run_id"))

    if not _is_sqlite():
        op.drop_constraint(
            op.f("fk_flow_run__parent_task_run_id__task_run"), "flow_run", type_="foreignkey"
        )
    op.drop_table("task_run")
    with op.batch_alter_table("flow_run_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_run_state__type"))
        batch_op.drop_index(batch_op.f("ix_flow_run_state__name"))

    op.drop_table("flow_run_state")
    with op.batch_alter_table("flow_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_run__work_queue_name"))
        batch_op.drop_index(
            batch_op.f("ix_flow_run__work_queue_id_state_type_next_scheduled_start_time")
        )
        batch_op.drop_index(batch_op.f("ix_flow_run__work_queue_id"))
        batch_op.drop_index(batch_op.f("ix_flow_run__updated"))
        batch_op.drop_index(batch_op.f("ix_flow_run__state_type_next_scheduled_start_time"))
        batch_op.drop_index(batch_op.f("ix_flow_run__state_name"))
        batch_op.drop_index(batch_op.f("ix_flow_run__start_time"))
        batch_op.drop_index(batch_op.f("ix_flow_run__parent_task_run_id"))
        batch_op.drop_index(batch_op.f("ix_flow_run__name"))
        batch_op.drop_index(batch_op.f("ix_flow_run__infrastructure_document_id"))
        batch_op.drop_index(batch_op.f("ix_flow_run__flow_id"))
        batch_op.drop_index(batch_op.f("ix_flow_run__expected_start_time"))
        batch_op.drop_index(batch_op.f("ix_flow_run__end_time"))
        batch_op.drop_index(batch_op.f("ix_flow_run__deployment_id"))
        batch_op.drop_index(batch_op.f("ix_flow_run__created"))

    op.drop_table("flow_run")
    with op.batch_alter_table("deployment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployment__work_queue_name"))
        batch_op.drop_index(batch_op.f("ix_deployment__work_queue_id"))
        batch_op.drop_index(batch_op.f("ix_deployment__updated"))
        batch_op.drop_index(batch_op.f("ix_deployment__paused"))
        batch_op.drop_index(batch_op.f("ix_deployment__flow_id"))
        batch_op.drop_index(batch_op.f("ix_deployment__created"))

    op.drop_table("deployment")
    with op.batch_alter_table("work_queue", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_queue__work_pool_id_priority"))
        batch_op.drop_index(batch_op.f("ix_work_queue__work_pool_id"))
        batch_op.drop_index(batch_op.f("ix_work_queue__updated"))

    op.drop_table("work_queue")
    with op.batch_alter_table("work_pool", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_pool__updated"))
        batch_op.drop_index(batch_op.f("ix_work_pool__type"))

    op.drop_table("work_pool")
    with op.batch_alter_table("variable", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_variable__updated"))

    op.drop_table("variable")
    with op.batch_alter_table("flow", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow__updated"))
        batch_op.drop_index(batch_op.f("ix_flow__created"))

    op.drop_table("flow")
    with op.batch_alter_table("concurrency_limit_v2", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_concurrency_limit_v2__updated"))

    op.drop_table("concurrency_limit_v2")
    with op.batch_alter_table("block_document", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_block_document__updated"))

    op.drop_table("block_document")
