"""Workers and polling: heartbeats, the worker and Runner polls, and READY / OFFLINE statuses.

Rules kept from Prefect 3.9.1:

* A heartbeat upserts ``worker(work_pool_id, name)`` as ONLINE (``updated`` is left alone,
  as Prefect's upsert leaves it) and turns a NOT_READY pool READY.
* A worker is OFFLINE once its last heartbeat is older than 3 times its heartbeat interval
  (30 s when it sent none); a READY pool with no ONLINE worker left turns NOT_READY. Both are
  done by :func:`mark_offline_workers`, which a service loop calls (Prefect's foreman).
* The worker poll returns SCHEDULED runs, except AwaitingRetry (``retry_type ==
  "in_process"``), of the unpaused queues of an unpaused pool (a paused pool gives ``[]``),
  ordered by queue priority, then ``next_scheduled_start_time``; without ``scheduled_before``
  there is no time bound. Pool and queue concurrency limits count PENDING and RUNNING runs.
  No run is claimed: two workers may receive the same run; the PENDING transition decides.
* A poll marks the polled queues (every queue of the pool when none is named, paused ones and
  those of a paused pool included): NOT_READY turns READY, and ``last_polled`` is set; the
  deployments of those queues turn READY with ``last_polled`` set (their ``updated`` is left
  alone). The Runner's poll does the same for the deployments it names.
* Queues and deployments not polled for 60 s turn NOT_READY again
  (:func:`mark_unpolled_not_ready`, also for the service loop).

Differences that are ours: Prefect marks queues and deployments in background tasks after the
poll, rewriting every row each time (PrefectHQ/prefect#23129); deputy does it in the poll's own
transaction and only for rows that need it: a status that is not READY yet, or a
``last_polled`` older than :data:`POLL_WRITE_INTERVAL`. A busy poll loop therefore writes at
most once per interval, and a repeated poll costs two SELECTs. Deployments are checked when
one of the polled queues is due, so a deployment added to a queue polled without pause turns
READY within that interval (Prefect's background task takes one to three seconds).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Subquery,
    and_,
    bindparam,
    case,
    delete,
    exists,
    extract,
    func,
    literal,
    nulls_last,
    or_,
    select,
    true,
    update,
)

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict, is_postgres
from deputy.db.filters.runs import flow_run_clause
from deputy.db.wire import rendered_runs
from deputy.db.wire import rows as wire_rows
from deputy.db.wire.rendered_runs import WireRun
from deputy.db.wire.rows import WireSelect
from deputy.errors import NotFound, ObjectNotFound
from deputy.schemas.core import StateType
from deputy.schemas.filters import (
    FlowRunFilter,
    FlowRunSort,
    Operator,
    RelatedFilters,
    WorkQueueFilter,
)
from deputy.schemas.work_pools import WorkPoolStatus, WorkQueueStatus
from deputy.schemas.workers import (
    DeploymentStatus,
    WorkerFilter,
    WorkerStatus,
    core_flow_run_to_wire,
)
from deputy.services.common import now as utc_now
from deputy.services.flow_runs.read import FLOW_RUN_ROWS, filter_flow_runs, wire_runs
from deputy.services.work_pools.pools import (
    LAST_POLLED_TIMEOUT,
    QUEUE_SLOT_STATES,
    SLOT_STATES,
    pool_not_found,
    queue_not_found,
)

if TYPE_CHECKING:
    from deputy.db.connection import Connection

WORKER_NOT_FOUND = "Worker not found."

#: Heartbeats a worker may miss before it is OFFLINE (Prefect's foreman default).
INACTIVITY_HEARTBEAT_MULTIPLE = 3
#: The heartbeat interval assumed for a worker that did not send one.
FALLBACK_HEARTBEAT_INTERVAL_SECONDS = 30
#: A polled queue or deployment whose ``last_polled`` is younger than this is not rewritten.
POLL_WRITE_INTERVAL = dt.timedelta(seconds=5)


wp = t.work_pool
wq = t.work_queue
run = t.flow_run.c
state = t.flow_run_state.c
dep = t.deployment.c
wk = t.worker

# --- heartbeats and workers ---------------------------------------------------------------

_READ_POOL = select(wp.c.id, wp.c.status).where(wp.c.name == bindparam("name"))


async def _pool_by_name(conn: Connection, name: str) -> Any:
    row = (await conn.execute(_READ_POOL, {"name": name})).first()
    if row is None:
        raise pool_not_found(name)
    return row


def _pool_status_values(status: WorkPoolStatus, timestamp: dt.datetime) -> dict[str, Any]:
    return {
        "status": status.value,
        "last_status_event_id": uuid.uuid4(),
        "last_transitioned_status_at": timestamp,
        "updated": timestamp,
    }


async def worker_heartbeat(
    conn: Connection,
    pool_name: str,
    name: str,
    heartbeat_interval_seconds: int | None,
) -> None:
    """Upsert the worker as ONLINE; a NOT_READY pool turns READY. Two statements, three when
    the pool changes status."""
    pool = await _pool_by_name(conn, pool_name)
    timestamp = utc_now()
    changing: dict[str, Any] = {
        "last_heartbeat_time": timestamp,
        "status": WorkerStatus.ONLINE.value,
    }
    if heartbeat_interval_seconds is not None:
        changing["heartbeat_interval_seconds"] = heartbeat_interval_seconds
    insert = insert_on_conflict(conn, wk).values(
        id=uuid.uuid4(),
        created=timestamp,
        updated=timestamp,
        name=name,
        work_pool_id=pool.id,
        **changing,
    )
    await conn.execute(
        insert.on_conflict_do_update(index_elements=["work_pool_id", "name"], set_=changing)
    )
    if pool.status == WorkPoolStatus.NOT_READY:
        await conn.execute(
            update(wp)
            .where(wp.c.id == pool.id, wp.c.status == WorkPoolStatus.NOT_READY.value)
            .values(**_pool_status_values(WorkPoolStatus.READY, timestamp))
        )


def worker_clause(flt: WorkerFilter) -> ColumnElement[bool]:
    """Prefect's ``WorkerFilter``: each child's conditions ANDed, children joined by
    ``operator``; an empty filter matches everything."""
    children: list[ColumnElement[bool]] = []
    if flt.last_heartbeat_time is not None:
        sub = []
        if flt.last_heartbeat_time.before_ is not None:
            sub.append(wk.c.last_heartbeat_time <= flt.last_heartbeat_time.before_)
        if flt.last_heartbeat_time.after_ is not None:
            sub.append(wk.c.last_heartbeat_time >= flt.last_heartbeat_time.after_)
        children.append(and_(*sub) if sub else true())
    if flt.status is not None:
        sub = []
        if flt.status.any_ is not None:
            sub.append(wk.c.status.in_([s.value for s in flt.status.any_]))
        if flt.status.not_any_:
            sub.append(wk.c.status.not_in([s.value for s in flt.status.not_any_]))
        children.append(and_(*sub) if sub else true())
    if not children:
        return true()
    return and_(*children) if flt.operator == Operator.and_ else or_(*children)


async def read_workers(
    conn: Connection,
    pool_name: str,
    flt: WorkerFilter | None,
    *,
    offset: int,
    limit: int,
) -> list[Any]:
    """A pool's workers, most recent heartbeat first; 404 for an unknown pool."""
    pool = await _pool_by_name(conn, pool_name)
    query = (
        select(wk)
        .where(wk.c.work_pool_id == pool.id)
        .order_by(wk.c.last_heartbeat_time.desc(), wk.c.name)
        .offset(offset)
        .limit(limit)
    )
    if flt is not None:
        query = query.where(worker_clause(flt))
    return list((await conn.execute(query)).all())


async def delete_worker(conn: Connection, pool_name: str, name: str) -> None:
    """Delete a pool's worker; 404 for an unknown pool, then for an unknown worker. The pool's
    status follows at the next :func:`mark_offline_workers`, as in Prefect."""
    pool = await _pool_by_name(conn, pool_name)
    result = await conn.execute(delete(wk).where(wk.c.work_pool_id == pool.id, wk.c.name == name))
    if result.rowcount == 0:
        raise NotFound(WORKER_NOT_FOUND)


# --- the service loop's steps -------------------------------------------------------------


def _seconds_since_heartbeat(conn: Connection, moment: dt.datetime) -> ColumnElement[Any]:
    """Seconds from a worker's last heartbeat to ``moment``, computed by the database."""
    at = bindparam("moment", moment, type_=t.worker.c.last_heartbeat_time.type)
    if is_postgres(conn):
        return extract("epoch", at - wk.c.last_heartbeat_time)
    # SQLite keeps timestamps as UTC text that julianday() reads; days to seconds.
    return (func.julianday(at) - func.julianday(wk.c.last_heartbeat_time)) * 86400.0


async def mark_offline_workers(conn: Connection, now: dt.datetime) -> int:
    """Turn ONLINE workers OFFLINE when their last heartbeat is older than
    ``INACTIVITY_HEARTBEAT_MULTIPLE`` times their interval (one UPDATE); then turn READY pools
    left without an ONLINE worker NOT_READY (one more UPDATE). Returns the workers marked.
    """
    allowed = func.coalesce(
        wk.c.heartbeat_interval_seconds, literal(FALLBACK_HEARTBEAT_INTERVAL_SECONDS, Integer)
    ) * literal(INACTIVITY_HEARTBEAT_MULTIPLE, Integer)
    result = await conn.execute(
        update(wk)
        .where(
            wk.c.status == WorkerStatus.ONLINE.value,
            _seconds_since_heartbeat(conn, now) > allowed,
        )
        .values(status=WorkerStatus.OFFLINE.value)
    )
    online = exists().where(wk.c.work_pool_id == wp.c.id, wk.c.status == WorkerStatus.ONLINE.value)
    await conn.execute(
        update(wp)
        .where(wp.c.status == WorkPoolStatus.READY.value, ~online)
        .values(**_pool_status_values(WorkPoolStatus.NOT_READY, now))
    )
    return int(result.rowcount or 0)


async def mark_unpolled_not_ready(conn: Connection, now: dt.datetime) -> int:
    """Turn READY queues not polled for ``LAST_POLLED_TIMEOUT`` NOT_READY, and READY
    deployments whose own and whose queue's last poll are that old. Two UPDATEs; returns
    the rows changed."""
    threshold = now - LAST_POLLED_TIMEOUT
    queues = await conn.execute(
        update(wq)
        .where(
            wq.c.status == WorkQueueStatus.READY.value,
            wq.c.last_polled.is_not(None),
            wq.c.last_polled < threshold,
        )
        .values(status=WorkQueueStatus.NOT_READY.value, updated=now)
    )
    queue_polled_recently = exists().where(
        wq.c.id == dep.work_queue_id,
        wq.c.last_polled.is_not(None),
        wq.c.last_polled >= threshold,
    )
    deployments = await conn.execute(
        update(t.deployment)
        .where(
            dep.status == DeploymentStatus.READY.value,
            dep.last_polled.is_not(None),
            dep.last_polled < threshold,
            ~queue_polled_recently,
        )
        .values(status=DeploymentStatus.NOT_READY.value)
    )
    return int(queues.rowcount or 0) + int(deployments.rowcount or 0)


# --- marking polls ------------------------------------------------------------------------

_MARK_QUEUES_POLLED = (
    update(wq)
    .where(wq.c.id.in_(bindparam("queue_ids", expanding=True)))
    .values(
        last_polled=bindparam("polled"),
        updated=bindparam("polled"),
        status=case(
            (wq.c.status == WorkQueueStatus.NOT_READY.value, WorkQueueStatus.READY.value),
            else_=wq.c.status,
        ),
    )
)


def _deployments_needing_mark() -> ColumnElement[bool]:
    return or_(
        dep.status != DeploymentStatus.READY.value,
        dep.last_polled.is_(None),
        dep.last_polled < bindparam("stale_before", type_=dep.last_polled.type),
    )


# ``updated`` is left alone, as Prefect leaves it (it drives schedule recalculation there).
_MARK_DEPLOYMENTS_OF_QUEUES = (
    update(t.deployment)
    .where(
        dep.work_queue_id.in_(bindparam("queue_ids", expanding=True)),
        _deployments_needing_mark(),
    )
    .values(status=DeploymentStatus.READY.value, last_polled=bindparam("polled"))
)
_MARK_DEPLOYMENTS = (
    update(t.deployment)
    .where(
        dep.id.in_(bindparam("deployment_ids", expanding=True)),
        _deployments_needing_mark(),
    )
    .values(status=DeploymentStatus.READY.value, last_polled=bindparam("polled"))
)


def _needs_poll_mark(queue: Any, stale_before: dt.datetime) -> bool:
    return (
        queue.status == WorkQueueStatus.NOT_READY
        or queue.last_polled is None
        or queue.last_polled < stale_before
    )


async def _mark_queues_polled(
    conn: Connection, queues: Sequence[Any], timestamp: dt.datetime
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


# --- the worker poll ----------------------------------------------------------------------

_POOL_COLUMNS = (
    wp.c.id.label("pool_id"),
    wp.c.is_paused.label("pool_is_paused"),
    wp.c.concurrency_limit.label("pool_concurrency_limit"),
    wq.c.id,
    wq.c.name,
    wq.c.is_paused,
    wq.c.concurrency_limit,
    wq.c.priority,
    wq.c.status,
    wq.c.last_polled,
)
# The pool and its queues (all, or the ones named) in one statement; a pool without a
# matching queue still gives one row, its queue columns null.
_READ_POOL_AND_QUEUES = (
    select(*_POOL_COLUMNS)
    .select_from(wp)
    .outerjoin(wq, wq.c.work_pool_id == wp.c.id)
    .where(wp.c.name == bindparam("name"))
)
_READ_POOL_AND_NAMED_QUEUES = (
    select(*_POOL_COLUMNS)
    .select_from(wp)
    .outerjoin(
        wq,
        and_(
            wq.c.work_pool_id == wp.c.id,
            wq.c.name.in_(bindparam("queue_names", expanding=True)),
        ),
    )
    .where(wp.c.name == bindparam("name"))
)
_COUNT_SLOTS = (
    select(run.work_queue_id, func.count())
    .select_from(t.flow_run.join(wq, wq.c.id == run.work_queue_id))
    .where(wq.c.work_pool_id == bindparam("pool_id"), run.state_type.in_(SLOT_STATES))
    .group_by(run.work_queue_id)
)

_STATE_FIELDS = ("id", "type", "name", "timestamp", "message", "data", "state_details")
_STATE_COLUMNS = tuple(getattr(state, f).label(f"state__{f}") for f in _STATE_FIELDS)


def _scheduled_conditions(has_before: bool, has_after: bool) -> list[ColumnElement[bool]]:
    retry_type = run.empirical_policy["retry_type"].as_string()
    where: list[ColumnElement[bool]] = [
        run.work_queue_id.in_(bindparam("queue_ids", expanding=True)),
        run.state_type == StateType.SCHEDULED.value,
        or_(retry_type.is_(None), retry_type != "in_process"),
    ]
    if has_before:
        where.append(run.next_scheduled_start_time <= bindparam("before"))
    if has_after:
        where.append(run.next_scheduled_start_time >= bindparam("after"))
    return where


#: Merged with defaults by the wire builder: read as Python values.
_PARSED_JSON = ("empirical_policy", "state__state_details")


@functools.cache
def _same_priority_runs(has_before: bool, has_after: bool) -> WireSelect:
    """SCHEDULED runs of queues that share one priority, earliest first, with their state.

    Without the queue join and the priority in ORDER BY, SQLite and PostgreSQL read the runs
    in order from ``ix_flow_run__work_queue_id_state_type_next_scheduled_start_time`` and stop
    at the limit, instead of sorting every scheduled run of the pool.
    """
    return WireSelect(select(t.flow_run, *_STATE_COLUMNS), parsed=_PARSED_JSON).refined(
        lambda query: (
            query.select_from(t.flow_run)
            .outerjoin(t.flow_run_state, state.id == run.state_id)
            .where(*_scheduled_conditions(has_before, has_after))
            # No tie-break on id: it would make SQLite sort every run sharing a time before
            # it can stop at the limit. Ties come in index order.
            .order_by(run.next_scheduled_start_time)
            .limit(bindparam("limit", type_=Integer))
        )
    )


@functools.cache
def _same_priority_rendered(has_before: bool, has_after: bool) -> Select[Any]:
    return _same_priority_runs(has_before, has_after).rendered(rendered_runs.worker_columns)


@functools.cache
def _capped_runs(has_before: bool, has_after: bool) -> tuple[WireSelect, Subquery]:
    """SCHEDULED runs of the given queues, by queue priority then time, with their state,
    each ranked by time within its queue; the caps are added by :func:`_capped_runs_query`."""
    ranked = (
        select(
            t.flow_run,
            wq.c.priority.label("queue__priority"),
            func.row_number()
            .over(partition_by=run.work_queue_id, order_by=run.next_scheduled_start_time)
            .label("queue__rank"),
        )
        .select_from(t.flow_run)
        .join(wq, wq.c.id == run.work_queue_id)
        .where(*_scheduled_conditions(has_before, has_after))
        .subquery("ranked")
    )
    r = ranked.c
    run_columns = [r[c.name] for c in t.flow_run.c]
    runs = WireSelect(select(*run_columns, *_STATE_COLUMNS), parsed=_PARSED_JSON).refined(
        lambda query: (
            query.select_from(ranked)
            .outerjoin(t.flow_run_state, state.id == r.state_id)
            .order_by(r.queue__priority, r.next_scheduled_start_time, r.id)
            .limit(bindparam("limit", type_=Integer))
        )
    )
    return runs, ranked


def _capped_runs_query(has_before: bool, has_after: bool, caps: dict[uuid.UUID, int]) -> WireSelect:
    """As :func:`_capped_runs`, with at most ``caps[queue]`` runs (the earliest) of
    each capped queue: the queues' free concurrency slots."""
    runs, ranked = _capped_runs(has_before, has_after)
    r = ranked.c
    within_caps = or_(
        r.work_queue_id.not_in(list(caps)),
        *(
            and_(r.work_queue_id == queue_id, r.queue__rank <= cap)
            for queue_id, cap in caps.items()
        ),
    )
    return runs.refined(lambda query: query.where(within_caps))


@dataclass(frozen=True, slots=True)
class _Poll:
    pool_id: uuid.UUID
    pool_is_paused: bool
    pool_concurrency_limit: int | None
    queues: list[Any]


async def _read_pool_and_queues(
    conn: Connection, pool_name: str, queue_names: list[str] | None
) -> _Poll:
    if queue_names:
        rows = (
            await conn.execute(
                _READ_POOL_AND_NAMED_QUEUES, {"name": pool_name, "queue_names": queue_names}
            )
        ).all()
    else:
        rows = (await conn.execute(_READ_POOL_AND_QUEUES, {"name": pool_name})).all()
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


async def get_scheduled_flow_runs(
    conn: Connection,
    pool_name: str,
    *,
    queue_names: list[str] | None,
    scheduled_before: dt.datetime | None,
    scheduled_after: dt.datetime | None,
    limit: int,
    now: dt.datetime | None = None,
) -> list[WireRun]:
    """``POST /work_pools/{name}/get_scheduled_flow_runs``, as WorkerFlowRunResponse wire
    values (on SQLite, JSON the query rendered).

    Statements: the pool with its queues; PENDING/RUNNING counts per queue, only when the
    pool or a polled queue has a concurrency limit; the runs; and, only when a queue's poll
    mark is due, one UPDATE of the queues and one of their deployments.
    """
    timestamp = now or utc_now()
    poll = await _read_pool_and_queues(conn, pool_name, queue_names)
    results = await _scheduled_runs(conn, poll, scheduled_before, scheduled_after, limit, timestamp)
    await _mark_queues_polled(conn, poll.queues, timestamp)
    return results


async def _scheduled_runs(
    conn: Connection,
    poll: _Poll,
    before: dt.datetime | None,
    after: dt.datetime | None,
    limit: int,
    timestamp: dt.datetime,
) -> list[WireRun]:
    if poll.pool_is_paused:
        return []
    queues = [q for q in poll.queues if not q.is_paused]
    caps: dict[uuid.UUID, int] = {}
    if poll.pool_concurrency_limit is not None or any(
        q.concurrency_limit is not None for q in queues
    ):
        rows = (await conn.execute(_COUNT_SLOTS, {"pool_id": poll.pool_id})).all()
        counts: dict[uuid.UUID, int] = {queue_id: int(n) for queue_id, n in rows}
        if poll.pool_concurrency_limit is not None:
            limit = min(limit, max(0, poll.pool_concurrency_limit - sum(counts.values())))
        for q in queues:
            if q.concurrency_limit is not None:
                caps[q.id] = max(0, q.concurrency_limit - counts.get(q.id, 0))
        queues = [q for q in queues if caps.get(q.id, 1) > 0]
        caps = {queue_id: cap for queue_id, cap in caps.items() if cap > 0}
    if not queues or limit <= 0:
        return []
    has_before, has_after = before is not None, after is not None
    bounds: dict[str, Any] = {}
    if has_before:
        bounds["before"] = before
    if has_after:
        bounds["after"] = after
    # On SQLite the answer is rendered by the query itself (deputy.db.wire.sqlite_json).
    render = conn.dialect.name == "sqlite" and wire_rows.ENABLED
    run_rows: list[Any]
    if caps:
        parameters = {"queue_ids": [q.id for q in queues], "limit": limit, **bounds}
        capped = _capped_runs_query(has_before, has_after, caps)
        if render:
            rendered = capped.rendered(rendered_runs.worker_columns)
            run_rows = list((await conn.execute(rendered, parameters)).all())
        else:
            run_rows = await capped.rows(conn, parameters)
    else:
        # Queue by queue in priority order (queues sharing a priority together, by time),
        # each an ordered index scan that stops at what is still needed.
        run_rows = []
        by_priority: dict[int, list[uuid.UUID]] = {}
        for queue in queues:
            by_priority.setdefault(queue.priority, []).append(queue.id)
        for priority in sorted(by_priority):
            parameters = {
                "queue_ids": by_priority[priority],
                "limit": limit - len(run_rows),
                **bounds,
            }
            if render:
                rendered = _same_priority_rendered(has_before, has_after)
                run_rows.extend((await conn.execute(rendered, parameters)).all())
            else:
                run_rows.extend(
                    await _same_priority_runs(has_before, has_after).rows(conn, parameters)
                )
            if len(run_rows) >= limit:
                break
    if render:
        pool_id = str(poll.pool_id)
        return [rendered_runs.worker_flow_run(row, pool_id, timestamp) for row in run_rows]
    results: list[WireRun] = []
    for row in run_rows:
        current = None
        if row["state__id"] is not None:
            current = {f: row[f"state__{f}"] for f in _STATE_FIELDS}
        results.append(
            {
                "work_pool_id": poll.pool_id,
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
) -> list[WireRun]:
    """``POST /work_queues/{id}/get_runs`` (``prefect work-queue preview`` and ``read-runs``):
    the queue's SCHEDULED runs, earliest first, no more than its free concurrency slots, as
    FlowRunResponse wire values; a poll (so the queue is marked polled) unless the UI asks.

    A queue with a ``filter`` is a legacy tag-based queue, as in Prefect: its runs are the
    scheduled runs of a deployment (one of the filter's ``deployment_ids``, if any) with all
    of the filter's tags, wherever they are queued.
    """
    queue = (await conn.execute(select(wq).where(wq.c.id == queue_id))).first()
    if queue is None:
        raise ObjectNotFound(f"Work queue with id {queue_id} not found.")
    if mark_polled:
        await _mark_queues_polled(conn, [queue], utc_now())
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
        busy = run.work_queue_id == queue_id
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
        occupying = select(func.count()).where(busy, run.state_type.in_(slot_states))
        taken = int((await conn.execute(occupying)).scalar_one())
        limit = min(limit, max(queue.concurrency_limit - taken, 0))
    return await filter_flow_runs(
        conn, runs_of_queue, sort=FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC, offset=0, limit=limit
    )


# --- the Runner's poll (served deployments) -----------------------------------------------


async def get_scheduled_flow_runs_for_deployments(
    conn: Connection,
    deployment_ids: list[uuid.UUID],
    *,
    scheduled_before: dt.datetime | None,
    limit: int,
) -> list[WireRun]:
    """``POST /deployments/get_scheduled_flow_runs``: SCHEDULED runs (AwaitingRetry included,
    as Prefect) of existing deployments among ``deployment_ids``, earliest first, as
    FlowRunResponse wire values; then the deployments that need it are marked READY and polled.
    Two statements."""
    timestamp = utc_now()
    known = select(dep.id).where(dep.id.in_(deployment_ids))
    conditions = [run.deployment_id.in_(known), run.state_type == StateType.SCHEDULED.value]
    if scheduled_before is not None:
        conditions.append(run.next_scheduled_start_time <= scheduled_before)
    runs = FLOW_RUN_ROWS.refined(
        lambda query: (
            query.where(*conditions)
            .order_by(nulls_last(run.next_scheduled_start_time.asc()), run.id.desc())
            .limit(limit)
        )
    )
    results = await wire_runs(conn, runs, timestamp=timestamp)
    if deployment_ids:
        await conn.execute(
            _MARK_DEPLOYMENTS,
            {
                "deployment_ids": deployment_ids,
                "polled": timestamp,
                "stale_before": timestamp - POLL_WRITE_INTERVAL,
            },
        )
    return results
