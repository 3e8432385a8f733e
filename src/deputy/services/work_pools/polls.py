"""Polls: a worker's (by pool), an old agent's (a queue by id), the Runner's (by deployment).

Rules kept from Prefect 3.9.1:

* The worker poll returns SCHEDULED runs, except AwaitingRetry (``retry_type ==
  "in_process"``), of the unpaused queues of an unpaused pool (a paused pool gives ``[]``),
  ordered by queue priority, then ``next_scheduled_start_time``; without ``scheduled_before``
  there is no time bound. Pool and queue concurrency limits count PENDING and RUNNING runs.
  No run is claimed: two workers may receive the same run; the PENDING transition decides.
* A poll marks the polled queues (every queue of the pool when none is named, paused ones and
  those of a paused pool included): NOT_READY turns READY, and ``last_polled`` is set; the
  deployments of those queues turn READY with ``last_polled`` set (their ``updated`` is left
  alone). The Runner's poll does the same for the deployments it names.

Ours: Prefect marks in background tasks after the poll, rewriting every row each time
(PrefectHQ/prefect#23129); deputy marks in the poll's own transaction, and only the rows
whose status is not READY yet or whose ``last_polled`` is older than
:data:`POLL_WRITE_INTERVAL`, so a repeated poll costs two SELECTs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    bindparam,
    case,
    func,
    nulls_last,
    or_,
    select,
    update,
)

from deputy.db import tables as t
from deputy.db.filters.objects import flow_run_clause
from deputy.db.wire import rendered_runs
from deputy.db.wire import rows as wire_rows
from deputy.db.wire.rendered_runs import WireRun
from deputy.db.wire.rows import WireSelect
from deputy.errors import ObjectNotFound
from deputy.schemas.core import StateType
from deputy.schemas.filters import FlowRunFilter, FlowRunSort, RelatedFilters, WorkQueueFilter
from deputy.schemas.flow_runs import core_flow_run_to_wire
from deputy.schemas.work_pools import WorkQueueStatus
from deputy.schemas.workers import DeploymentStatus
from deputy.services.flow_runs.read import FLOW_RUN_ROWS, filter_flow_runs, wire_runs
from deputy.services.work_pools import poll_queries
from deputy.services.work_pools.pools import SLOT_STATES, pool_not_found
from deputy.services.work_pools.queues import QUEUE_SLOT_STATES, queue_not_found

if TYPE_CHECKING:
    from deputy.db.connection import Connection

#: A polled queue or deployment whose ``last_polled`` is younger than this is not rewritten.
POLL_WRITE_INTERVAL = dt.timedelta(seconds=5)

_queue = t.work_queue.c
_run = t.flow_run.c
_deployment = t.deployment.c

# --- the worker poll ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Poll:
    pool_id: uuid.UUID
    pool_is_paused: bool
    pool_concurrency_limit: int | None
    queues: list[Row[Any]]


@dataclass(frozen=True, slots=True)
class _Capacity:
    """What a poll may still hand out: the queues with a free slot, the free slots of the
    capped ones among them, and the most runs in all."""

    queues: list[Row[Any]]
    caps: dict[uuid.UUID, int]
    limit: int


async def get_scheduled_flow_runs(
    conn: Connection,
    pool_name: str,
    *,
    queue_names: list[str] | None,
    scheduled_before: dt.datetime | None,
    scheduled_after: dt.datetime | None,
    limit: int,
    now: dt.datetime,
) -> list[WireRun]:
    """``POST /work_pools/{name}/get_scheduled_flow_runs``, as WorkerFlowRunResponse wire
    values (on SQLite, JSON the query rendered).

    Statements: the pool with its queues; PENDING/RUNNING counts per queue, only when the
    pool or a polled queue has a concurrency limit; the runs; and, only when a queue's poll
    mark is due, one UPDATE of the queues and one of their deployments.
    """
    poll = await _read_pool_and_queues(conn, pool_name, queue_names)
    results = await _scheduled_runs(conn, poll, scheduled_before, scheduled_after, limit, now)
    await _mark_queues_polled(conn, poll.queues, now)
    return results


async def _read_pool_and_queues(
    conn: Connection, pool_name: str, queue_names: list[str] | None
) -> _Poll:
    if queue_names:
        parameters = {"name": pool_name, "queue_names": queue_names}
        rows = (await conn.execute(poll_queries.POOL_AND_NAMED_QUEUES, parameters)).all()
    else:
        rows = (await conn.execute(poll_queries.POOL_AND_QUEUES, {"name": pool_name})).all()
    if not rows:
        raise pool_not_found(pool_name)
    queues = [row for row in rows if row.id is not None]
    if queue_names:
        found = {q.name for q in queues}
        for name in queue_names:
            if name not in found:
                raise queue_not_found(pool_name, name)
    first = rows[0]
    return _Poll(first.pool_id, first.pool_is_paused, first.pool_concurrency_limit, queues)


async def _scheduled_runs(
    conn: Connection,
    poll: _Poll,
    before: dt.datetime | None,
    after: dt.datetime | None,
    limit: int,
    timestamp: dt.datetime,
) -> list[WireRun]:
    """The runs handed out: none from a paused pool or when no slot is free."""
    if poll.pool_is_paused:
        return []
    capacity = await _free_capacity(conn, poll, limit)
    if not capacity.queues or capacity.limit <= 0:
        return []
    bounds = {key: at for key, at in (("before", before), ("after", after)) if at is not None}
    # On SQLite the answer is rendered by the query itself (deputy.db.wire.sqlite_json).
    render = conn.dialect.name == "sqlite" and wire_rows.ENABLED
    fetch = _fetch_capped if capacity.caps else _fetch_by_priority
    rows = await fetch(conn, capacity, bounds, render)
    return _shape(rows, poll.pool_id, timestamp, rendered=render)


async def _free_capacity(conn: Connection, poll: _Poll, limit: int) -> _Capacity:
    """The unpaused queues and ``limit``, cut to the free slots of the pool and of the queues
    with a concurrency limit (one grouped count, made only when there is such a limit)."""
    queues = [q for q in poll.queues if not q.is_paused]
    pool_limit = poll.pool_concurrency_limit
    if pool_limit is None and all(q.concurrency_limit is None for q in queues):
        return _Capacity(queues, {}, limit)
    rows = (await conn.execute(poll_queries.COUNT_SLOTS, {"pool_id": poll.pool_id})).all()
    taken: dict[uuid.UUID, int] = {queue_id: int(n) for queue_id, n in rows}
    if pool_limit is not None:
        limit = min(limit, max(0, pool_limit - sum(taken.values())))
    caps = {
        q.id: max(0, q.concurrency_limit - taken.get(q.id, 0))
        for q in queues
        if q.concurrency_limit is not None
    }
    return _Capacity(
        [q for q in queues if caps.get(q.id, 1) > 0],
        {queue_id: cap for queue_id, cap in caps.items() if cap > 0},
        limit,
    )


async def _fetch_capped(
    conn: Connection, capacity: _Capacity, bounds: dict[str, dt.datetime], render: bool
) -> Sequence[Any]:
    """One statement: the runs by queue priority then time, within each queue's free slots."""
    runs = poll_queries.capped_runs("before" in bounds, "after" in bounds, capacity.caps)
    rendered = runs.rendered(rendered_runs.worker_columns) if render else None
    queue_ids = [q.id for q in capacity.queues]
    parameters = {"queue_ids": queue_ids, "limit": capacity.limit, **bounds}
    return await _fetch(conn, runs, rendered, parameters)


async def _fetch_by_priority(
    conn: Connection, capacity: _Capacity, bounds: dict[str, dt.datetime], render: bool
) -> Sequence[Any]:
    """Queue by queue in priority order (queues sharing a priority together, by time), each
    an ordered index scan that stops at what is still needed."""
    variant = ("before" in bounds, "after" in bounds)
    runs = poll_queries.same_priority_runs(*variant)
    rendered = poll_queries.same_priority_rendered(*variant) if render else None
    by_priority: dict[int, list[uuid.UUID]] = {}
    for queue in capacity.queues:
        by_priority.setdefault(queue.priority, []).append(queue.id)
    found: list[Any] = []
    for priority in sorted(by_priority):
        parameters = {
            "queue_ids": by_priority[priority],
            "limit": capacity.limit - len(found),
            **bounds,
        }
        found.extend(await _fetch(conn, runs, rendered, parameters))
        if len(found) >= capacity.limit:
            break
    return found


async def _fetch(
    conn: Connection, runs: WireSelect, rendered: Select[Any] | None, parameters: dict[str, Any]
) -> Sequence[Any]:
    """The rows of ``rendered`` (SQLite writes each answer) when given, else of ``runs``."""
    if rendered is not None:
        return (await conn.execute(rendered, parameters)).all()
    return await runs.rows(conn, parameters)


def _shape(
    rows: Sequence[Any], pool_id: uuid.UUID, timestamp: dt.datetime, *, rendered: bool
) -> list[WireRun]:
    """WorkerFlowRunResponse values, from rendered rows or from wire rows."""
    if rendered:
        text_id = str(pool_id)
        return [rendered_runs.worker_flow_run(row, text_id, timestamp) for row in rows]
    state_fields = poll_queries.STATE_FIELDS
    results: list[WireRun] = []
    for row in rows:
        current = None
        if row["state__id"] is not None:
            current = {f: row[f"state__{f}"] for f in state_fields}
        results.append(
            {
                "work_pool_id": pool_id,
                "work_queue_id": row["work_queue_id"],
                "flow_run": core_flow_run_to_wire(row, current, timestamp),
            }
        )
    return results


# --- a queue polled by id (old agents, prefect work-queue preview) ------------------------


async def read_work_queue_runs(
    conn: Connection,
    queue_id: uuid.UUID,
    *,
    scheduled_before: dt.datetime | None,
    limit: int,
    mark_polled: bool,
    now: dt.datetime,
) -> list[WireRun]:
    """``POST /work_queues/{id}/get_runs`` (``prefect work-queue preview`` and ``read-runs``):
    the queue's SCHEDULED runs, earliest first, no more than its free concurrency slots, as
    FlowRunResponse wire values; a poll (so the queue is marked polled) unless the UI asks.

    A queue with a ``filter`` is a legacy tag-based queue, as in Prefect: its runs are the
    scheduled runs of a deployment (one of the filter's ``deployment_ids``, if any) with all
    of the filter's tags, wherever they are queued.
    """
    queue = (await conn.execute(select(t.work_queue).where(_queue.id == queue_id))).first()
    if queue is None:
        raise ObjectNotFound(f"Work queue with id {queue_id} not found.")
    if mark_polled:
        await _mark_queues_polled(conn, [queue], now)
    if queue.is_paused:
        return []
    scheduled = {
        "state": {"type": {"any_": [StateType.SCHEDULED.value]}},
        "next_scheduled_start_time": {"before_": scheduled_before},
    }
    if queue.filter is None:
        runs_of_queue = RelatedFilters(
            flow_runs=FlowRunFilter.model_validate(scheduled),
            work_pool_queues=WorkQueueFilter.model_validate({"id": {"any_": [queue_id]}}),
        )
        busy = _run.work_queue_id == queue_id
        slot_states: tuple[str, ...] = QUEUE_SLOT_STATES
    else:
        matching = {
            "tags": {"all_": queue.filter.get("tags")},
            "deployment_id": {"any_": queue.filter.get("deployment_ids"), "is_null_": False},
        }
        runs_of_queue = RelatedFilters(
            flow_runs=FlowRunFilter.model_validate({**scheduled, **matching})
        )
        busy = flow_run_clause(FlowRunFilter.model_validate(matching))
        slot_states = SLOT_STATES
    if queue.concurrency_limit is not None:
        occupying = select(func.count()).where(busy, _run.state_type.in_(slot_states))
        taken = int((await conn.execute(occupying)).scalar_one())
        limit = min(limit, max(queue.concurrency_limit - taken, 0))
    return await filter_flow_runs(
        conn,
        runs_of_queue,
        sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
        offset=0,
        limit=limit,
        now=now,
    )


# --- the Runner's poll (served deployments) -----------------------------------------------


async def get_scheduled_flow_runs_for_deployments(
    conn: Connection,
    deployment_ids: list[uuid.UUID],
    *,
    scheduled_before: dt.datetime | None,
    limit: int,
    now: dt.datetime,
) -> list[WireRun]:
    """``POST /deployments/get_scheduled_flow_runs``: SCHEDULED runs (AwaitingRetry included,
    as Prefect) of existing deployments among ``deployment_ids``, earliest first, as
    FlowRunResponse wire values; then the deployments that need it are marked READY and polled.
    Two statements."""
    known = select(_deployment.id).where(_deployment.id.in_(deployment_ids))
    conditions = [_run.deployment_id.in_(known), _run.state_type == StateType.SCHEDULED.value]
    if scheduled_before is not None:
        conditions.append(_run.next_scheduled_start_time <= scheduled_before)
    runs = FLOW_RUN_ROWS.refined(
        lambda query: (
            query.where(*conditions)
            .order_by(nulls_last(_run.next_scheduled_start_time.asc()), _run.id.desc())
            .limit(limit)
        )
    )
    results = await wire_runs(conn, runs, now=now)
    if deployment_ids:
        await conn.execute(
            _MARK_DEPLOYMENTS,
            {
                "deployment_ids": deployment_ids,
                "polled": now,
                "stale_before": now - POLL_WRITE_INTERVAL,
            },
        )
    return results


# --- marking polls ------------------------------------------------------------------------

_MARK_QUEUES_POLLED = (
    update(t.work_queue)
    .where(_queue.id.in_(bindparam("queue_ids", expanding=True)))
    .values(
        last_polled=bindparam("polled"),
        updated=bindparam("polled"),
        status=case(
            (_queue.status == WorkQueueStatus.NOT_READY.value, WorkQueueStatus.READY.value),
            else_=_queue.status,
        ),
    )
)


def _deployments_needing_mark() -> ColumnElement[bool]:
    return or_(
        _deployment.status != DeploymentStatus.READY.value,
        _deployment.last_polled.is_(None),
        _deployment.last_polled < bindparam("stale_before", type_=_deployment.last_polled.type),
    )


# ``updated`` is left alone, as Prefect leaves it (it drives schedule recalculation there).
_MARK_DEPLOYMENTS_OF_QUEUES = (
    update(t.deployment)
    .where(
        _deployment.work_queue_id.in_(bindparam("queue_ids", expanding=True)),
        _deployments_needing_mark(),
    )
    .values(status=DeploymentStatus.READY.value, last_polled=bindparam("polled"))
)
_MARK_DEPLOYMENTS = (
    update(t.deployment)
    .where(
        _deployment.id.in_(bindparam("deployment_ids", expanding=True)),
        _deployments_needing_mark(),
    )
    .values(status=DeploymentStatus.READY.value, last_polled=bindparam("polled"))
)


def _needs_poll_mark(queue: Row[Any], stale_before: dt.datetime) -> bool:
    return (
        queue.status == WorkQueueStatus.NOT_READY
        or queue.last_polled is None
        or queue.last_polled < stale_before
    )


async def _mark_queues_polled(
    conn: Connection, queues: Sequence[Row[Any]], timestamp: dt.datetime
) -> None:
    """``last_polled`` (and NOT_READY → READY) for the queues that need it, then READY for
    their deployments that need it. Nothing at all when every queue was marked recently."""
    stale_before = timestamp - POLL_WRITE_INTERVAL
    stale = [q.id for q in queues if _needs_poll_mark(q, stale_before)]
    if not stale:
        return
    await conn.execute(_MARK_QUEUES_POLLED, {"queue_ids": stale, "polled": timestamp})
    await conn.execute(
        _MARK_DEPLOYMENTS_OF_QUEUES,
        {"queue_ids": [q.id for q in queues], "polled": timestamp, "stale_before": stale_before},
    )
