"""Work pools: creation with a default queue, reads, updates, statuses, template defaults.

Rules kept from Prefect 3.9.1:

* Every pool is created with a queue named ``default`` (priority 1), whose id the pool keeps
  in ``default_queue_id``; that queue cannot be deleted while the pool exists.
* Names starting with "prefect" (any case) are reserved: not creatable, not deletable, and
  only ``is_paused`` / ``concurrency_limit`` may be changed.
* Status: a pool is PAUSED when paused, else NOT_READY until a worker heartbeats (READY),
  and NOT_READY again once no worker is ONLINE; unpausing gives READY when a worker is
  ONLINE. Agent pools have no status.

Queues live in ``queues.py``; heartbeats and the OFFLINE sweep in ``workers.py``; polls in
``polls.py``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, delete, exists, func, select, update

from deputy.blocks.crypto import Cipher
from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.db.filters.objects import work_pool_clause
from deputy.errors import Conflict, Forbidden, NotFound, Unprocessable
from deputy.parameters import schema as parameter_schema
from deputy.schemas.core import StateType
from deputy.schemas.filters import WorkPoolFilter
from deputy.schemas.work_pools import (
    AGENT_POOL_TYPE,
    WorkPoolCreate,
    WorkPoolStatus,
    WorkPoolUpdate,
    WorkQueueStatus,
)
from deputy.schemas.workers import WorkerStatus
from deputy.services.blocks import documents as block_documents

if TYPE_CHECKING:
    from deputy.db.connection import Connection

DEFAULT_AGENT_POOL_NAME = "default-agent-pool"
DEFAULT_QUEUE_NAME = "default"
DEFAULT_QUEUE_DESCRIPTION = "The work pool's default queue."

RESERVED_POOL = "Work pools starting with 'Prefect' are reserved for internal use."
RESERVED_POOL_UPDATE = (
    "Work pools starting with 'Prefect' are reserved for internal use "
    "and can only be updated to set concurrency limits or pause."
)
RESERVED_POOL_DELETE = (
    "Work pools starting with 'Prefect' are reserved for internal use and can not be deleted."
)
POOL_EXISTS = "A work pool with this name already exists."
BLOCK_NOT_FOUND = "Block not found."
JOB_VARIABLE_DEFAULTS_INVALID = "Validation failed for work pool's job variable defaults: "

#: Fields a reserved ("prefect...") pool may still change.
_RESERVED_POOL_UPDATABLE = frozenset({"is_paused", "concurrency_limit"})
#: Runs holding a pool's (or, in a worker's poll, a queue's) concurrency slot.
SLOT_STATES = (StateType.PENDING.value, StateType.RUNNING.value)

#: How a base job template's variable defaults are checked: pydantic-v1 repairs on,
#: ``null`` allowed where a default exists, ``required`` ignored (runs may supply them).
_DEFAULTS_MODE = parameter_schema.Mode(allow_none_with_default=True, drop_required=True)
_META_CHECK_MODE = parameter_schema.Mode(preprocess=False)

_pool = t.work_pool.c
_queue = t.work_queue.c
_run = t.flow_run.c


def pool_not_found(name: str) -> NotFound:
    return NotFound(f'Work pool "{name}" not found.')


def _is_reserved(name: str) -> bool:
    return name.lower().startswith("prefect")


async def read_work_pool_by_name(conn: Connection, name: str) -> Row[Any]:
    """The pool called ``name``; 404 with Prefect's text when there is none."""
    row = (await conn.execute(select(t.work_pool).where(_pool.name == name))).first()
    if row is None:
        raise pool_not_found(name)
    return row


async def create_work_pool(
    conn: Connection, body: WorkPoolCreate, *, cipher: Cipher, now: dt.datetime
) -> Row[Any]:
    """Create a pool and its default queue; 403 for reserved names, 409 for duplicates.
    ``cipher`` reads the block documents the template's defaults refer to."""
    if _is_reserved(body.name):
        raise Forbidden(RESERVED_POOL)
    await validate_job_variable_defaults(conn, body.base_job_template, cipher=cipher)
    row = await _insert_pool(conn, body, now=now)
    if row is None:
        raise Conflict(POOL_EXISTS)
    return row


async def get_or_create_default_agent_pool(conn: Connection, *, now: dt.datetime) -> Row[Any]:
    """The legacy ``default-agent-pool`` (type ``prefect-agent``), created when missing.

    Race-safe: a concurrent creator wins the insert and this call reads its row.
    """
    query = select(t.work_pool).where(_pool.name == DEFAULT_AGENT_POOL_NAME)
    row = (await conn.execute(query)).first()
    if row is not None:
        return row
    body = WorkPoolCreate(name=DEFAULT_AGENT_POOL_NAME, type=AGENT_POOL_TYPE)
    created = await _insert_pool(conn, body, now=now)
    if created is not None:
        return created
    return (await conn.execute(query)).one()


async def _insert_pool(
    conn: Connection, body: WorkPoolCreate, *, now: dt.datetime
) -> Row[Any] | None:
    """Insert the pool row, then its default queue; ``None`` if the name was taken."""
    if body.type == AGENT_POOL_TYPE:
        status = WorkPoolStatus.NOT_READY  # never reported: agent pools answer null
    else:
        status = WorkPoolStatus.PAUSED if body.is_paused else WorkPoolStatus.NOT_READY
    values = {
        "id": uuid.uuid4(),
        "created": now,
        "updated": now,
        "name": body.name,
        "description": body.description,
        "type": body.type,
        "base_job_template": body.base_job_template,
        "is_paused": body.is_paused,
        "concurrency_limit": body.concurrency_limit,
        "status": status.value,
        "storage_configuration": body.storage_configuration.model_dump(mode="json"),
    }
    insert = (
        insert_on_conflict(conn.dialect.name, t.work_pool)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(_pool.id)
    )
    pool = (await conn.execute(insert)).first()
    if pool is None:
        return None
    queue = await insert_queue(
        conn,
        pool.id,
        name=DEFAULT_QUEUE_NAME,
        description=DEFAULT_QUEUE_DESCRIPTION,
        priority=1,
        now=now,
    )
    result = await conn.execute(
        update(t.work_pool)
        .where(_pool.id == pool.id)
        .values(default_queue_id=queue.id)
        .returning(*t.work_pool.c)
    )
    return result.one()


async def insert_queue(
    conn: Connection,
    work_pool_id: uuid.UUID,
    *,
    name: str,
    description: str | None,
    priority: int,
    is_paused: bool = False,
    concurrency_limit: int | None = None,
    queue_filter: dict[str, Any] | None = None,
    now: dt.datetime,
) -> Row[Any]:
    """Insert a queue row, NOT_READY: a pool's default queue here, the others in
    :mod:`deputy.services.work_pools.queues` (which builds on this module)."""
    insert = (
        t.work_queue.insert()
        .values(
            id=uuid.uuid4(),
            created=now,
            updated=now,
            name=name,
            description=description,
            is_paused=is_paused,
            concurrency_limit=concurrency_limit,
            priority=priority,
            status=WorkQueueStatus.NOT_READY.value,
            filter=queue_filter,
            work_pool_id=work_pool_id,
        )
        .returning(*t.work_queue.c)
    )
    return (await conn.execute(insert)).one()


async def update_work_pool(
    conn: Connection, name: str, body: WorkPoolUpdate, *, now: dt.datetime
) -> None:
    """Apply the fields sent; pausing and unpausing move ``status`` as Prefect does."""
    values = body.model_dump(exclude_unset=True, mode="json")
    if _is_reserved(name) and set(values) - _RESERVED_POOL_UPDATABLE:
        raise Forbidden(RESERVED_POOL_UPDATE)
    pool = await read_work_pool_by_name(conn, name)
    if pool.type != AGENT_POOL_TYPE and "is_paused" in values:
        if values["is_paused"]:
            values["status"] = WorkPoolStatus.PAUSED.value
        elif values["is_paused"] is False:
            ready = await has_online_worker(conn, pool.id)
            values["status"] = (WorkPoolStatus.READY if ready else WorkPoolStatus.NOT_READY).value
    if "status" in values:
        values["last_status_event_id"] = uuid.uuid4()
        values["last_transitioned_status_at"] = now
    await conn.execute(update(t.work_pool).where(_pool.id == pool.id).values(**values, updated=now))


async def has_online_worker(conn: Connection, work_pool_id: uuid.UUID) -> bool:
    """Whether an ONLINE worker heartbeats for the pool (the status heartbeats set and
    ``workers.mark_offline_workers`` clears)."""
    worker = t.worker.c
    online = exists().where(
        worker.work_pool_id == work_pool_id, worker.status == WorkerStatus.ONLINE.value
    )
    query = select(online)
    return bool((await conn.execute(query)).scalar())


async def delete_work_pool(conn: Connection, name: str) -> None:
    """Delete the pool; its queues go with it, deployments and runs lose their queue."""
    if _is_reserved(name):
        raise Forbidden(RESERVED_POOL_DELETE)
    result = await conn.execute(delete(t.work_pool).where(_pool.name == name))
    if result.rowcount == 0:
        raise pool_not_found(name)


async def filter_work_pools(
    conn: Connection, flt: WorkPoolFilter | None, *, offset: int, limit: int
) -> list[Row[Any]]:
    query = select(t.work_pool).order_by(_pool.name).offset(offset).limit(limit)
    if flt is not None:
        query = query.where(work_pool_clause(flt))
    return list((await conn.execute(query)).all())


async def count_work_pools(conn: Connection, flt: WorkPoolFilter | None) -> int:
    query = select(func.count()).select_from(t.work_pool)
    if flt is not None:
        query = query.where(work_pool_clause(flt))
    return int((await conn.execute(query)).scalar_one())


async def pool_active_slots(conn: Connection, pools: Iterable[Row[Any]]) -> dict[uuid.UUID, int]:
    """PENDING and RUNNING runs per pool, for the pools that have a concurrency limit."""
    ids = [p.id for p in pools if p.concurrency_limit is not None]
    if not ids:
        return {}
    query = (
        select(_queue.work_pool_id, func.count())
        .select_from(t.flow_run.join(t.work_queue, _run.work_queue_id == _queue.id))
        .where(_queue.work_pool_id.in_(ids), _run.state_type.in_(SLOT_STATES))
        .group_by(_queue.work_pool_id)
    )
    return {pool_id: int(n) for pool_id, n in (await conn.execute(query)).all()}


async def validate_job_variable_defaults(
    conn: Connection, base_job_template: dict[str, Any], *, cipher: Cipher
) -> None:
    """Prefect's check of a new pool's template: a valid variables schema, valid defaults.

    ``{"$ref": {"block_document_id": ...}}`` defaults are replaced by the block's data as
    Prefect reads it for this check (references resolved, secrets obfuscated; 404 ``Block
    not found.`` when it does not exist). ``required`` is not enforced here: deployments and
    runs may supply those values later.
    """
    variables = base_job_template.get("variables") if base_job_template else None
    if not variables:
        return
    meta = parameter_schema.compile_schema(variables, _META_CHECK_MODE)
    if meta.schema_error is not None:
        raise Unprocessable(f"Invalid schema: {meta.schema_error}")
    defaults = await _resolved_defaults(conn, variables, cipher)
    compiled = parameter_schema.compile_schema(variables, _DEFAULTS_MODE)
    if compiled.schema_error is not None:
        raise Unprocessable(f"Invalid schema: {compiled.schema_error}")
    try:
        message = parameter_schema.failure_message(compiled, defaults)
    except parameter_schema.CircularSchema:
        raise Unprocessable(parameter_schema.CIRCULAR_DETAIL) from None
    if message is not None:
        raise Unprocessable(JOB_VARIABLE_DEFAULTS_INVALID + message)


async def _resolved_defaults(conn: Connection, variables: Any, cipher: Cipher) -> dict[str, Any]:
    """Each variable's default, a ``{"$ref": {"block_document_id": ...}}`` one replaced by
    the block's data (one without a block id is skipped)."""
    properties = variables.get("properties", {}) if isinstance(variables, dict) else {}
    defaults: dict[str, Any] = {}
    for key, attrs in properties.items() if isinstance(properties, dict) else ():
        if not isinstance(attrs, dict) or "default" not in attrs:
            continue
        default = attrs["default"]
        if isinstance(default, dict) and "$ref" in default:
            reference = default["$ref"]
            block_id = reference.get("block_document_id") if isinstance(reference, dict) else None
            if block_id is None:
                continue
            defaults[key] = await _block_document_data(conn, block_id, cipher)
        else:
            defaults[key] = default
    return defaults


async def _block_document_data(conn: Connection, block_id: Any, cipher: Cipher) -> Any:
    try:
        parsed = block_id if isinstance(block_id, uuid.UUID) else uuid.UUID(str(block_id))
    except ValueError:
        raise NotFound(BLOCK_NOT_FOUND) from None
    # Prefect validates the defaults against the document as its API answers it by default.
    data = await block_documents.read_block_document_data(
        conn, parsed, cipher=cipher, include_secrets=False
    )
    if data is None:
        raise NotFound(BLOCK_NOT_FOUND)
    return data
