"""Who holds a work pool's or a work queue's concurrency slots (``prefect work-pool slots``
and ``prefect work-queue slots``), a page at a time.

The two count as their schedulers do in Prefect 3.9.1: a pool's slots are its queues' PENDING
and RUNNING runs; a queue's are its PENDING, RUNNING and CANCELLING runs, including runs
queued by its name alone (no queue id).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select

from deputy.db import tables as t
from deputy.errors import NotFound
from deputy.schemas.work_pools import flow_run_slot_summary
from deputy.services.common import pages
from deputy.services.work_pools.pools import SLOT_STATES
from deputy.services.work_pools.queues import QUEUE_SLOT_STATES

if TYPE_CHECKING:
    from deputy.db.connection import Connection

_pool = t.work_pool.c
_run = t.flow_run.c
_queue = t.work_queue.c
_RUNS_IN_QUEUES = t.flow_run.join(t.work_queue, _run.work_queue_id == _queue.id)
_SUMMARY_COLUMNS = (
    _run.id,
    _run.name,
    _run.work_queue_id,
    _run.state_type,
    _run.state_name,
    _run.start_time,
    _run.state_timestamp,
)


async def work_pool_slots(
    conn: Connection,
    pool_name: str,
    *,
    page: int,
    limit: int,
    flow_run_limit: int,
    now: dt.datetime,
) -> dict[str, Any]:
    """A page of the pool's queues (highest priority first), each with its slot holders (at
    most ``flow_run_limit``), and the pool's totals. Five statements."""
    pool = await _read_pool(conn, pool_name)
    queues = await _queue_page(conn, pool.id, page=page, limit=limit)
    queue_count = await _count_queues(conn, pool.id)
    taken = await _slots_taken(conn, pool.id)
    holders = await _slot_holders(conn, pool.id, [q.id for q in queues])
    return {
        "active_slots": sum(taken.values()),
        "concurrency_limit": pool.concurrency_limit,
        "queues": [
            _queue_slots(queue, taken.get(queue.id, 0), holders[queue.id][:flow_run_limit], now)
            for queue in queues
        ],
        **_page_fields(queue_count, limit, page),
    }


async def _read_pool(conn: Connection, pool_name: str) -> Row[Any]:
    query = select(_pool.id, _pool.concurrency_limit).where(_pool.name == pool_name)
    pool = (await conn.execute(query)).first()
    if pool is None:
        raise NotFound(f"Work pool {pool_name!r} not found.")
    return pool


async def _queue_page(
    conn: Connection, pool_id: uuid.UUID, *, page: int, limit: int
) -> Sequence[Row[Any]]:
    query = (
        select(_queue.id, _queue.name, _queue.concurrency_limit)
        .where(_queue.work_pool_id == pool_id)
        .order_by(_queue.priority, _queue.name)
        .offset((page - 1) * limit)
        .limit(limit)
    )
    return (await conn.execute(query)).all()


async def _count_queues(conn: Connection, pool_id: uuid.UUID) -> int:
    query = select(func.count()).where(_queue.work_pool_id == pool_id)
    return int((await conn.execute(query)).scalar_one())


def _holding_in_pool(pool_id: uuid.UUID) -> ColumnElement[bool]:
    return and_(_queue.work_pool_id == pool_id, _run.state_type.in_(SLOT_STATES))


async def _slots_taken(conn: Connection, pool_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """Slots taken per queue of the pool."""
    query = (
        select(_run.work_queue_id, func.count())
        .select_from(_RUNS_IN_QUEUES)
        .where(_holding_in_pool(pool_id))
        .group_by(_run.work_queue_id)
    )
    return {queue_id: int(n) for queue_id, n in (await conn.execute(query)).all()}


async def _slot_holders(
    conn: Connection, pool_id: uuid.UUID, queue_ids: list[uuid.UUID]
) -> defaultdict[uuid.UUID, list[Row[Any]]]:
    """The runs holding a slot of the given queues, per queue, oldest id first."""
    query = (
        select(*_SUMMARY_COLUMNS)
        .select_from(_RUNS_IN_QUEUES)
        .where(_holding_in_pool(pool_id), _run.work_queue_id.in_(queue_ids))
        .order_by(_run.id)
    )
    holders: defaultdict[uuid.UUID, list[Row[Any]]] = defaultdict(list)
    for holder in (await conn.execute(query)).all():
        holders[holder.work_queue_id].append(holder)
    return holders


def _queue_slots(
    queue: Row[Any], taken: int, holders: list[Row[Any]], timestamp: dt.datetime
) -> dict[str, Any]:
    """One queue of the pool's page: its slots taken and (some of) their holders."""
    return {
        "queue_id": queue.id,
        "queue_name": queue.name,
        "active_slots": taken,
        "concurrency_limit": queue.concurrency_limit,
        "flow_runs": [flow_run_slot_summary(run, timestamp) for run in holders],
        "flow_run_count": taken,
    }


def _page_fields(count: int, limit: int, page: int) -> dict[str, int]:
    return {"count": count, "limit": limit, "pages": pages(count, limit), "page": page}


async def work_queue_slots(
    conn: Connection, queue_id: uuid.UUID, *, page: int, limit: int, now: dt.datetime
) -> dict[str, Any]:
    """A page of the queue's slot holders, oldest id first, and their total."""
    queue = (
        await conn.execute(
            select(_queue.name, _queue.concurrency_limit).where(_queue.id == queue_id)
        )
    ).first()
    if queue is None:
        raise NotFound("Work queue not found.")
    holding = _queue_holds(queue_id, queue.name)
    total = int((await conn.execute(select(func.count()).where(holding))).scalar_one())
    holders = (
        await conn.execute(
            select(*_SUMMARY_COLUMNS)
            .where(holding)
            .order_by(_run.id)
            .offset((page - 1) * limit)
            .limit(limit)
        )
    ).all()
    return {
        "active_slots": total,
        "concurrency_limit": queue.concurrency_limit,
        "flow_runs": [flow_run_slot_summary(run, now) for run in holders],
        **_page_fields(total, limit, page),
    }


def _queue_holds(queue_id: uuid.UUID, queue_name: str) -> ColumnElement[bool]:
    queued_here = or_(
        _run.work_queue_id == queue_id,
        and_(_run.work_queue_id.is_(None), _run.work_queue_name == queue_name),
    )
    return and_(queued_here, _run.state_type.in_(QUEUE_SLOT_STATES))
