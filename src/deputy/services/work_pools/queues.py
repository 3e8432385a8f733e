"""Work queues: a pool's queues and the legacy ``/work_queues`` ones, priorities, statuses.

Rules kept from Prefect 3.9.1:

* Queue priorities in a pool stay unique. A queue created without one takes the first free
  value (the first gap, else max + 1). A queue given a priority that is taken pushes the
  holder, and the queues right after it, down by one; gaps further on are kept.
* A queue is created NOT_READY (even if paused), turns PAUSED when paused, and back to
  NOT_READY (READY if polled in the last 60 s) when unpaused; a poll turns a NOT_READY queue
  READY (``polls.py``), and 60 s without one NOT_READY again (``workers.py``).
* The legacy ``/work_queues`` routes create their queues in ``default-agent-pool``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.db.filters.objects import work_queue_clause
from deputy.errors import Conflict, NotFound, ObjectNotFound
from deputy.schemas.core import StateType
from deputy.schemas.filters import WorkQueueFilter
from deputy.schemas.work_pools import (
    WorkQueueCreate,
    WorkQueueStatus,
    WorkQueueUpdate,
    work_queue_status_to_wire,
)
from deputy.services.work_pools.pools import (
    DEFAULT_AGENT_POOL_NAME,
    DEFAULT_QUEUE_NAME,
    SLOT_STATES,
    get_or_create_default_agent_pool,
    insert_queue,
    read_work_pool_by_name,
)

if TYPE_CHECKING:
    from deputy.db.connection import Connection

# Prefect's message forgets its f-string prefix; clients see the braces, so we send them too.
QUEUE_EXISTS = "A work queue with this name already exists in work pool {work_pool_name!r}."
WORK_QUEUE_NOT_FOUND = "work queue not found"
LEGACY_QUEUE_EXISTS = "A work queue with this name already exists."
DEFAULT_QUEUE_UNDELETABLE = "Can't delete a pool's default queue."

#: A queue polled this recently is READY again when unpaused.
LAST_POLLED_TIMEOUT = dt.timedelta(seconds=60)
#: Runs holding a slot of a queue polled or inspected by id (Prefect's work-queue scheduler
#: counts CANCELLING too).
QUEUE_SLOT_STATES = (*SLOT_STATES, StateType.CANCELLING.value)

_pool = t.work_pool.c
_queue = t.work_queue.c
_run = t.flow_run.c


def queue_not_found(pool_name: str, queue_name: str) -> NotFound:
    return NotFound(f"Work pool queue '{pool_name}/{queue_name}' not found.")


async def read_work_queue_in_pool(
    conn: Connection, work_pool_id: uuid.UUID, name: str
) -> Row[Any] | None:
    query = select(t.work_queue).where(_queue.work_pool_id == work_pool_id, _queue.name == name)
    return (await conn.execute(query)).first()


async def get_or_create_work_queue(
    conn: Connection, work_pool_id: uuid.UUID, name: str, *, now: dt.datetime
) -> Row[Any]:
    """The pool's queue called ``name``, created unpaused at the first free priority.

    Race-safe: INSERT ... ON CONFLICT (work_pool_id, name) DO NOTHING, then read.
    """
    existing = await read_work_queue_in_pool(conn, work_pool_id, name)
    if existing is not None:
        return existing
    priority = await _first_free_priority(conn, work_pool_id)
    insert = (
        insert_on_conflict(conn.dialect.name, t.work_queue)
        .values(
            id=uuid.uuid4(),
            created=now,
            updated=now,
            name=name,
            description="",
            is_paused=False,
            priority=priority,
            status=WorkQueueStatus.NOT_READY.value,
            work_pool_id=work_pool_id,
        )
        .on_conflict_do_nothing(index_elements=["work_pool_id", "name"])
        .returning(*t.work_queue.c)
    )
    row = (await conn.execute(insert)).first()
    if row is not None:
        return row
    found = await read_work_queue_in_pool(conn, work_pool_id, name)
    assert found is not None  # the conflicting row is committed and visible now
    return found


async def create_work_queue(
    conn: Connection, pool_name: str, body: WorkQueueCreate, *, now: dt.datetime
) -> Row[Any]:
    """``POST /work_pools/{pool}/queues``: 404 for an unknown pool, 409 for a duplicate."""
    pool = await read_work_pool_by_name(conn, pool_name)
    return await _create_queue_in(conn, pool, body, exists_message=QUEUE_EXISTS, now=now)


async def create_legacy_work_queue(
    conn: Connection, body: WorkQueueCreate, *, now: dt.datetime
) -> Row[Any]:
    """``POST /work_queues/``: a queue in ``default-agent-pool``, created with the pool if
    need be (asking for ``default`` then answers the pool's new default queue, as Prefect)."""
    existing = (
        await conn.execute(select(t.work_pool).where(_pool.name == DEFAULT_AGENT_POOL_NAME))
    ).first()
    pool = existing or await get_or_create_default_agent_pool(conn, now=now)
    if existing is None and body.name == DEFAULT_QUEUE_NAME:
        return (
            await conn.execute(select(t.work_queue).where(_queue.id == pool.default_queue_id))
        ).one()
    return await _create_queue_in(conn, pool, body, exists_message=LEGACY_QUEUE_EXISTS, now=now)


async def _create_queue_in(
    conn: Connection,
    pool: Row[Any],
    body: WorkQueueCreate,
    *,
    exists_message: str,
    now: dt.datetime,
) -> Row[Any]:
    if body.priority is None:
        priority = await _first_free_priority(conn, pool.id)
    else:
        priority = body.priority
    try:
        row = await insert_queue(
            conn,
            pool.id,
            name=body.name,
            description=body.description,
            priority=priority,
            is_paused=body.is_paused,
            concurrency_limit=body.concurrency_limit,
            queue_filter=None if body.filter is None else body.filter.model_dump(mode="json"),
            now=now,
        )
    except IntegrityError:
        # As Prefect: any integrity failure is this, even one that is not about the name.
        raise Conflict(exists_message) from None
    if body.priority is not None:
        await _apply_priorities(conn, pool.id, {row.id: body.priority}, now=now)
        row = (await conn.execute(select(t.work_queue).where(_queue.id == row.id))).one()
    return row


async def read_work_queue(conn: Connection, pool_name: str, name: str) -> Row[Any]:
    """A queue by pool and queue name; an unknown pool also gets the queue's 404 text."""
    query = (
        select(t.work_queue)
        .join(t.work_pool, _pool.id == _queue.work_pool_id)
        .where(_pool.name == pool_name, _queue.name == name)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        raise queue_not_found(pool_name, name)
    return row


async def update_work_queue(
    conn: Connection, pool_name: str, name: str, body: WorkQueueUpdate, *, now: dt.datetime
) -> None:
    """``PATCH /work_pools/{pool}/queues/{name}``."""
    await read_work_pool_by_name(conn, pool_name)
    await _update_queue(conn, await read_work_queue(conn, pool_name, name), body, now=now)


async def update_work_queue_by_id(
    conn: Connection, queue_id: uuid.UUID, body: WorkQueueUpdate, *, now: dt.datetime
) -> None:
    """``PATCH /work_queues/{id}`` (what ``prefect work-queue pause`` and friends send)."""
    queue = (await conn.execute(select(t.work_queue).where(_queue.id == queue_id))).first()
    if queue is None:
        raise NotFound(f"Work Queue {queue_id} not found")
    await _update_queue(conn, queue, body, now=now)


async def _update_queue(
    conn: Connection, queue: Row[Any], body: WorkQueueUpdate, *, now: dt.datetime
) -> None:
    """Apply the fields sent; pause state drives ``status``, priorities are re-spread."""
    values = body.model_dump(exclude_unset=True)
    if "filter" in values:
        values["filter"] = None if body.filter is None else body.filter.model_dump(mode="json")
    if "is_paused" in values:
        if values["is_paused"] and queue.status != WorkQueueStatus.PAUSED:
            values["status"] = WorkQueueStatus.PAUSED.value
        if values["is_paused"] is False and queue.status == WorkQueueStatus.PAUSED:
            last_polled = values.get("last_polled", queue.last_polled)
            recent = last_polled is not None and now - last_polled <= LAST_POLLED_TIMEOUT
            values["status"] = (
                WorkQueueStatus.READY if recent else WorkQueueStatus.NOT_READY
            ).value
    await conn.execute(
        update(t.work_queue).where(_queue.id == queue.id).values(**values, updated=now)
    )
    if values.get("priority") is not None:
        await _apply_priorities(conn, queue.work_pool_id, {queue.id: values["priority"]}, now=now)


async def delete_work_queue(
    conn: Connection, pool_name: str, name: str, *, now: dt.datetime
) -> None:
    """``DELETE /work_pools/{pool}/queues/{name}``."""
    pool = await read_work_pool_by_name(conn, pool_name)
    await _delete_queue(
        conn, await read_work_queue(conn, pool_name, name), pool.default_queue_id, now=now
    )


async def delete_work_queue_by_id(
    conn: Connection, queue_id: uuid.UUID, *, now: dt.datetime
) -> None:
    """``DELETE /work_queues/{id}`` (``prefect work-queue delete``)."""
    query = select(t.work_queue, _pool.default_queue_id).join(
        t.work_pool, _pool.id == _queue.work_pool_id
    )
    queue = (await conn.execute(query.where(_queue.id == queue_id))).first()
    if queue is None:
        raise NotFound(WORK_QUEUE_NOT_FOUND)
    await _delete_queue(conn, queue, queue.default_queue_id, now=now)


async def _delete_queue(
    conn: Connection, queue: Row[Any], default_queue_id: Any, *, now: dt.datetime
) -> None:
    """Delete a queue; the pool's default queue is refused (409; Prefect answers 500)."""
    if queue.id == default_queue_id:
        raise Conflict(DEFAULT_QUEUE_UNDELETABLE)
    await conn.execute(delete(t.work_queue).where(_queue.id == queue.id))
    await _apply_priorities(conn, queue.work_pool_id, {}, now=now)


async def read_work_queue_status(
    conn: Connection, queue_id: uuid.UUID, *, now: dt.datetime
) -> dict[str, Any]:
    """``GET /work_queues/{id}/status`` (``prefect work-queue inspect``): its late runs and
    when it was last polled, judged by Prefect's fixed health policy."""
    queue = (await conn.execute(select(_queue.last_polled).where(_queue.id == queue_id))).first()
    if queue is None:
        raise ObjectNotFound(f"Work queue with id {queue_id} not found")
    late = select(func.count()).where(_run.work_queue_id == queue_id, _run.state_name == "Late")
    late_runs = int((await conn.execute(late)).scalar_one())
    return work_queue_status_to_wire(late_runs, queue.last_polled, now)


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
        select(t.work_queue)
        .where(_queue.work_pool_id == pool.id)
        .order_by(_queue.priority, _queue.name)
        .offset(offset)
        .limit(limit)
    )
    if flt is not None:
        query = query.where(work_queue_clause(flt))
    return list((await conn.execute(query)).all())


async def read_work_queue_by_id(conn: Connection, queue_id: uuid.UUID) -> tuple[Row[Any], str]:
    """``GET /work_queues/{id}``: the queue and its pool's name."""
    query = (
        select(t.work_queue, _pool.name.label("pool_name"))
        .join(t.work_pool, _pool.id == _queue.work_pool_id)
        .where(_queue.id == queue_id)
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
        select(t.work_queue, _pool.name.label("pool_name"))
        .join(t.work_pool, _pool.id == _queue.work_pool_id)
        .where(_queue.name == name)
    )
    agent_pool = select(_pool.id).where(_pool.name == DEFAULT_AGENT_POOL_NAME)
    if (await conn.execute(agent_pool)).first() is not None:
        query = query.where(_pool.name == DEFAULT_AGENT_POOL_NAME)
    row = (await conn.execute(query.order_by(_queue.created).limit(1))).first()
    if row is None:
        raise NotFound(WORK_QUEUE_NOT_FOUND)
    return row, row.pool_name


async def filter_work_queues(
    conn: Connection, flt: WorkQueueFilter | None, *, offset: int, limit: int
) -> list[tuple[Row[Any], str]]:
    """``POST /work_queues/filter``: queues of every pool, by name, with their pool's name."""
    query = (
        select(t.work_queue, _pool.name.label("pool_name"))
        .join(t.work_pool, _pool.id == _queue.work_pool_id)
        .order_by(_queue.name, _queue.id)
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
    query = (
        select(_run.work_queue_id, func.count())
        .where(_run.work_queue_id.in_(ids), _run.state_type.in_(SLOT_STATES))
        .group_by(_run.work_queue_id)
    )
    return {queue_id: int(n) for queue_id, n in (await conn.execute(query)).all()}


# --- priorities -------------------------------------------------------------------------


async def _first_free_priority(conn: Connection, work_pool_id: uuid.UUID) -> int:
    """The lowest priority not taken in the pool: the first gap in 1, 2, ..., else max + 1."""
    query = select(_queue.priority).where(_queue.work_pool_id == work_pool_id)
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
    conn: Connection, work_pool_id: uuid.UUID, targets: dict[uuid.UUID, int], *, now: dt.datetime
) -> None:
    """Write :func:`spread_priorities` for the pool, touching only the rows that change."""
    query = (
        select(_queue.id, _queue.priority)
        .where(_queue.work_pool_id == work_pool_id)
        .order_by(_queue.priority, _queue.created)
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
        update(t.work_queue)
        .where(_queue.id == bindparam("queue_id"))
        .values(priority=bindparam("new_priority"), updated=now)
    )
    await conn.execute(statement, changes)
