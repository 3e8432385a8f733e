"""Task-run states through Prefect's task policy: set_state, a new run's first state, the
subflow mirror, and what a written state does (tag-limit slots, the result cache, the run's
bookkeeping).

set_state costs three statements (read the run with its state and flow run, insert the
state, update the run), plus one to read the tag limits or the cache when a rule needs them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, or_, select, update

from deputy.db import tables as t
from deputy.db.dialect import is_postgres
from deputy.db.types import Timestamp
from deputy.errors import ObjectNotFound
from deputy.orchestration.bookkeeping import run_updates_for_state
from deputy.orchestration.states import CurrentState, StateDraft, default_name
from deputy.orchestration.task_context import (
    CachedState,
    FlowRunFacts,
    TagLimit,
    TaskDecision,
    TaskRunView,
    TaskTransition,
)
from deputy.orchestration.task_policy import (
    TAG_LEASE_SECONDS,
    TaskPolicy,
    decide_task,
    needs_cached_state,
    needs_tag_limits,
    policy_for,
)
from deputy.schemas.core import EMPTY_STATE_DETAILS, StateCreate, StateDetails, StateType
from deputy.services.common import (
    Answer,
    json_details,
    json_time,
    orchestration_result,
    uuid7,
)
from deputy.services.concurrency.leases import give_back_leases
from deputy.services.task_runs.rows import (
    READ_FOR_TRANSITION,
    STATE_FIELDS,
    TASK_RUN_COLUMN_NAMES,
    state_of,
)

if TYPE_CHECKING:
    from deputy.db.connection import Connection

_run = t.task_run.c
_state = t.task_run_state.c
_cache = t.task_run_state_cache.c
_limit = t.concurrency_limit_v2.c
_lease = t.concurrency_lease.c

_INSERT_STATE = t.task_run_state.insert()
_INSERT_CACHE = t.task_run_state_cache.insert()
_READ_CACHED_STATE = select(_state.type, _state.message, _state.data, _state.state_details).where(
    _state.id
    == (
        select(_cache.task_run_state_id)
        .where(
            _cache.cache_key == bindparam("cache_key"),
            or_(
                _cache.cache_expiration.is_(None),
                _cache.cache_expiration > bindparam("now", type_=Timestamp()),
            ),
        )
        .order_by(_cache.created.desc())
        .limit(1)
        .scalar_subquery()
    )
)


async def set_task_run_state(
    conn: Connection,
    task_run_id: uuid.UUID,
    proposed: StateCreate,
    *,
    force: bool = False,
    now: dt.datetime,
) -> Answer:
    """Propose a state: Prefect's task policy decides, bookkeeping follows what is written.

    The run row is locked for the transaction (``FOR UPDATE`` on PostgreSQL, the write
    transaction itself on SQLite). Also the way to mirror a subflow's states onto its parent
    task run (Prefect does that with ``force=True`` and ``child_flow_run_id`` set).
    """
    statement = READ_FOR_TRANSITION
    if is_postgres(conn):
        statement = statement.with_for_update(of=t.task_run)
    row = (await conn.execute(statement, {"task_run_id": task_run_id})).first()
    if row is None:
        raise ObjectNotFound(f"Task run with id {task_run_id} not found")
    draft = _draft(proposed, now)
    mapping = row._mapping
    run = {name: mapping[name] for name in TASK_RUN_COLUMN_NAMES}
    current_body = state_of(mapping)
    current = _current(current_body)
    policy = policy_for(draft.details, force=force)
    decision = await _decide(conn, run, current, _flow_run_facts(row), draft, policy, now)
    if decision.state is None:
        return Answer(orchestration_result(decision, current_body), created=False)
    state = _state_row(run, decision.state, current, now)
    effects = decision.task_effects
    tags = tuple(run["tags"] or ())
    if effects.release_tag_slots and tags:
        await _release_tag_slots(conn, run["id"], tags, now)
    if effects.acquire_tag_slots:
        await _acquire_tag_slots(conn, effects.acquire_tag_slots, run["id"], now)
    changes = _bookkeeping(run, current, state, decision)
    changes["updated"] = now
    await insert_state(conn, state, decision)
    await conn.execute(update(t.task_run).where(_run.id == run["id"]).values(**changes))
    return Answer(orchestration_result(decision, _body(state)), created=True)


async def mirror_subflow_state(
    conn: Connection,
    parent_task_run_id: uuid.UUID,
    child_flow_run_id: uuid.UUID,
    flow_state: dict[str, Any],
    *,
    now: dt.datetime,
) -> Answer:
    """A subflow's new state, copied onto the task run that stands for it in the parent
    flow (Prefect's ``UpdateSubflowParentTask``): same type, name, message, data and
    details, plus ``child_flow_run_id``; forced, so no rule applies, only the bookkeeping.

    For flow-run set_state to call after writing a state of a run with a
    ``parent_task_run_id``, in the same transaction (three more statements).
    """
    details = {**(flow_state.get("state_details") or {}), "child_flow_run_id": child_flow_run_id}
    proposed = StateCreate(
        type=flow_state["type"],
        name=flow_state.get("name"),
        message=flow_state.get("message"),
        data=flow_state.get("data"),
        state_details=StateDetails.model_validate(details),
    )
    return await set_task_run_state(conn, parent_task_run_id, proposed, force=True, now=now)


async def first_state(
    conn: Connection,
    run: dict[str, Any],
    flow_run: Any,
    proposed: StateCreate | None,
    timestamp: dt.datetime,
) -> tuple[TaskDecision, dict[str, Any] | None]:
    """A new run's first state (PENDING unless ``proposed``), decided with every rule
    forced, and the run's bookkeeping for it applied to ``run``. ``flow_run`` is the row
    read with ``rows.READ_FLOW_RUN`` (``None``: a run without flow run)."""
    draft = _draft(proposed or StateCreate(type=StateType.PENDING), timestamp)
    policy = policy_for(draft.details, force=True)
    decision = await _decide(conn, run, None, _flow_run_facts(flow_run), draft, policy, timestamp)
    if decision.state is None:
        return decision, None
    state = _state_row(run, decision.state, None, timestamp)
    run.update(_bookkeeping(run, None, state, decision))
    return decision, state


async def insert_state(conn: Connection, state: dict[str, Any], decision: TaskDecision) -> None:
    """Write the state, first under its cache key when the decision says so."""
    if decision.task_effects.cache_state:
        await _cache_state(conn, state)
    await conn.execute(_INSERT_STATE, state)


# --- deciding ---------------------------------------------------------------------------------


def _draft(proposed: StateCreate, timestamp: dt.datetime) -> StateDraft:
    details = proposed.state_details.model_dump(mode="json")
    if proposed.type == StateType.SCHEDULED and not details.get("scheduled_time"):
        details["scheduled_time"] = json_time(timestamp)  # Prefect's State defaults it
    return StateDraft(
        type=proposed.type,
        name=proposed.name or default_name(proposed.type),
        timestamp=timestamp,
        message=proposed.message,
        data=proposed.data,
        details=details,
    )


def _current(state: dict[str, Any] | None) -> CurrentState | None:
    if state is None:
        return None
    return CurrentState(
        type=StateType(state["type"]),
        name=state["name"],
        timestamp=state["timestamp"],
        data=state["data"],
        details=state["state_details"] or {},
    )


def _flow_run_facts(row: Any) -> FlowRunFacts | None:
    if row is None or row.flow__id is None:
        return None
    return FlowRunFacts(
        id=row.flow__id,
        run_count=row.flow__run_count,
        state_type=StateType(row.flow__state_type) if row.flow__state_type else None,
        state_details=row.flow__state_details or {},
    )


async def _decide(
    conn: Connection,
    run: dict[str, Any],
    current: CurrentState | None,
    flow_run: FlowRunFacts | None,
    draft: StateDraft,
    policy: TaskPolicy,
    timestamp: dt.datetime,
) -> TaskDecision:
    """Load the facts this transition's rules need (only those), then decide."""
    view = TaskRunView(
        id=run["id"],
        flow_run_id=run["flow_run_id"],
        tags=tuple(run["tags"] or ()),
        run_count=run["run_count"],
        flow_run_run_count=run["flow_run_run_count"],
        empirical_policy=run["empirical_policy"] or {},
    )
    cached = None
    if needs_cached_state(policy, draft.type, draft.details):
        params = {"cache_key": draft.details["cache_key"], "now": timestamp}
        found = (await conn.execute(_READ_CACHED_STATE, params)).first()
        if found is not None:
            cached = CachedState(
                type=StateType(found.type),
                message=found.message,
                data=found.data,
                details=found.state_details or {},
            )
    limits: tuple[TagLimit, ...] = ()
    if needs_tag_limits(policy, draft.type, view.tags):
        limits = await _read_tag_limits(conn, view.tags)
    transition = TaskTransition(
        run=view,
        current=current,
        proposed=draft,
        now=timestamp,
        flow_run=flow_run,
        cached=cached,
        tag_limits=limits,
    )
    return decide_task(transition, policy)


# --- writing ----------------------------------------------------------------------------------


def _state_row(
    run: dict[str, Any],
    draft: StateDraft,
    current: CurrentState | None,
    created: dt.datetime,
) -> dict[str, Any]:
    """The state row to insert: details point at the run and its flow run; the timestamp
    is kept after the current state's (one state per run and instant)."""
    details = {
        **EMPTY_STATE_DETAILS,
        **json_details(draft.details),
        "flow_run_id": str(run["flow_run_id"]) if run["flow_run_id"] is not None else None,
        "task_run_id": str(run["id"]),
    }
    timestamp = draft.timestamp
    if current is not None and timestamp <= current.timestamp:
        timestamp = current.timestamp + dt.timedelta(microseconds=1)
    return {
        "id": uuid7(),
        "created": created,
        "updated": created,
        "task_run_id": run["id"],
        "type": draft.type.value,
        "name": draft.name,
        "timestamp": timestamp,
        "message": draft.message,
        "data": draft.data,
        "state_details": details,
    }


def _body(state: dict[str, Any]) -> dict[str, Any]:
    """A written state as set_state answers it (Prefect's State)."""
    return {name: state[name] for name in STATE_FIELDS}


def _bookkeeping(
    run: dict[str, Any],
    current: CurrentState | None,
    state: dict[str, Any],
    decision: TaskDecision,
) -> dict[str, Any]:
    """The task-run columns that change with ``state`` (Prefect's global task policy)."""
    effects = decision.task_effects
    fields = dict(run)
    if effects.run_count is not None:
        fields["run_count"] = effects.run_count
    changes = run_updates_for_state(
        fields,
        current.type if current else None,
        current.timestamp if current else None,
        state,
    )
    changes.pop("empirical_policy", None)  # flow runs' "resuming" flag; tasks have none
    if effects.run_count is not None:
        changes.setdefault("run_count", effects.run_count)
    if effects.flow_run_run_count is not None:
        changes["flow_run_run_count"] = effects.flow_run_run_count
    return changes


async def _cache_state(conn: Connection, state: dict[str, Any]) -> None:
    """Record a COMPLETED state under its cache key, for later runs with the same key."""
    details = state["state_details"]
    expiration = details.get("cache_expiration")
    await conn.execute(
        _INSERT_CACHE,
        {
            "id": uuid.uuid4(),
            "created": state["created"],
            "updated": state["created"],
            "cache_key": details["cache_key"],
            "cache_expiration": dt.datetime.fromisoformat(expiration) if expiration else None,
            "task_run_state_id": state["id"],
        },
    )


# --- tag-limit slots --------------------------------------------------------------------------


async def _read_tag_limits(conn: Connection, tags: tuple[str, ...]) -> tuple[TagLimit, ...]:
    query = (
        select(
            _limit.id,
            _limit.name,
            _limit.limit,
            _limit.active,
            _limit.active_slots,
            _limit.avg_slot_occupancy_seconds,
        )
        .where(_limit.name.in_([f"tag:{tag}" for tag in dict.fromkeys(tags)]))
        .order_by(_limit.name)
    )
    if is_postgres(conn):
        query = query.with_for_update()
    return tuple(
        TagLimit(
            id=row.id,
            tag=row.name.removeprefix("tag:"),
            limit=row.limit,
            active=row.active,
            active_slots=row.active_slots,
            avg_slot_occupancy_seconds=row.avg_slot_occupancy_seconds or 0.0,
        )
        for row in await conn.execute(query)
    )


async def _acquire_tag_slots(
    conn: Connection,
    limit_ids: tuple[uuid.UUID, ...],
    task_run_id: uuid.UUID,
    timestamp: dt.datetime,
) -> None:
    """One slot of each limit, each held by a lease naming the task run, kept until the run
    leaves RUNNING (the lease lasts about a hundred years, as in Prefect)."""
    await conn.execute(
        update(t.concurrency_limit_v2)
        .where(_limit.id.in_(limit_ids))
        .values(active_slots=_limit.active_slots + 1, updated=timestamp)
    )
    expiration = timestamp + dt.timedelta(seconds=TAG_LEASE_SECONDS)
    await conn.execute(
        t.concurrency_lease.insert(),
        [
            {
                "id": uuid.uuid4(),
                "created": timestamp,
                "updated": timestamp,
                "concurrency_limit_id": limit_id,
                "slots": 1,
                "expiration": expiration,
                "holder": {"type": "task_run", "id": str(task_run_id)},
            }
            for limit_id in limit_ids
        ],
    )


async def _release_tag_slots(
    conn: Connection, task_run_id: uuid.UUID, tags: tuple[str, ...], timestamp: dt.datetime
) -> None:
    """Give back what the run holds on its tags' limits: every lease naming it as holder
    (taken here or by the client), each slot once, never below zero."""
    limits = select(_limit.id).where(_limit.name.in_([f"tag:{tag}" for tag in tags]))
    await give_back_leases(
        conn,
        timestamp,
        _lease.concurrency_limit_id.in_(limits.scalar_subquery()),
        _lease.holder["id"].as_string() == str(task_run_id),
    )
