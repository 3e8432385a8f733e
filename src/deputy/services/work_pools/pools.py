"""Work pools and their queues: creation with a default queue, priorities, statuses.

Rules kept from Prefect 3.9.1:

* Every pool is created with a queue named ``default`` (priority 1), whose id the pool keeps
  in ``default_queue_id``; that queue cannot be deleted while the pool exists.
* Names starting with "prefect" (any case) are reserved: not creatable, not deletable, and
  only ``is_paused`` / ``concurrency_limit`` may be changed.
* Queue priorities in a pool stay unique. A queue created without one takes the first free
  value (the first gap, else max + 1). A queue given a priority that is taken pushes the
  holder, and the queues right after it, down by one; gaps further on are kept.
* Status: a pool is PAUSED when paused, else NOT_READY until a worker heartbeats (READY),
  and NOT_READY again once no worker is ONLINE; unpausing gives READY when a worker is
  ONLINE. Agent pools have no status. A queue is created NOT_READY (even if paused), turns
  PAUSED when paused, and back to NOT_READY (READY if polled in the last 60 s) when
  unpaused; a poll turns a NOT_READY queue READY. Heartbeats, polls and the OFFLINE /
  NOT_READY sweeps live in ``services/workers.py``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.db.filters.runs import work_pool_clause, work_queue_clause
from deputy.errors import Conflict, Forbidden, NotFound, ObjectNotFound, Unprocessable
from deputy.parameters import schema as parameter_schema
from deputy.schemas.core import StateType
from deputy.schemas.filters import WorkPoolFilter, WorkQueueFilter
from deputy.schemas.work_pools import (
    AGENT_POOL_TYPE,
    WorkPoolCreate,
    WorkPoolStatus,
    WorkPoolUpdate,
    WorkQueueCreate,
    WorkQueueStatus,
    WorkQueueUpdate,
    work_queue_status_to_wire,
)
from deputy.schemas.workers import WorkerStatus
from deputy.services.common import now

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
# Prefect's message forgets its f-string prefix; clients see the braces, so we send them too.
QUEUE_EXISTS = "A work queue with this name already exists in work pool {work_pool_name!r}."
WORK_QUEUE_NOT_FOUND = "work queue not found"
LEGACY_QUEUE_EXISTS = "A work queue with this name already exists."
DEFAULT_QUEUE_UNDELETABLE = "Can't delete a pool's default queue."
BLOCK_NOT_FOUND = "Block not found."
JOB_VARIABLE_DEFAULTS_INVALID = "Validation failed for work pool's job variable defaults: "

#: A queue polled this recently is READY again when unpaused.
LAST_POLLED_TIMEOUT = dt.timedelta(seconds=60)
#: Fields a reserved ("prefect...") pool may still change.
_RESERVED_POOL_UPDATABLE = frozenset({"is_paused", "concurrency_limit"})
#: Runs holding a pool's (or, in a worker's poll, a queue's) concurrency slot.
SLOT_STATES = (StateType.PENDING.value, StateType.RUNNING.value)
#: Runs holding a slot of a queue polled or inspected by id (Prefect's work-queue scheduler
#: counts CANCELLING too).
QUEUE_SLOT_STATES = (*SLOT_STATES, StateType.CANCELLING.value)

#: How a base job template's variable defaults are checked: pydantic-v1 repairs on,
#: ``null`` allowed where a default exists, ``required`` ignored (runs may supply them).
_DEFAULTS_MODE = parameter_schema.Mode(allow_none_with_default=True, drop_required=True)
_META_CHECK_MODE = parameter_schema.Mode(preprocess=False)

wp = t.work_pool
wq = t.work_queue


def pool_not_found(name: str) -> NotFound:
    return NotFound(f'Work pool "{name}" not found.')


def queue_not_found(pool_name: str, queue_name: str) -> NotFound:
    return NotFound(f"Work pool queue '{pool_name}/{queue_name}' not found.")


def _is_reserved(name: str) -> bool:
    return name.lower().startswith("prefect")


# --- work pools -------------------------------------------------------------------------


async def read_work_pool_by_name(conn: Connection, name: str) -> Row[Any]:
    """The pool called ``name``; 404 with Prefect's text when there is none."""
    row = (await conn.execute(select(wp).where(wp.c.name == name))).first()
    if row is None:
        raise pool_not_found(name)
    return row


async def create_work_pool(conn: Connection, body: WorkPoolCreate) -> Row[Any]:
    """Create a pool and its default queue; 403 for reserved names, 409 for duplicates."""
    if _is_reserved(body.name):
        raise Forbidden(RESERVED_POOL)
    await validate_job_variable_defaults(conn, body.base_job_template)
    row = await _insert_pool(conn, body)
    if row is None:
        raise Conflict(POOL_EXISTS)
    return row


async def get_or_create_default_agent_pool(conn: Connection) -> Row[Any]:
    """The legacy ``default-agent-pool`` (type ``prefect-agent``), created when missing.

    Race-safe: a concurrent creator wins the insert and this call reads its row.
    """
    query = select(wp).where(wp.c.name == DEFAULT_AGENT_POOL_NAME)
    row = (await conn.execute(query)).first()
    if row is not None:
        return row
    body = WorkPoolCreate(name=DEFAULT_AGENT_POOL_NAME, type=AGENT_POOL_TYPE)
    created = await _insert_pool(conn, body)
    if created is not None:
        return created
    return (await conn.execute(query)).one()


async def _insert_pool(conn: Connection, body: WorkPoolCreate) -> Row[Any] | None:
    """Insert the pool row, then its default queue; ``None`` if the name was taken."""
    timestamp = now()
    if body.type == AGENT_POOL_TYPE:
        status = WorkPoolStatus.NOT_READY  # never reported: agent pools answer null
    else:
        status = WorkPoolStatus.PAUSED if body.is_paused else WorkPoolStatus.NOT_READY
    values = {
        "id": uuid.uuid4(),
        "created": timestamp,
        "updated": timestamp,
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
        insert_on_conflict(conn, wp)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(wp.c.id)
    )
    pool = (await conn.execute(insert)).first()
    if pool is None:
        return None
    queue = await _insert_queue(
        conn,
        pool.id,
        name=DEFAULT_QUEUE_NAME,
        description=DEFAULT_QUEUE_DESCRIPTION,
        priority=1,
        timestamp=timestamp,
    )
    result = await conn.execute(
        update(wp).where(wp.c.id == pool.id).values(default_queue_id=queue.id).returning(*wp.c)
    )
    return result.one()


async def update_work_pool(conn: Connection, name: str, body: WorkPoolUpdate) -> None:
    """Apply the fields sent; pausing and unpausing move ``status`` as Prefect does."""
    values = body.model_dump(exclude_unset=True, mode="json")
    if _is_reserved(name) and set(values) - _RESERVED_POOL_UPDATABLE:
        raise Forbidden(RESERVED_POOL_UPDATE)
    pool = await read_work_pool_by_name(conn, name)
    timestamp = now()
    if pool.type != AGENT_POOL_TYPE and "is_paused" in values:
        if values["is_paused"]:
            values["status"] = WorkPoolStatus.PAUSED.value
        elif values["is_paused"] is False:
            ready = await has_online_worker(conn, pool.id)
            values["status"] = (WorkPoolStatus.READY if ready else WorkPoolStatus.NOT_READY).value
    if "status" in values:
        values["last_status_event_id"] = uuid.uuid4()
        values["last_transitioned_status_at"] = timestamp
    await conn.execute(update(wp).where(wp.c.id == pool.id).values(**values, updated=timestamp))


async def has_online_worker(conn: Connection, work_pool_id: uuid.UUID) -> bool:
    """Whether an ONLINE worker heartbeats for the pool (the status heartbeats set and
    ``services.workers.mark_offline_workers`` clears)."""
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
    result = await conn.execute(delete(wp).where(wp.c.name == name))
    if result.rowcount == 0:
        raise pool_not_found(name)


async def filter_work_pools(
    conn: Connection, flt: WorkPoolFilter | None, *, offset: int, limit: int
) -> list[Row[Any]]:
    query = select(wp).order_by(wp.c.name).offset(offset).limit(limit)
    if flt is not None:
        query = query.where(work_pool_clause(flt))
    return list((await conn.execute(query)).all())


async def count_work_pools(conn: Connection, flt: WorkPoolFilter | None) -> int:
    query = select(func.count()).select_from(wp)
    if flt is not None:
        query = query.where(work_pool_clause(flt))
    return int((await conn.execute(query)).scalar_one())


async def pool_active_slots(conn: Connection, pools: Iterable[Row[Any]]) -> dict[uuid.UUID, int]:
    """PENDING and RUNNING runs per pool, for the pools that have a concurrency limit."""
    ids = [p.id for p in pools if p.concurrency_limit is not None]
    if not ids:
        return {}
    run = t.flow_run.c
    query = (
        select(wq.c.work_pool_id, func.count())
        .select_from(t.flow_run.join(wq, run.work_queue_id == wq.c.id))
        .where(wq.c.work_pool_id.in_(ids), run.state_type.in_(SLOT_STATES))
        .group_by(wq.c.work_pool_id)
    )
    return {pool_id: int(n) for pool_id, n in (await conn.execute(query)).all()}


async def validate_job_variable_defaults(
    conn: Connection, base_job_template: dict[str, Any]
) -> None:
    """Prefect's check of a new pool's template: a valid variables schema, valid defaults.

    ``{"$ref": {"block_document_id": ...}}`` defaults are replaced by the block's data
    (404 ``Block not found.`` when it does not exist). ``required`` is not enforced here:
    deployments and runs may supply those values later.
    """
    variables = base_job_template.get("variables") if base_job_template else None
    if not variables:
        return
    meta = parameter_schema.compile_schema(variables, _META_CHECK_MODE)
    if meta.schema_error is not None:
        raise Unprocessable(f"Invalid schema: {meta.schema_error}")
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
            defaults[key] = await _block_document_data(conn, block_id)
        else:
            defaults[key] = default
    compiled = parameter_schema.compile_schema(variables, _DEFAULTS_MODE)
    if compiled.schema_error is not None:
        raise Unprocessable(f"Invalid schema: {compiled.schema_error}")
    try:
        message = parameter_schema.failure_message(compiled, defaults)
    except parameter_schema.CircularSchema:
        raise Unprocessable(parameter_schema.CIRCULAR_DETAIL) from None
    if message is not None:
        raise Unprocessable(JOB_VARIABLE_DEFAULTS_INVALID + message)


async def _block_document_data(conn: Connection, block_id: Any) -> Any:
    try:
        parsed = block_id if isinstance(block_id, uuid.UUID) else uuid.UUID(str(block_id))
    except ValueError:
        raise NotFound(BLOCK_NOT_FOUND) from None
    query = select(t.block_document.c.data).where(t.block_document.c.id == parsed)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(BLOCK_NOT_FOUND)
    return row.data


# --- work queues ------------------------------------------------------------------------


async def read_work_queue_in_pool(
    conn: Connection, work_pool_id: uuid.UUID, name: str
) -> Row[Any] | None:
    query = select(wq).where(wq.c.work_pool_id == work_pool_id, wq.c.name == name)
    return (await conn.execute(query)).first()


async def get_or_create_work_queue(
    conn: Connection, work_pool_id: uuid.UUID, name: str
) -> Row[Any]:
    """The pool's queue called ``name``, created unpaused at the first free priority.

    Race-safe: INSERT ... ON CONFLICT (work_pool_id, name) DO NOTHING, then read.
    """
    existing = await read_work_queue_in_pool(conn, work_pool_id, name)
    if existing is not None:
        return existing
    priority = await _first_free_priority(conn, work_pool_id)
    timestamp = now()
    insert = (
        insert_on_conflict(conn, wq)
        .values(
            id=uuid.uuid4(),
            created=timestamp,
            updated=timestamp,
            name=name,
            description="",
            is_paused=False,
            priority=priority,
            status=WorkQueueStatus.NOT_READY.value,
            work_pool_id=work_pool_id,
        )
        .on_conflict_do_nothing(index_elements=["work_pool_id", "name"])
        .returning(*wq.c)
    )
    row = (await conn.execute(insert)).first()
    if row is not None:
        return row
    found = await read_work_queue_in_pool(conn, work_pool_id, name)
    assert found is not None  # the conflicting row is committed and visible now
    return found


async def create_work_queue(conn: Connection, pool_name: str, body: WorkQueueCreate) -> Row[Any]:
    """``POST /work_pools/{pool}/queues``: 404 for an unknown pool, 409 for a duplicate."""
    pool = await read_work_pool_by_name(conn, pool_name)
    return await _create_queue_in(conn, pool, body, exists_message=QUEUE_EXISTS)


async def create_legacy_work_queue(conn: Connection, body: WorkQueueCreate) -> Row[Any]:
    """``POST /work_queues/``: a queue in ``default-agent-pool``, created with the pool if
    need be (asking for ``default`` then answers the pool's new default queue, as Prefect)."""
    existing = (await conn.execute(select(wp).where(wp.c.name == DEFAULT_AGENT_POOL_NAME))).first()
    pool = existing or await get_or_create_default_agent_pool(conn)
    if existing is None and body.name == "default":
        return (await conn.execute(select(wq).where(wq.c.id == pool.default_queue_id))).one()
    return await _create_queue_in(conn, pool, body, exists_message=LEGACY_QUEUE_EXISTS)


async def _create_queue_in(
    conn: Connection, pool: Row[Any], body: WorkQueueCreate, *, exists_message: str
) -> Row[Any]:
    if body.priority is None:
        priority = await _first_free_priority(conn, pool.id)
    else:
        priority = body.priority
    try:
        row = await _insert_queue(
            conn,
            pool.id,
            name=body.name,
            description=body.description,
            priority=priority,
            is_paused=body.is_paused,
            concurrency_limit=body.concurrency_limit,
            queue_filter=None if body.filter is None else body.filter.model_dump(mode="json"),
        )
    except IntegrityError:
        # As Prefect: any integrity failure is this, even one that is not about the name.
        raise Conflict(exists_message) from None
    if body.priority is not None:
        await _apply_priorities(conn, pool.id, {row.id: body.priority})
        row = (await conn.execute(select(wq).where(wq.c.id == row.id))).one()
    return row


async def _insert_queue(
    conn: Connection,
    work_pool_id: uuid.UUID,
    *,
    name: str,
    description: str | None,
    priority: int,
    is_paused: bool = False,
    concurrency_limit: int | None = None,
    queue_filter: dict[str, Any] | None = None,
    timestamp: dt.datetime | None = None,
) -> Row[Any]:
    timestamp = timestamp or now()
    insert = (
        wq.insert()
        .values(
            id=uuid.uuid4(),
            created=timestamp,
            updated=timestamp,
            name=name,
            description=description,
            is_paused=is_paused,
            concurrency_limit=concurrency_limit,
            priority=priority,
            status=WorkQueueStatus.NOT_READY.value,
            filter=queue_filter,
            work_pool_id=work_pool_id,
        )
        .returning(*wq.c)
    )
    return (await conn.execute(insert)).one()


async def read_work_queue(conn: Connection, pool_name: str, name: str) -> Row[Any]:
    """A queue by pool and queue name; an unknown pool also gets the queue's 404 text."""
    query = (
        select(wq)
        .join(wp, wp.c.id == wq.c.work_pool_id)
        .where(wp.c.name == pool_name, wq.c.name == name)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        raise queue_not_found(pool_name, name)
    return row


async def update_work_queue(
    conn: Connection, pool_name: str, name: str, body: WorkQueueUpdate
) -> None:
    """``PATCH /work_pools/{pool}/queues/{name}``."""
    await read_work_pool_by_name(conn, pool_name)
    await _update_queue(conn, await read_work_queue(conn, pool_name, name), body)


async def update_work_queue_by_id(
    conn: Connection, queue_id: uuid.UUID, body: WorkQueueUpdate
) -> None:
    """``PATCH /work_queues/{id}`` (what ``prefect work-queue pause`` and friends send)."""
    queue = (await conn.execute(select(wq).where(wq.c.id == queue_id))).first()
    if queue is None:
        raise NotFound(f"Work Queue {queue_id} not found")
    await _update_queue(conn, queue, body)


async def _update_queue(conn: Connection, queue: Row[Any], body: WorkQueueUpdate) -> None:
    """Apply the fields sent; pause state drives ``status``, priorities are re-spread."""
    values = body.model_dump(exclude_unset=True)
    if "filter" in values:
        values["filter"] = None if body.filter is None else body.filter.model_dump(mode="json")
    if "is_paused" in values:
        if values["is_paused"] and queue.status != WorkQueueStatus.PAUSED:
            values["status"] = WorkQueueStatus.PAUSED.value
        if values["is_paused"] is False and queue.status == WorkQueueStatus.PAUSED:
            last_polled = values.get("last_polled", queue.last_polled)
            recent = last_polled is not None and now() - last_polled <= LAST_POLLED_TIMEOUT
            values["status"] = (
                WorkQueueStatus.READY if recent else WorkQueueStatus.NOT_READY
            ).value
    await conn.execute(update(wq).where(wq.c.id == queue.id).values(**values, updated=now()))
    if values.get("priority") is not None:
        await _apply_priorities(conn, queue.work_pool_id, {queue.id: values["priority"]})


async def delete_work_queue(conn: Connection, pool_name: str, name: str) -> None:
    """``DELETE /work_pools/{pool}/queues/{name}``."""
    pool = await read_work_pool_by_name(conn, pool_name)
    await _delete_queue(conn, await read_work_queue(conn, pool_name, name), pool.default_queue_id)


async def delete_work_queue_by_id(conn: Connection, queue_id: uuid.UUID) -> None:
    """``DELETE /work_queues/{id}`` (``prefect work-queue delete``)."""
    query = select(wq, wp.c.default_queue_id).join(wp, wp.c.id == wq.c.work_pool_id)
    queue = (await conn.execute(query.where(wq.c.id == queue_id))).first()
    if queue is None:
        raise NotFound(WORK_QUEUE_NOT_FOUND)
    await _delete_queue(conn, queue, queue.default_queue_id)


async def _delete_queue(conn: Connection, queue: Row[Any], default_queue_id: Any) -> None:
    """Delete a queue; the pool's default queue is refused (409; Prefect answers 500)."""
    if queue.id == default_queue_id:
        raise Conflict(DEFAULT_QUEUE_UNDELETABLE)
    await conn.execute(delete(wq).where(wq.c.id == queue.id))
    await _apply_priorities(conn, queue.work_pool_id, {})


async def read_work_queue_status(conn: Connection, queue_id: uuid.UUID) -> dict[str, Any]:
    """``GET /work_queues/{id}/status`` (``prefect work-queue inspect``): its late runs and
    when it was last polled, judged by Prefect's fixed health policy."""
    queue = (await conn.execute(select(wq.c.last_polled).where(wq.c.id == queue_id))).first()
    if queue is None:
        raise ObjectNotFound(f"Work queue with id {queue_id} not found")
    run = t.flow_run.c
    late = select(func.count()).where(run.work_queue_id == queue_id, run.state_name == "Late")
    late_runs = int((await conn.execute(late)).scalar_one())
    return work_queue_status_to_wire(late_runs, queue.last_polled, now())


async def filter_pool_queues(
    conn: Connection,
    pool_name: str,
    flt: WorkQueueFilter | None,
    *,
    offset: int,
    limit: int,
) -> list[Row[Any]]:
    """A pool's queues, highest priority (lowest number) first; 404 for an unknown pool."""
    pool = await read_work_pool_by_name(conn, pool_name)
    query = (
        select(wq)
        .where(wq.c.work_pool_id == pool.id)
        .order_by(wq.c.priority, wq.c.name)
        .offset(offset)
        .limit(limit)
    )
    if flt is not None:
        query = query.where(work_queue_clause(flt))
    return list((await conn.execute(query)).all())


async def read_work_queue_by_id(conn: Connection, queue_id: uuid.UUID) -> tuple[Row[Any], str]:
    """``GET /work_queues/{id}``: the queue and its pool's name."""
    query = (
        select(wq, wp.c.name.label("pool_name"))
        .join(wp, wp.c.id == wq.c.work_pool_id)
        .where(wq.c.id == queue_id)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(WORK_QUEUE_NOT_FOUND)
    return row, row.pool_name


async def read_legacy_work_queue_by_name(conn: Connection, name: str) -> tuple[Row[Any], str]:
    """``GET /work_queues/name/{name}``: the queue in ``default-agent-pool``.

    Without that pool, Prefect takes any queue of that name; so do we (oldest first).
    """
    query = (
        select(wq, wp.c.name.label("pool_name"))
        .join(wp, wp.c.id == wq.c.work_pool_id)
        .where(wq.c.name == name)
    )
    agent_pool = select(wp.c.id).where(wp.c.name == DEFAULT_AGENT_POOL_NAME)
    if (await conn.execute(agent_pool)).first() is not None:
        query = query.where(wp.c.name == DEFAULT_AGENT_POOL_NAME)
    row = (await conn.execute(query.order_by(wq.c.created).limit(1))).first()
    if row is None:
        raise NotFound(WORK_QUEUE_NOT_FOUND)
    return row, row.pool_name


async def filter_work_queues(
    conn: Connection, flt: WorkQueueFilter | None, *, offset: int, limit: int
) -> list[tuple[Row[Any], str]]:
    """``POST /work_queues/filter``: queues of every pool, by name, with their pool's name."""
    query = (
        select(wq, wp.c.name.label("pool_name"))
        .join(wp, wp.c.id == wq.c.work_pool_id)
        .order_by(wq.c.name, wq.c.id)
        .offset(offset)
        .limit(limit)
    )
    if flt is not None:
        query = query.where(work_queue_clause(flt))
    return [(row, row.pool_name) for row in (await conn.execute(query)).all()]


async def queue_active_slots(conn: Connection, queues: Iterable[Row[Any]]) -> dict[uuid.UUID, int]:
    """PENDING and RUNNING runs per queue, for the queues that have a concurrency limit."""
    ids = [q.id for q in queues if q.concurrency_limit is not None]
    if not ids:
        return {}
    run = t.flow_run.c
    query = (
        select(run.work_queue_id, func.count())
        .where(run.work_queue_id.in_(ids), run.state_type.in_(SLOT_STATES))
        .group_by(run.work_queue_id)
    )
    return {queue_id: int(n) for queue_id, n in (await conn.execute(query)).all()}


# --- priorities -------------------------------------------------------------------------


async def _first_free_priority(conn: Connection, work_pool_id: uuid.UUID) -> int:
    """The lowest priority not taken in the pool: the first gap in 1, 2, ..., else max + 1."""
    query = select(wq.c.priority).where(wq.c.work_pool_id == work_pool_id)
    taken = sorted((await conn.execute(query)).scalars().all())
    return first_free_priority(taken)


def first_free_priority(taken: Sequence[int]) -> int:
    for expected, priority in enumerate(sorted(taken), start=1):
        if priority != expected:
            return expected
    return max(taken, default=0) + 1


def spread_priorities(
    current: Sequence[tuple[uuid.UUID, int]], targets: dict[uuid.UUID, int]
) -> dict[uuid.UUID, int]:
    """Final priorities after giving each queue in ``targets`` its target priority.

    ``current`` is every queue of the pool, sorted by priority. Each moved queue is placed
    before the first other queue whose priority is at least its target (or, if none is,
    simply keeps its target); then, walking in order, any queue whose priority is not above
    the previous one's is pushed to previous + 1. Later gaps stay, so few rows change.
    """
    order: list[tuple[uuid.UUID, int]] = [(q, p) for q, p in current if q not in targets]
    moved = sorted((q for q, _ in current if q in targets), key=lambda q: targets[q])
    final: dict[uuid.UUID, int] = {}
    for queue_id in moved:
        target = final[queue_id] = targets[queue_id]
        for index, (_, priority) in enumerate(order):
            if priority >= target:
                order.insert(index, (queue_id, target))
                break
    last = 0
    for queue_id, priority in order:
        last = last + 1 if priority <= last else priority
        final[queue_id] = last
    return final


async def _apply_priorities(
    conn: Connection, work_pool_id: uuid.UUID, targets: dict[uuid.UUID, int]
) -> None:
    """Write :func:`spread_priorities` for the pool, touching only the rows that change."""
    query = (
        select(wq.c.id, wq.c.priority)
        .where(wq.c.work_pool_id == work_pool_id)
        .order_by(wq.c.priority, wq.c.created)
    )
    current = [(row.id, row.priority) for row in (await conn.execute(query)).all()]
    before = dict(current)
    changes = [
        {"queue_id": qid, "new_priority": p}
        for qid, p in spread_priorities(current, targets).items()
        if before.get(qid) != p
    ]
    if not changes:
        return
    statement = (
        update(wq)
        .where(wq.c.id == bindparam("queue_id"))
        .values(priority=bindparam("new_priority"), updated=now())
    )
    await conn.execute(statement, changes)
