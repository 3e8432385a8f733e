"""Task runs: created, read, filtered, renamed, deleted, moved between states, and recorded
from the ``prefect.task-run.*`` events the task engine sends.

Prefect 3's task engine orchestrates task runs itself and only reports them as events over
``/events/in``; ``record_task_run_event`` turns those into task runs and states as Prefect's
``TaskRunRecorder`` does. ``POST /task_runs/`` (subflow parents, ``run_deployment``) and
``set_state`` go through Prefect's task policy (``orchestration.task_policy``).

Typical costs: creating a task run of a flow run takes three statements (read the flow run,
insert-or-ignore the run, insert its first state); set_state three (read the run with its
state and flow run, insert the state, update the run); recording an event three (look the
run up, upsert it, insert its state) plus a savepoint around them.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import (
    Select,
    bindparam,
    case,
    delete,
    extract,
    func,
    literal,
    nulls_last,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from deputy.db import tables as t
from deputy.db.dialect import upsert_base
from deputy.db.filters.runs import task_run_where
from deputy.db.types import Timestamp
from deputy.errors import NotFound, ObjectNotFound, integrity_conflict
from deputy.orchestration.bookkeeping import run_updates_for_state
from deputy.orchestration.policy import CurrentState, StateDraft, Status, default_name
from deputy.orchestration.task_policy import (
    TAG_LEASE_SECONDS,
    CachedState,
    FlowRunFacts,
    TagLimit,
    TaskDecision,
    TaskPolicy,
    TaskRunView,
    TaskTransition,
    decide_task,
    needs_cached_state,
    needs_tag_limits,
    policy_for,
)
from deputy.schemas.core import (
    EMPTY_STATE_DETAILS,
    DateTime,
    KeyValueLabels,
    StateCreate,
    StateDetails,
    StateType,
)
from deputy.schemas.filters import TaskRunRelatedFilters, TaskRunSort
from deputy.schemas.task_runs import (
    TaskInputs,
    TaskRunCreate,
    TaskRunPolicy,
    TaskRunUpdate,
    check_cache_key,
    task_run_to_wire,
)
from deputy.services.common import now, uuid7
from deputy.services.flow_runs.create import generate_run_name

if TYPE_CHECKING:
    from deputy.db.connection import Connection

logger = logging.getLogger("deputy.services.task_runs.crud")

TASK_NOT_FOUND = "Task not found"
TASK_RUN_NOT_FOUND = "Task run not found"
#: Prefect's text for a missing task-run state, word for word.
STATE_NOT_FOUND = "Flow run state not found"

_run = t.task_run.c
_state = t.task_run_state.c
_flow_run = t.flow_run.c
_limit = t.concurrency_limit_v2.c
_lease = t.concurrency_lease.c
_TASK_RUN_COLUMN_NAMES = tuple(column.name for column in t.task_run.columns)
_STATE_FIELDS = ("id", "type", "name", "timestamp", "message", "data", "state_details")
_STATE_COLUMNS = tuple(getattr(_state, name).label(f"state__{name}") for name in _STATE_FIELDS)

# --- statements built once ---------------------------------------------------------------

#: A task run with its current state.
_TASK_RUN_QUERY: Select[Any] = (
    select(t.task_run, *_STATE_COLUMNS)
    .select_from(t.task_run)
    .outerjoin(t.task_run_state, _state.id == _run.state_id)
)
_READ_TASK_RUN = _TASK_RUN_QUERY.where(_run.id == bindparam("task_run_id"))
_READ_BY_NATURAL_KEY = _TASK_RUN_QUERY.where(
    _run.flow_run_id == bindparam("flow_run_id"),
    _run.task_key == bindparam("task_key"),
    _run.dynamic_key == bindparam("dynamic_key"),
)
_READ_WITHOUT_FLOW_RUN = _TASK_RUN_QUERY.where(
    _run.flow_run_id.is_(None),
    _run.task_key == bindparam("task_key"),
    _run.dynamic_key == bindparam("dynamic_key"),
).limit(1)

#: The flow run facts the task rules read (and the labels a new task run inherits).
_FLOW_RUN_FACTS = (
    _flow_run.id.label("flow__id"),
    _flow_run.run_count.label("flow__run_count"),
    _flow_run.state_type.label("flow__state_type"),
    t.flow_run_state.c.state_details.label("flow__state_details"),
)
_READ_FLOW_RUN = (
    select(*_FLOW_RUN_FACTS, _flow_run.labels.label("flow__labels"))
    .select_from(t.flow_run)
    .outerjoin(t.flow_run_state, t.flow_run_state.c.id == _flow_run.state_id)
    .where(_flow_run.id == bindparam("flow_run_id"))
)
#: A task run, its current state and its flow run, for set_state.
_READ_FOR_TRANSITION = (
    select(t.task_run, *_STATE_COLUMNS, *_FLOW_RUN_FACTS)
    .select_from(t.task_run)
    .outerjoin(t.task_run_state, _state.id == _run.state_id)
    .outerjoin(t.flow_run, _flow_run.id == _run.flow_run_id)
    .outerjoin(t.flow_run_state, t.flow_run_state.c.id == _flow_run.state_id)
    .where(_run.id == bindparam("task_run_id"))
)
_INSERT_RUN = t.task_run.insert()
_INSERT_STATE = t.task_run_state.insert()
_INSERT_CACHE = t.task_run_state_cache.insert()
_READ_CACHED_STATE = select(_state.type, _state.message, _state.data, _state.state_details).where(
    _state.id
    == (
        select(t.task_run_state_cache.c.task_run_state_id)
        .where(
            t.task_run_state_cache.c.cache_key == bindparam("cache_key"),
            or_(
                t.task_run_state_cache.c.cache_expiration.is_(None),
                t.task_run_state_cache.c.cache_expiration > bindparam("now", type_=Timestamp()),
            ),
        )
        .order_by(t.task_run_state_cache.c.created.desc())
        .limit(1)
        .scalar_subquery()
    )
)
_FIND_FOR_EVENT = select(_run.id, _run.flow_run_id, _run.task_key, _run.dynamic_key).where(
    or_(
        _run.id == bindparam("id"),
        (_run.flow_run_id == bindparam("flow_run_id"))
        & (_run.task_key == bindparam("task_key"))
        & (_run.dynamic_key == bindparam("dynamic_key")),
    )
)


@functools.cache
def _insert_run_unless_key_exists(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (flow_run_id, task_key, dynamic_key) DO NOTHING RETURNING id."""
    return (
        upsert_base(dialect, t.task_run)
        .on_conflict_do_nothing(index_elements=["flow_run_id", "task_key", "dynamic_key"])
        .returning(_run.id)
    )


@functools.cache
def _insert_state_unless_recorded(dialect: str) -> Any:
    return upsert_base(dialect, t.task_run_state).on_conflict_do_nothing(index_elements=["id"])


@functools.cache
def _upsert_from_event(dialect: str, target: str, columns: tuple[str, ...]) -> Any:
    """Prefect's recorder upsert: insert the run, or update the columns the event carries
    when (and only when) its state is newer than the run's current one."""
    statement = upsert_base(dialect, t.task_run)
    index = ["flow_run_id", "task_key", "dynamic_key"] if target == "natural-key" else ["id"]
    changed = [name for name in columns if name not in ("id", "created")]
    return statement.on_conflict_do_update(
        index_elements=index,
        set_={name: statement.excluded[name] for name in changed},
        where=_run.state_timestamp < statement.excluded.state_timestamp,
    )


def _sorts(sort: TaskRunSort, dialect: str, moment: dt.datetime) -> list[Any]:
    """Prefect's task-run orders, NULLs last (as deputy sorts flow runs), newest id last."""
    if sort in (TaskRunSort.DURATION_DESC, TaskRunSort.DURATION_ASC):
        duration = _estimated_run_time(dialect, moment)
        first = duration.desc() if sort == TaskRunSort.DURATION_DESC else duration.asc()
        return [first, nulls_last(_run.expected_start_time.desc())]
    return {
        TaskRunSort.ID_DESC: [_run.id.desc()],
        TaskRunSort.EXPECTED_START_TIME_ASC: [nulls_last(_run.expected_start_time.asc())],
        TaskRunSort.EXPECTED_START_TIME_DESC: [nulls_last(_run.expected_start_time.desc())],
        TaskRunSort.NAME_ASC: [_run.name.asc()],
        TaskRunSort.NAME_DESC: [_run.name.desc()],
        TaskRunSort.NEXT_SCHEDULED_START_TIME_ASC: [
            nulls_last(_run.next_scheduled_start_time.asc())
        ],
        TaskRunSort.END_TIME_DESC: [nulls_last(_run.end_time.desc())],
    }[sort]


def _estimated_run_time(dialect: str, moment: dt.datetime) -> Any:
    """Run time so far, in seconds: the total plus the current RUNNING stretch."""
    at = literal(moment, Timestamp())
    if dialect == "sqlite":
        running = (func.julianday(at) - func.julianday(_run.state_timestamp)) * 86400.0
    else:
        running = extract("epoch", at - _run.state_timestamp)
    return case(
        (_run.state_type == StateType.RUNNING.value, _run.total_run_time + running),
        else_=_run.total_run_time,
    )


# --- reading --------------------------------------------------------------------------------


def _state_of(mapping: Any) -> dict[str, Any] | None:
    if mapping["state__id"] is None:
        return None
    return {name: mapping[f"state__{name}"] for name in _STATE_FIELDS}


def row_to_wire(row: Any, moment: dt.datetime | None = None) -> dict[str, Any]:
    mapping = row._mapping
    return task_run_to_wire(mapping, _state_of(mapping), moment or now())


async def read_task_run(conn: Connection, task_run_id: uuid.UUID) -> dict[str, Any]:
    row = (await conn.execute(_READ_TASK_RUN, {"task_run_id": task_run_id})).first()
    if row is None:
        raise NotFound(TASK_NOT_FOUND)
    return row_to_wire(row)


async def filter_task_runs(
    conn: Connection,
    filters: TaskRunRelatedFilters,
    *,
    sort: TaskRunSort,
    offset: int,
    limit: int,
) -> list[dict[str, Any]]:
    moment = now()
    query = (
        _TASK_RUN_QUERY.where(*task_run_where(filters))
        .order_by(*_sorts(sort, conn.dialect.name, moment), _run.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [row_to_wire(row, moment) for row in await conn.execute(query)]


async def count_task_runs(conn: Connection, filters: TaskRunRelatedFilters) -> int:
    query = select(func.count()).select_from(t.task_run).where(*task_run_where(filters))
    return int((await conn.execute(query)).scalar_one())


def _task_run_state_to_wire(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _STATE_FIELDS}


async def read_task_run_states(conn: Connection, task_run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The run's state history, oldest first."""
    query = (
        select(t.task_run_state)
        .where(_state.task_run_id == task_run_id)
        .order_by(_state.timestamp.asc())
    )
    return [_task_run_state_to_wire(row) for row in await conn.execute(query)]


async def read_task_run_state(conn: Connection, state_id: uuid.UUID) -> dict[str, Any]:
    row = (await conn.execute(select(t.task_run_state).where(_state.id == state_id))).first()
    if row is None:
        raise NotFound(STATE_NOT_FOUND)
    return _task_run_state_to_wire(row)


# --- changing -------------------------------------------------------------------------------


async def update_task_run(conn: Connection, task_run_id: uuid.UUID, body: TaskRunUpdate) -> None:
    """PATCH: a new name when one was sent (``null`` or ``""``: a generated one)."""
    values: dict[str, Any] = {"updated": now()}
    if "name" in body.model_fields_set:
        values["name"] = body.name or generate_run_name()
    result = await conn.execute(update(t.task_run).where(_run.id == task_run_id).values(**values))
    if result.rowcount == 0:
        raise NotFound(TASK_RUN_NOT_FOUND)


async def delete_task_run(conn: Connection, task_run_id: uuid.UUID) -> None:
    """Delete the run with its states (the foreign key cascades) and its logs (Prefect
    deletes them in the background; here in the same transaction)."""
    result = await conn.execute(delete(t.task_run).where(_run.id == task_run_id))
    if result.rowcount == 0:
        raise NotFound(TASK_NOT_FOUND)
    await conn.execute(delete(t.log).where(t.log.c.task_run_id == task_run_id))


@dataclass(frozen=True, slots=True)
class CreatedTaskRun:
    """The task run as answered, and whether this call created it (201) or found it (200)."""

    body: dict[str, Any]
    created: bool


async def create_task_run(conn: Connection, body: TaskRunCreate) -> CreatedTaskRun:
    """``POST /task_runs/``: a new run with its first state (PENDING unless given), applied
    without rules; the run already there for the same (flow run, task key, dynamic key),
    unchanged, otherwise. A run of a flow run inherits its labels."""
    timestamp = now()
    flow_run = None
    labels: dict[str, Any] = body.labels or {}
    if body.flow_run_id is not None:
        flow_run = (await conn.execute(_READ_FLOW_RUN, {"flow_run_id": body.flow_run_id})).first()
        if flow_run is None:
            raise integrity_conflict()  # Prefect's insert fails on the foreign key
        labels = {
            **(flow_run.flow__labels or {}),
            "prefect.flow-run.id": str(body.flow_run_id),
            **labels,
        }
    else:
        existing = (
            await conn.execute(
                _READ_WITHOUT_FLOW_RUN,
                {"task_key": body.task_key, "dynamic_key": body.dynamic_key},
            )
        ).first()
        if existing is not None:
            return CreatedTaskRun(row_to_wire(existing, timestamp), created=False)
    run: dict[str, Any] = {
        "id": body.id or uuid.uuid4(),
        "created": timestamp,
        "updated": timestamp,
        "name": body.name or generate_run_name(),
        "flow_run_id": body.flow_run_id,
        "task_key": body.task_key,
        "dynamic_key": body.dynamic_key,
        "cache_key": body.cache_key,
        "cache_expiration": body.cache_expiration,
        "task_version": body.task_version,
        "flow_run_run_count": 0,
        "empirical_policy": body.empirical_policy.model_dump(mode="json"),
        "task_inputs": _dump_inputs(body.task_inputs),
        "tags": body.tags,
        "labels": labels,
        "state_id": None,
        "state_type": None,
        "state_name": None,
        "state_timestamp": None,
        "run_count": 0,
        "expected_start_time": None,
        "next_scheduled_start_time": None,
        "start_time": None,
        "end_time": None,
        "total_run_time": 0.0,
    }
    draft = _draft(body.state or StateCreate(type=StateType.PENDING), timestamp)
    policy = policy_for(draft.details, force=True)
    decision = await _decide(conn, run, None, _flow_run_facts(flow_run), draft, policy, timestamp)
    state = None
    if decision.state is not None:
        state = _state_row(run, decision.state, None, timestamp)
        run.update(_bookkeeping(run, None, state, decision))
    if body.flow_run_id is None:
        await conn.execute(_INSERT_RUN, run)
    else:
        inserted = await conn.execute(_insert_run_unless_key_exists(conn.dialect.name), run)
        if inserted.first() is None:
            params = {
                "flow_run_id": body.flow_run_id,
                "task_key": body.task_key,
                "dynamic_key": body.dynamic_key,
            }
            existing = (await conn.execute(_READ_BY_NATURAL_KEY, params)).one()
            return CreatedTaskRun(row_to_wire(existing, timestamp), created=False)
    if state is not None:
        if decision.task_effects.cache_state:
            await _cache(conn, state)
        await conn.execute(_INSERT_STATE, state)
    return CreatedTaskRun(task_run_to_wire(run, state, timestamp), created=True)


class StateResult:
    """What set_state answers, and whether a state was written (201) or not (200)."""

    def __init__(self, body: dict[str, Any], written: bool) -> None:
        self.body = body
        self.written = written


async def set_task_run_state(
    conn: Connection,
    task_run_id: uuid.UUID,
    proposed: StateCreate,
    *,
    force: bool = False,
) -> StateResult:
    """Propose a state: Prefect's task policy decides, bookkeeping follows what is written.

    The run row is locked for the transaction (``FOR UPDATE`` on PostgreSQL, the write
    transaction itself on SQLite). Also the way to mirror a subflow's states onto its parent
    task run (Prefect does that with ``force=True`` and ``child_flow_run_id`` set).
    """
    statement = _READ_FOR_TRANSITION
    if conn.dialect.name == "postgresql":
        statement = statement.with_for_update(of=t.task_run)
    row = (await conn.execute(statement, {"task_run_id": task_run_id})).first()
    if row is None:
        raise ObjectNotFound(f"Task run with id {task_run_id} not found")
    timestamp = now()
    draft = _draft(proposed, timestamp)
    mapping = row._mapping
    run = {name: mapping[name] for name in _TASK_RUN_COLUMN_NAMES}
    current_body = _state_of(mapping)
    current = _current(current_body)
    policy = policy_for(draft.details, force=force)
    decision = await _decide(conn, run, current, _flow_run_facts(row), draft, policy, timestamp)
    if decision.state is None:
        return StateResult(_orchestration_result(decision, current_body), written=False)
    state = _state_row(run, decision.state, current, timestamp)
    effects = decision.task_effects
    tags = tuple(run["tags"] or ())
    if effects.release_tag_slots and tags:
        await _release_tag_slots(conn, run["id"], tags, timestamp)
    if effects.acquire_tag_slots:
        await _acquire_tag_slots(conn, effects.acquire_tag_slots, run["id"], timestamp)
    if effects.cache_state:
        await _cache(conn, state)
    changes = _bookkeeping(run, current, state, decision)
    changes["updated"] = timestamp
    await conn.execute(_INSERT_STATE, state)
    await conn.execute(update(t.task_run).where(_run.id == run["id"]).values(**changes))
    return StateResult(_orchestration_result(decision, state), written=True)


async def mirror_subflow_state(
    conn: Connection,
    parent_task_run_id: uuid.UUID,
    child_flow_run_id: uuid.UUID,
    flow_state: dict[str, Any],
) -> StateResult:
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
    return await set_task_run_state(conn, parent_task_run_id, proposed, force=True)


# --- orchestration helpers ------------------------------------------------------------------


def _draft(proposed: StateCreate, timestamp: dt.datetime) -> StateDraft:
    details = proposed.state_details.model_dump(mode="json")
    if proposed.type == StateType.SCHEDULED and not details.get("scheduled_time"):
        details["scheduled_time"] = _json_time(timestamp)  # Prefect's State defaults it
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
        **_json_details(draft.details),
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
    if conn.dialect.name == "postgresql":
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
    released = (
        await conn.execute(
            delete(t.concurrency_lease)
            .where(
                _lease.concurrency_limit_id.in_(limits.scalar_subquery()),
                _lease.holder["id"].as_string() == str(task_run_id),
            )
            .returning(_lease.concurrency_limit_id, _lease.slots)
        )
    ).all()
    freed: dict[uuid.UUID, int] = {}
    for limit_id, slots in released:
        freed[limit_id] = freed.get(limit_id, 0) + slots
    floor = func.max if conn.dialect.name == "sqlite" else func.greatest
    for limit_id, slots in freed.items():
        await conn.execute(
            update(t.concurrency_limit_v2)
            .where(_limit.id == limit_id)
            .values(active_slots=floor(_limit.active_slots - slots, 0), updated=timestamp)
        )


async def _cache(conn: Connection, state: dict[str, Any]) -> None:
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


def _orchestration_result(decision: TaskDecision, state: dict[str, Any] | None) -> dict[str, Any]:
    details: dict[str, Any]
    if decision.status == Status.ACCEPT:
        details = {"type": "accept_details"}
    elif decision.status == Status.WAIT:
        details = {
            "type": "wait_details",
            "delay_seconds": decision.delay_seconds,
            "reason": decision.reason,
        }
    elif decision.status == Status.ABORT:
        details = {"type": "abort_details", "reason": decision.reason}
    else:
        details = {"type": "reject_details", "reason": decision.reason}
    body_state = None
    if state is not None:
        body_state = {name: state[name] for name in _STATE_FIELDS}
    return {"state": body_state, "status": decision.status.value, "details": details}


def _json_time(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _json_details(details: dict[str, Any]) -> dict[str, Any]:
    """State details as stored: datetimes as ISO text with ``Z``, UUIDs as text."""
    out: dict[str, Any] = {}
    for key, value in details.items():
        if isinstance(value, dt.datetime):
            out[key] = _json_time(value.astimezone(dt.UTC))
        elif isinstance(value, uuid.UUID):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def _dump_inputs(inputs: TaskInputs) -> dict[str, Any]:
    return {
        name: [item.model_dump(mode="json") for item in items] for name, items in inputs.items()
    }


# --- recording task-run events --------------------------------------------------------------


class _EventTaskRun(BaseModel):
    """``payload.task_run`` of a task-run event: the run as the engine keeps it. Unknown
    keys are ignored; only the keys present are written, as Prefect's recorder does."""

    name: str = ""
    task_key: str
    dynamic_key: str
    cache_key: str | None = None
    cache_expiration: DateTime | None = None
    task_version: str | None = None
    empirical_policy: TaskRunPolicy = Field(default_factory=TaskRunPolicy)
    tags: list[str] = Field(default_factory=list)
    labels: KeyValueLabels | None = Field(default_factory=dict)
    task_inputs: TaskInputs = Field(default_factory=dict)
    run_count: int = 0
    flow_run_run_count: int = 0
    expected_start_time: DateTime | None = None
    next_scheduled_start_time: DateTime | None = None
    start_time: DateTime | None = None
    end_time: DateTime | None = None
    total_run_time: dt.timedelta = dt.timedelta(0)

    _cache_key = field_validator("cache_key")(check_cache_key)

    @field_validator("name", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        return value or generate_run_name()

    def columns(self) -> dict[str, Any]:
        """The task_run columns this payload sets."""
        out: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if name == "empirical_policy":
                value = self.empirical_policy.model_dump(mode="json")
            elif name == "task_inputs":
                value = _dump_inputs(self.task_inputs)
            elif name == "total_run_time":
                value = self.total_run_time.total_seconds()
            out[name] = value
        return out


class _EventState(BaseModel):
    """``payload.validated_state``, with the event's id and time as the state's."""

    id: uuid.UUID
    timestamp: DateTime
    type: StateType
    name: str | None = None
    message: str | None = None
    data: Any = None
    state_details: StateDetails = Field(default_factory=StateDetails)


class _Event(BaseModel):
    id: uuid.UUID
    occurred: DateTime
    event: str
    resource: dict[str, str]
    related: list[dict[str, str]] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)


class _NotATaskRunEvent(ValueError):
    pass


def _object_id(resource: dict[str, str], kind: str) -> uuid.UUID:
    """The UUID in ``prefect.resource.id`` = ``<kind>.<uuid>``."""
    resource_id = resource.get("prefect.resource.id", "")
    if not resource_id.startswith(f"{kind}."):
        raise _NotATaskRunEvent(f"{resource_id!r} is not a {kind}")
    return uuid.UUID(resource_id[len(kind) + 1 :])


def _parse_event(raw: dict[str, Any]) -> tuple[_EventTaskRun, dict[str, Any], dict[str, Any]]:
    """The event's task run, its run columns and its state row (Prefect's
    ``task_run_from_event``). Raises ValueError (or ValidationError) for a malformed event."""
    event = _Event.model_validate(raw)
    task_run_id = _object_id(event.resource, "prefect.task-run")
    roles = {related.get("prefect.resource.role"): related for related in event.related}
    flow_run_id = None
    if (flow_run := roles.get("flow-run")) is not None:
        flow_run_id = _object_id(flow_run, "prefect.flow-run")
    validated = event.payload.get("validated_state")
    task_run_payload = event.payload.get("task_run")
    if not isinstance(validated, dict) or not isinstance(task_run_payload, dict):
        raise _NotATaskRunEvent("payload lacks validated_state or task_run")
    state = _EventState.model_validate({"id": event.id, "timestamp": event.occurred, **validated})
    task_run = _EventTaskRun.model_validate(task_run_payload)
    details = state.state_details.model_dump(mode="json")
    if state.type == StateType.SCHEDULED and not details.get("scheduled_time"):
        details["scheduled_time"] = _json_time(now())  # Prefect's State defaults it
    details["task_run_id"] = str(task_run_id)
    details["flow_run_id"] = str(flow_run_id) if flow_run_id is not None else None
    name = state.name if state.name is not None else default_name(state.type)
    columns = {
        "id": task_run_id,
        "flow_run_id": flow_run_id,
        **task_run.columns(),
        "state_id": state.id,
        "state_type": state.type.value,
        "state_name": name,
        "state_timestamp": state.timestamp,
    }
    state_row = {
        "id": state.id,
        "task_run_id": task_run_id,
        "type": state.type.value,
        "name": name,
        "timestamp": state.timestamp,
        "message": state.message,
        "data": state.data,
        "state_details": details,
    }
    return task_run, columns, state_row


async def record_task_run_event(conn: Connection, event: dict[str, Any]) -> None:
    """Record one ``prefect.task-run.*`` event as its task run and state, as Prefect's
    ``TaskRunRecorder`` does. Call it inside a write transaction (``database.write()``); it
    never commits.

    ``event`` is one event as received on ``/events/in`` (Prefect's Event JSON: ``id``,
    ``occurred``, ``event``, ``resource``, ``related``, ``payload``, ``follows``; ids and
    times may be strings or already parsed; ``received`` and ``follows`` are not used).

    - Only events named ``prefect.task-run.*`` whose resource says
      ``"prefect.orchestration": "client"`` are recorded; others are ignored.
    - The task run is ``resource["prefect.resource.id"]`` (``prefect.task-run.<id>``), its
      flow run the related resource in role ``flow-run`` (none: a run without flow run).
      The run's columns are the keys of ``payload.task_run`` (only those: a key the event
      does not carry keeps its stored value), plus the state columns.
    - The state is ``payload.validated_state`` with the event's ``id`` as its id and
      ``occurred`` as its timestamp; its details get the task and flow run ids.
    - The run is found by id, or by (flow run, task key, dynamic key), in which case the
      stored run keeps its own id and the state is filed under it. It is inserted when new,
      and updated only when the event's state is newer than its current one, so events may
      arrive in any order and the newest state stays current; the state itself is always
      added to the history (once: a repeated event id changes nothing).
    - No orchestration rule runs (the engine decided already), no concurrency slot or cache
      entry is touched.
    - A malformed event (bad ids, missing ``task_run``/``validated_state``, invalid fields)
      is logged and ignored. An event the database refuses (its flow run does not exist,
      another state of the run has the same timestamp) is rolled back to a savepoint,
      logged and ignored, as Prefect discards it. Other database errors propagate.

    Costs three statements (look up, upsert, insert state) inside a savepoint.
    """
    name = event.get("event")
    if not isinstance(name, str) or not name.startswith("prefect.task-run."):
        return
    resource = event.get("resource")
    if not isinstance(resource, dict) or resource.get("prefect.orchestration") != "client":
        return
    try:
        task_run, columns, state_row = _parse_event(event)
    except (ValueError, ValidationError) as error:
        logger.warning("Ignoring malformed task-run event %s: %s", event.get("id"), error)
        return
    try:
        async with conn.begin_nested():
            await _upsert_task_run(conn, task_run, columns, state_row)
    except IntegrityError:
        logger.warning(
            "Discarding task-run event %s: it conflicts with stored data", event.get("id")
        )


async def _upsert_task_run(
    conn: Connection,
    task_run: _EventTaskRun,
    columns: dict[str, Any],
    state_row: dict[str, Any],
) -> None:
    task_run_id: uuid.UUID = columns["id"]
    flow_run_id: uuid.UUID | None = columns["flow_run_id"]
    found = (
        await conn.execute(
            _FIND_FOR_EVENT,
            {
                "id": task_run_id,
                "flow_run_id": flow_run_id,
                "task_key": task_run.task_key,
                "dynamic_key": task_run.dynamic_key,
            },
        )
    ).all()
    by_natural_key = next(
        (
            row.id
            for row in found
            if flow_run_id is not None
            and (row.flow_run_id, row.task_key, row.dynamic_key)
            == (flow_run_id, task_run.task_key, task_run.dynamic_key)
        ),
        None,
    )
    if by_natural_key is not None:
        target, canonical = "natural-key", by_natural_key
    elif any(row.id == task_run_id for row in found):
        target, canonical = "id", task_run_id
    else:
        target = "natural-key" if flow_run_id is not None else "id"
        canonical = task_run_id
    timestamp = now()
    row = {**columns, "created": timestamp, "updated": timestamp}
    statement = _upsert_from_event(conn.dialect.name, target, tuple(sorted(row)))
    await conn.execute(statement, row)
    details = {**state_row["state_details"], "task_run_id": str(canonical)}
    await conn.execute(
        _insert_state_unless_recorded(conn.dialect.name),
        {
            **state_row,
            "task_run_id": canonical,
            "state_details": details,
            "created": timestamp,
            "updated": timestamp,
        },
    )
