"""The scheduler: the auto-scheduled runs a deployment's schedules keep in the future.

Exactly one run per slot: ``flow_run`` has a unique index on (deployment, expected start
time) over auto-scheduled runs, and every insert here is ``ON CONFLICT DO NOTHING``, so no
interleaving of edits and scheduler passes (in one process or many) can create a slot twice.

A deployment's future runs are re-planned in the same transaction as any change to it or its
schedules (``replan``), under the deployment's row lock: runs that no longer match the plan
are deleted, missing ones are inserted, matching ones are kept (same id). The scheduler pass
(``run_scheduler``, run by ``background.py`` in its own transactions) only tops up schedules
whose ``refill_at`` has come, so an idle pass is one index range scan.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict, is_postgres
from deputy.db.engine import Database
from deputy.errors import NotFound
from deputy.orchestration.bookkeeping import run_updates_for_state
from deputy.scheduling import schedule_times
from deputy.schemas.core import DEFAULT_POLICY, EMPTY_STATE_DETAILS, StateType
from deputy.schemas.schedules import load_schedule
from deputy.services.common import Clock, uuid7
from deputy.services.flow_runs.create import deployment_run_labels, new_run_row
from deputy.settings import Settings

if TYPE_CHECKING:
    from deputy.db.connection import Connection

DEPLOYMENT_NOT_FOUND = "Deployment not found."
AUTO_SCHEDULED_TAG = "auto-scheduled"

logger = logging.getLogger("deputy.services")

_schedule = t.deployment_schedule.c
_run = t.flow_run.c
_deployment = t.deployment.c


@dataclass(frozen=True)
class Horizon:
    """How many runs, how far ahead, the scheduler keeps (Prefect's scheduler settings)."""

    min_runs: int = 3
    max_runs: int = 100
    min_time: dt.timedelta = dt.timedelta(hours=1)
    max_time: dt.timedelta = dt.timedelta(days=100)

    @classmethod
    def from_settings(cls, settings: Settings) -> Horizon:
        return cls(
            min_runs=settings.scheduler_min_runs,
            max_runs=settings.scheduler_max_runs,
            min_time=dt.timedelta(seconds=settings.scheduler_min_scheduled_time_seconds),
            max_time=dt.timedelta(seconds=settings.scheduler_max_scheduled_time_seconds),
        )


# --- planning (pure) -------------------------------------------------------------------


def plan_dates(
    schedule: Any,
    *,
    start: dt.datetime,
    end: dt.datetime,
    min_time: dt.timedelta,
    min_runs: int,
    max_runs: int,
) -> list[dt.datetime]:
    """Prefect's rule: from ``start``, at most ``max_runs`` dates up to ``end``, stopping as
    soon as there are ``min_runs`` of them and the last is at least ``min_time`` ahead."""
    dates: list[dt.datetime] = []
    for moment in schedule_times(schedule, start=start, end=end, count=max_runs):
        dates.append(moment)
        if len(dates) >= min_runs and moment >= start + min_time:
            break
    return dates


def refill_time(
    schedule: Any, dates: Sequence[dt.datetime], *, cap: int, horizon: Horizon, end: dt.datetime
) -> dt.datetime | None:
    """When a schedule whose future runs are ``dates`` next needs more of them: when fewer
    than the minimum are left, when the last is less than ``min_time`` ahead (unless the cap
    holds it back), or when the next slot enters the window. None: the schedule is over."""
    moments: list[dt.datetime] = []
    if dates:
        moments.append(dates[-min(len(dates), horizon.min_runs)])
        if len(dates) < cap:
            moments.append(dates[-1] - horizon.min_time)
    if len(dates) < min(cap, horizon.min_runs):
        following = schedule_times(
            schedule, start=end + dt.timedelta(microseconds=1), end=None, count=1
        )
        if following:
            moments.append(following[0] - horizon.max_time)
    return min(moments) if moments else None


def _later(moment: dt.datetime, delta: dt.timedelta) -> dt.datetime:
    """``moment + delta``, or the last representable moment when that is past year 9999."""
    try:
        return moment + delta
    except OverflowError:
        return dt.datetime.max.replace(tzinfo=dt.UTC)


async def read_schedules(conn: Connection, deployment_id: uuid.UUID) -> list[Any]:
    """A deployment's schedules, most recently updated first (Prefect's order)."""
    query = (
        select(t.deployment_schedule)
        .where(_schedule.deployment_id == deployment_id)
        .order_by(_schedule.updated.desc(), _schedule.id)
    )
    return list((await conn.execute(query)).all())


# --- runs -------------------------------------------------------------------------------

_LOCK_COLUMNS = (
    _deployment.id,
    _deployment.flow_id,
    _deployment.version,
    _deployment.paused,
    _deployment.parameters,
    _deployment.tags,
    _deployment.labels,
    _deployment.work_queue_id,
    _deployment.work_queue_name,
    _deployment.infrastructure_document_id,
)


async def lock_deployment(
    conn: Connection, deployment_id: uuid.UUID, *, skip_locked: bool = False
) -> Any:
    """The deployment's scheduling fields, its row locked for this transaction (on SQLite the
    write transaction already excludes every other writer). None if absent or, with
    ``skip_locked``, held by another transaction (which re-plans it itself)."""
    query = select(*_LOCK_COLUMNS).where(_deployment.id == deployment_id)
    if is_postgres(conn):
        query = query.with_for_update(skip_locked=skip_locked)
    return (await conn.execute(query)).first()


def _not_started(moment: dt.datetime | None) -> list[Any]:
    """Prefect's "still waiting" runs: Scheduled, never run, not waiting for a slot."""
    clauses = [
        _run.auto_scheduled.is_(True),
        _run.state_type == StateType.SCHEDULED.value,
        _run.state_name != "AwaitingConcurrencySlot",
        _run.run_count == 0,
    ]
    if moment is not None:
        clauses.append(_run.next_scheduled_start_time > moment)
    return clauses


@dataclass(frozen=True)
class _Slot:
    run: dict[str, Any]
    state: dict[str, Any]


#: What a planned run must equal for an existing one to be kept as it is.
_KEPT_IF_EQUAL = (
    "parameters",
    "tags",
    "labels",
    "work_queue_id",
    "work_queue_name",
    "deployment_version",
    "infrastructure_document_id",
    "created_by",
)


def _signature(run: Any) -> tuple[Any, ...]:
    get = run.get if isinstance(run, dict) else run._mapping.get
    return tuple(get(key) for key in _KEPT_IF_EQUAL)


def _slot(
    deployment: Any, schedule: Any, kind: str, moment: dt.datetime, *, now: dt.datetime
) -> _Slot:
    run = new_run_row(
        now,
        flow_id=deployment.flow_id,
        deployment_id=deployment.id,
        deployment_version=deployment.version,
        work_queue_id=deployment.work_queue_id,
        work_queue_name=deployment.work_queue_name,
        parameters={**deployment.parameters, **schedule.parameters},
        infrastructure_document_id=deployment.infrastructure_document_id,
        idempotency_key=f"scheduled {deployment.id} {schedule.id} {moment}",
        context={},
        empirical_policy=DEFAULT_POLICY,
        tags=list(dict.fromkeys([AUTO_SCHEDULED_TAG, *deployment.tags])),
        labels=deployment_run_labels(deployment, None),
        auto_scheduled=True,
        job_variables={},
        created_by={
            "id": str(schedule.id),
            "type": "SCHEDULE",
            "display_value": schedule.slug or kind,
        },
    )
    scheduled_time = moment.isoformat().replace("+00:00", "Z")
    state = {
        "id": uuid7(),
        "created": now,
        "updated": now,
        "flow_run_id": run["id"],
        "type": StateType.SCHEDULED.value,
        "name": "Scheduled",
        "timestamp": now,
        "message": "Flow run scheduled",
        "data": None,
        "state_details": {
            **EMPTY_STATE_DETAILS,
            "scheduled_time": scheduled_time,
            "flow_run_id": str(run["id"]),
        },
    }
    run.update(run_updates_for_state(run, None, None, state))
    # The slot is the schedule's time, not the moment the state was written.
    run["expected_start_time"] = moment
    run["next_scheduled_start_time"] = moment
    return _Slot(run, state)


async def _insert_slots(conn: Connection, slots: Sequence[_Slot]) -> int:
    """Insert the runs whose slot is free and their first states; returns how many."""
    if not slots:
        return 0
    statement = (
        insert_on_conflict(conn.dialect.name, t.flow_run)
        .on_conflict_do_nothing()
        .returning(_run.id)
    )
    inserted = {row.id for row in await conn.execute(statement, [s.run for s in slots])}
    states = [s.state for s in slots if s.run["id"] in inserted]
    if states:
        await conn.execute(t.flow_run_state.insert(), states)
    return len(states)


async def _fill(
    conn: Connection,
    deployment: Any,
    schedules: Sequence[Any],
    horizon: Horizon,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    now: dt.datetime,
) -> list[_Slot]:
    """Plan each active schedule's slots from ``start`` (default now) and note when each
    must be looked at again. Returns the planned slots, one per time (first schedule wins)."""
    start = start or now
    end = end or _later(start, horizon.max_time)
    planned: dict[dt.datetime, _Slot] = {}
    for row in schedules:
        if not row.active:
            continue
        cap = min(horizon.max_runs, row.max_scheduled_runs or horizon.max_runs)
        try:
            schedule = load_schedule(row.schedule)
            dates = plan_dates(
                schedule,
                start=start,
                end=end,
                min_time=horizon.min_time,
                min_runs=horizon.min_runs,
                max_runs=cap,
            )
            refill = refill_time(schedule, dates, cap=cap, horizon=horizon, end=end)
        except (ValueError, OverflowError):
            # A schedule validation let through but that cannot be computed (an empty or
            # unknown timezone, as Prefect also accepts; dates past year 9999): no runs, and
            # no retry until it is edited.
            logger.warning("schedule %s cannot be computed: no runs", row.id, exc_info=True)
            refill = None
        else:
            kind = type(schedule).__name__
            for date in dates:
                planned.setdefault(date, _slot(deployment, row, kind, date, now=now))
        await conn.execute(
            update(t.deployment_schedule).where(_schedule.id == row.id).values(refill_at=refill)
        )
    return list(planned.values())


async def replan(
    conn: Connection,
    deployment_id: uuid.UUID,
    horizon: Horizon,
    *,
    clear_late: bool = False,
    now: dt.datetime,
) -> int:
    """Make the deployment's future auto-scheduled runs match its schedules and settings now:
    delete the waiting ones that no longer match, insert the missing ones. Paused: none.
    ``clear_late`` also deletes auto-scheduled runs whose time has passed (pause, and a
    deleted schedule, as in Prefect). Returns how many runs were inserted."""
    deployment = await lock_deployment(conn, deployment_id)
    if deployment is None:
        raise NotFound(DEPLOYMENT_NOT_FOUND)
    schedules = [] if deployment.paused else await read_schedules(conn, deployment_id)
    slots = await _fill(conn, deployment, schedules, horizon, now=now)
    wanted = {slot.run["expected_start_time"]: _signature(slot.run) for slot in slots}
    compared = (_run.id, _run.expected_start_time, *(_run[key] for key in _KEPT_IF_EQUAL))
    waiting = _not_started(None if clear_late else now)
    existing = await conn.execute(
        select(*compared).where(_run.deployment_id == deployment_id, *waiting)
    )
    stale = [row.id for row in existing if wanted.get(row.expected_start_time) != _signature(row)]
    if stale:
        await conn.execute(delete(t.flow_run).where(_run.id.in_(stale)))
    return await _insert_slots(conn, slots)


async def schedule_window(
    conn: Connection,
    deployment_id: uuid.UUID,
    horizon: Horizon,
    *,
    start: dt.datetime | None,
    end: dt.datetime | None,
    now: dt.datetime,
) -> int:
    """``POST /deployments/{id}/schedule``: runs for the window (a backfill when in the past),
    under Prefect's min/max rules; existing slots are left alone."""
    deployment = await lock_deployment(conn, deployment_id)
    if deployment is None:
        return 0  # Prefect answers 200 and schedules nothing
    schedules = await read_schedules(conn, deployment_id)
    start = start or now
    slots = await _fill(conn, deployment, schedules, horizon, start=start, end=end, now=now)
    return await _insert_slots(conn, slots)


# --- the scheduler loop -----------------------------------------------------------------


async def run_scheduler(database: Database, horizon: Horizon, *, batch: int, clock: Clock) -> int:
    """One scheduler pass: top up every schedule whose refill time has come. Returns how
    many runs were inserted. Safe in many processes at once (row locks, unique slots).

    A loop of its own transactions, it reads ``clock`` once for the pass, then again in each
    deployment's transaction (on purpose: a long pass stamps runs when they are written)."""
    moment = clock()
    due = (
        select(_schedule.deployment_id)
        .join(t.deployment, _deployment.id == _schedule.deployment_id)
        .where(
            _schedule.refill_at <= moment,
            _schedule.active.is_(True),
            _deployment.paused.is_(False),
        )
        .order_by(_schedule.refill_at)
        .limit(batch)
    )
    async with database.read() as conn:
        deployment_ids = sorted(set((await conn.execute(due)).scalars()))
    inserted = 0
    for deployment_id in deployment_ids:
        try:
            async with database.write() as conn:
                inserted += await _top_up(conn, deployment_id, horizon, now=clock())
        except Exception:  # one deployment's failure must not hold up the others
            logger.exception("scheduling deployment %s failed; next pass retries", deployment_id)
    return inserted


async def _top_up(
    conn: Connection, deployment_id: uuid.UUID, horizon: Horizon, *, now: dt.datetime
) -> int:
    deployment = await lock_deployment(conn, deployment_id, skip_locked=True)
    if deployment is None or deployment.paused:
        return 0
    schedules = [
        row
        for row in await read_schedules(conn, deployment_id)
        if row.refill_at is not None and row.refill_at <= now
    ]
    if not schedules:
        return 0  # another process got here first
    slots = await _fill(conn, deployment, schedules, horizon, now=now)
    return await _insert_slots(conn, slots)
