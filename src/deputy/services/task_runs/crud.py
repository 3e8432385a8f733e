"""Task runs: created, read, filtered, counted, renamed and deleted.

``POST /task_runs/`` (subflow parents, ``run_deployment``) gives the run its first state
through Prefect's task policy (``orchestrate.first_state``). Creating a task run of a flow
run takes three statements: read the flow run, insert-or-ignore the run, insert its state.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, delete, extract, func, literal, nulls_last, select, update

from deputy.db import tables as t
from deputy.db.dialect import insert_unless_exists
from deputy.db.filters.related import task_run_where
from deputy.db.types import Timestamp
from deputy.errors import NotFound, integrity_conflict
from deputy.schemas.core import StateType
from deputy.schemas.filters import TaskRunRelatedFilters, TaskRunSort
from deputy.schemas.task_runs import TaskRunCreate, TaskRunUpdate, task_run_to_wire
from deputy.services.common import Answer
from deputy.services.names import generate_run_name
from deputy.services.task_runs.orchestrate import first_state, insert_state
from deputy.services.task_runs.rows import (
    READ_FLOW_RUN,
    STATE_FIELDS,
    TASK_RUN_QUERY,
    dump_inputs,
    row_to_wire,
)

if TYPE_CHECKING:
    from deputy.db.connection import Connection

TASK_NOT_FOUND = "Task not found"
TASK_RUN_NOT_FOUND = "Task run not found"
#: Prefect's text for a missing task-run state, word for word.
STATE_NOT_FOUND = "Flow run state not found"

_run = t.task_run.c
_state = t.task_run_state.c

_READ_TASK_RUN = TASK_RUN_QUERY.where(_run.id == bindparam("task_run_id"))
_READ_BY_NATURAL_KEY = TASK_RUN_QUERY.where(
    _run.flow_run_id == bindparam("flow_run_id"),
    _run.task_key == bindparam("task_key"),
    _run.dynamic_key == bindparam("dynamic_key"),
)
_READ_WITHOUT_FLOW_RUN = TASK_RUN_QUERY.where(
    _run.flow_run_id.is_(None),
    _run.task_key == bindparam("task_key"),
    _run.dynamic_key == bindparam("dynamic_key"),
).limit(1)
_INSERT_RUN = t.task_run.insert()
_NATURAL_KEY = ("flow_run_id", "task_key", "dynamic_key")


# --- reading --------------------------------------------------------------------------------


async def read_task_run(
    conn: Connection, task_run_id: uuid.UUID, *, now: dt.datetime
) -> dict[str, Any]:
    row = (await conn.execute(_READ_TASK_RUN, {"task_run_id": task_run_id})).first()
    if row is None:
        raise NotFound(TASK_NOT_FOUND)
    return row_to_wire(row, now=now)


async def filter_task_runs(
    conn: Connection,
    filters: TaskRunRelatedFilters,
    *,
    sort: TaskRunSort,
    offset: int,
    limit: int,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    query = (
        TASK_RUN_QUERY.where(*task_run_where(filters))
        .order_by(*_sorts(sort, conn.dialect.name, now), _run.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return [row_to_wire(row, now) for row in await conn.execute(query)]


async def count_task_runs(conn: Connection, filters: TaskRunRelatedFilters) -> int:
    query = select(func.count()).select_from(t.task_run).where(*task_run_where(filters))
    return int((await conn.execute(query)).scalar_one())


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


def _task_run_state_to_wire(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in STATE_FIELDS}


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


async def create_task_run(conn: Connection, body: TaskRunCreate, *, now: dt.datetime) -> Answer:
    """``POST /task_runs/``: a new run with its first state (PENDING unless given), applied
    without rules; the run already there for the same (flow run, task key, dynamic key),
    unchanged, otherwise. A run of a flow run inherits its labels."""
    flow_run = None
    labels: dict[str, Any] = body.labels or {}
    if body.flow_run_id is not None:
        flow_run = (await conn.execute(READ_FLOW_RUN, {"flow_run_id": body.flow_run_id})).first()
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
            return Answer(row_to_wire(existing, now), created=False)
    run = _new_run_row(body, labels, now)
    decision, state = await first_state(conn, run, flow_run, body.state, now)
    if body.flow_run_id is None:
        await conn.execute(_INSERT_RUN, run)
    else:
        statement = insert_unless_exists(conn.dialect.name, t.task_run, _NATURAL_KEY)
        if (await conn.execute(statement, run)).first() is None:
            params = {
                "flow_run_id": body.flow_run_id,
                "task_key": body.task_key,
                "dynamic_key": body.dynamic_key,
            }
            existing = (await conn.execute(_READ_BY_NATURAL_KEY, params)).one()
            return Answer(row_to_wire(existing, now), created=False)
    if state is not None:
        await insert_state(conn, state, decision)
    return Answer(task_run_to_wire(run, state, now), created=True)


def _new_run_row(
    body: TaskRunCreate, labels: dict[str, Any], timestamp: dt.datetime
) -> dict[str, Any]:
    """The task-run row ``body`` asks for, before its first state."""
    return {
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
        "task_inputs": dump_inputs(body.task_inputs),
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


async def update_task_run(
    conn: Connection, task_run_id: uuid.UUID, body: TaskRunUpdate, *, now: dt.datetime
) -> None:
    """PATCH: a new name when one was sent (``null`` or ``""``: a generated one)."""
    values: dict[str, Any] = {"updated": now}
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
