"""Who holds a work pool's or a work queue's concurrency slots (``prefect work-pool slots``
and ``prefect work-queue slots``), a page at a time.

The two count as their schedulers do in Prefect 3.9.1: a pool's slots are its queues' PENDING
and RUNNING runs; a queue's are its PENDING, RUNNING and CANCELLING runs, including runs
queued by its name alone (no queue id).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from deputy.db import tables as t
from deputy.errors import NotFound
from deputy.schemas.work_pools import flow_run_slot_summary
from deputy.services.common import now, pages
from deputy.services.work_pools.pools import QUEUE_SLOT_STATES, SLOT_STATES

if TYPE_CHECKING:
    from deputy.db.connection import Connection

_run = t.flow_run.c
_queue = t.work_queue.c
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
    conn: Connection, pool_name: str, *, page: int, limit: int, flow_run_limit: int
) -> dict[str, Any]:
    """A page of the pool's queues (highest priority first), each with its slot holders (at
    most ``flow_run_limit``), and the pool's totals."""
    pool = (
        await conn.execute(
            select(t.work_pool.c.id, t.work_pool.c.concurrency_limit).where(
                t.work_pool.c.name == pool_name
            )
        )
    ).first()
    if pool is None:
        raise NotFound(f"Work pool {pool_name!r} not found.")
    in_pool = _queue.work_pool_id == pool.id
    queues = (
        await conn.execute(
            select(_queue.id, _queue.name, _queue.concurrency_limit)
            .where(in_pool)
            .order_by(_queue.priority, _queue.name)
            .offset((page - 1) * limit)
            .limit(limit)
        )
    ).all()
    queue_count = int((await conn.execute(select(func.count()).where(in_pool))).scalar_one())
    holding = and_(in_pool, _run.state_type.in_(SLOT_STATES))
    counted = await conn.execute(
        select(_run.work_queue_id, func.count())
        .select_from(t.flow_run.join(t.work_queue, _run.work_queue_id == _queue.id))
        .where(holding)
        .group_by(_run.work_queue_id)
    )
    by_queue: dict[uuid.UUID, int] = {queue_id: int(n) for queue_id, n in counted.all()}
    holders = (
        await conn.execute(
            select(*_SUMMARY_COLUMNS)
            .select_from(t.flow_run.join(t.work_queue, _run.work_queue_id == _queue.id))
            .where(holding, _run.work_queue_id.in_([q.id for q in queues]))
            .order_by(_run.id)
        )
    ).all()
    runs_of: defaultdict[uuid.UUID, list[Any]] = defaultdict(list)
    for holder in holders:
        runs_of[holder.work_queue_id].append(holder)
    timestamp = now()
    return {
        "active_slots": sum(by_queue.values()),
        "concurrency_limit": pool.concurrency_limit,
        "queues": [
            {
                "queue_id": queue.id,
                "queue_name": queue.name,
                "active_slots": by_queue.get(queue.id, 0),
                "concurrency_limit": queue.concurrency_limit,
                "flow_runs": [
                    flow_run_slot_summary(run, timestamp)
                    for run in runs_of[queue.id][:flow_run_limit]
                ],
                "flow_run_count": by_queue.get(queue.id, 0),
            }
            for queue in queues
        ],
        "count": queue_count,
        "limit": limit,
        "pages": pages(queue_count, limit),
        "page": page,
    }


async def work_queue_slots(
    conn: Connection, queue_id: uuid.UUID, *, page: int, limit: int
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
    timestamp = now()
    return {
        "active_slots": total,
        "concurrency_limit": queue.concurrency_limit,
        "flow_runs": [flow_run_slot_summary(run, timestamp) for run in holders],
        "count": total,
        "limit": limit,
        "pages": pages(total, limit),
        "page": page,
    }


def _queue_holds(queue_id: uuid.UUID, queue_name: str) -> ColumnElement[bool]:
    queued_here = or_(
        _run.work_queue_id == queue_id,
        and_(_run.work_queue_id.is_(None), _run.work_queue_name == queue_name),
    )
    return and_(queued_here, _run.state_type.in_(QUEUE_SLOT_STATES))
