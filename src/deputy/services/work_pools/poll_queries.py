"""The worker poll's statements (``polls.get_scheduled_flow_runs``), built once per variant.

The runs are read in one of two ways. Without queue concurrency limits, queue by queue in
priority order (:func:`same_priority_runs`), each an ordered index scan that stops at the
limit. With them, in one statement that ranks each queue's runs and keeps the free slots'
worth (:func:`capped_runs`). Both come as :class:`WireSelect` and, for SQLite to render the
answer itself, as plain SELECTs of :func:`deputy.db.wire.rendered_runs.worker_columns`.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, Subquery, and_, bindparam, func, or_, select

from deputy.db import tables as t
from deputy.db.wire import rendered_runs
from deputy.db.wire.rows import WireSelect
from deputy.schemas.core import StateType
from deputy.services.work_pools.pools import SLOT_STATES

_pool = t.work_pool.c
_queue = t.work_queue.c
_run = t.flow_run.c
_state = t.flow_run_state.c

_POOL_COLUMNS = (
    _pool.id.label("pool_id"),
    _pool.is_paused.label("pool_is_paused"),
    _pool.concurrency_limit.label("pool_concurrency_limit"),
    _queue.id,
    _queue.name,
    _queue.is_paused,
    _queue.concurrency_limit,
    _queue.priority,
    _queue.status,
    _queue.last_polled,
)
# The pool and its queues (all, or the ones named) in one statement; a pool without a
# matching queue still gives one row, its queue columns null.
POOL_AND_QUEUES = (
    select(*_POOL_COLUMNS)
    .select_from(t.work_pool)
    .outerjoin(t.work_queue, _queue.work_pool_id == _pool.id)
    .where(_pool.name == bindparam("name"))
)
POOL_AND_NAMED_QUEUES = (
    select(*_POOL_COLUMNS)
    .select_from(t.work_pool)
    .outerjoin(
        t.work_queue,
        and_(
            _queue.work_pool_id == _pool.id,
            _queue.name.in_(bindparam("queue_names", expanding=True)),
        ),
    )
    .where(_pool.name == bindparam("name"))
)
COUNT_SLOTS = (
    select(_run.work_queue_id, func.count())
    .select_from(t.flow_run.join(t.work_queue, _queue.id == _run.work_queue_id))
    .where(_queue.work_pool_id == bindparam("pool_id"), _run.state_type.in_(SLOT_STATES))
    .group_by(_run.work_queue_id)
)

STATE_FIELDS = ("id", "type", "name", "timestamp", "message", "data", "state_details")
_STATE_COLUMNS = tuple(getattr(_state, f).label(f"state__{f}") for f in STATE_FIELDS)


def _scheduled_conditions(has_before: bool, has_after: bool) -> list[ColumnElement[bool]]:
    retry_type = _run.empirical_policy["retry_type"].as_string()
    where: list[ColumnElement[bool]] = [
        _run.work_queue_id.in_(bindparam("queue_ids", expanding=True)),
        _run.state_type == StateType.SCHEDULED.value,
        or_(retry_type.is_(None), retry_type != "in_process"),
    ]
    if has_before:
        where.append(_run.next_scheduled_start_time <= bindparam("before"))
    if has_after:
        where.append(_run.next_scheduled_start_time >= bindparam("after"))
    return where


#: Merged with defaults by the wire builder: read as Python values.
_PARSED_JSON = ("empirical_policy", "state__state_details")


@functools.cache
def same_priority_runs(has_before: bool, has_after: bool) -> WireSelect:
    """SCHEDULED runs of queues that share one priority, earliest first, with their state.

    Without the queue join and the priority in ORDER BY, SQLite and PostgreSQL read the runs
    in order from ``ix_flow_run__work_queue_id_state_type_next_scheduled_start_time`` and stop
    at the limit, instead of sorting every scheduled run of the pool.
    """
    return WireSelect(select(t.flow_run, *_STATE_COLUMNS), parsed=_PARSED_JSON).refined(
        lambda query: (
            query.select_from(t.flow_run)
            .outerjoin(t.flow_run_state, _state.id == _run.state_id)
            .where(*_scheduled_conditions(has_before, has_after))
            # No tie-break on id: it would make SQLite sort every run sharing a time before
            # it can stop at the limit. Ties come in index order.
            .order_by(_run.next_scheduled_start_time)
            .limit(bindparam("limit", type_=Integer))
        )
    )


@functools.cache
def same_priority_rendered(has_before: bool, has_after: bool) -> Select[Any]:
    return same_priority_runs(has_before, has_after).rendered(rendered_runs.worker_columns)


@functools.cache
def _ranked_runs(has_before: bool, has_after: bool) -> tuple[WireSelect, Subquery]:
    """SCHEDULED runs of the given queues, by queue priority then time, with their state,
    each ranked by time within its queue; the caps are added by :func:`capped_runs`."""
    ranked = (
        select(
            t.flow_run,
            _queue.priority.label("queue__priority"),
            func.row_number()
            .over(partition_by=_run.work_queue_id, order_by=_run.next_scheduled_start_time)
            .label("queue__rank"),
        )
        .select_from(t.flow_run)
        .join(t.work_queue, _queue.id == _run.work_queue_id)
        .where(*_scheduled_conditions(has_before, has_after))
        .subquery("ranked")
    )
    r = ranked.c
    run_columns = [r[c.name] for c in t.flow_run.c]
    runs = WireSelect(select(*run_columns, *_STATE_COLUMNS), parsed=_PARSED_JSON).refined(
        lambda query: (
            query.select_from(ranked)
            .outerjoin(t.flow_run_state, _state.id == r.state_id)
            .order_by(r.queue__priority, r.next_scheduled_start_time, r.id)
            .limit(bindparam("limit", type_=Integer))
        )
    )
    return runs, ranked


def capped_runs(has_before: bool, has_after: bool, caps: dict[uuid.UUID, int]) -> WireSelect:
    """As :func:`_ranked_runs`, with at most ``caps[queue]`` runs (the earliest) of
    each capped queue: the queues' free concurrency slots."""
    runs, ranked = _ranked_runs(has_before, has_after)
    r = ranked.c
    within_caps = or_(
        r.work_queue_id.not_in(list(caps)),
        *(
            and_(r.work_queue_id == queue_id, r.queue__rank <= cap)
            for queue_id, cap in caps.items()
        ),
    )
    return runs.refined(lambda query: query.where(within_caps))
