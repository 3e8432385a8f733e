"""The task-run columns and read statements that crud, orchestrate and recorder share."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, bindparam, select

from deputy.db import tables as t
from deputy.schemas.task_runs import TaskInputs, task_run_to_wire

_run = t.task_run.c
_state = t.task_run_state.c
_flow_run = t.flow_run.c

TASK_RUN_COLUMN_NAMES = tuple(column.name for column in t.task_run.columns)
STATE_FIELDS = ("id", "type", "name", "timestamp", "message", "data", "state_details")
_STATE_COLUMNS = tuple(getattr(_state, name).label(f"state__{name}") for name in STATE_FIELDS)

#: A task run with its current state.
TASK_RUN_QUERY: Select[Any] = (
    select(t.task_run, *_STATE_COLUMNS)
    .select_from(t.task_run)
    .outerjoin(t.task_run_state, _state.id == _run.state_id)
)

#: The flow run facts the task rules read (and the labels a new task run inherits).
_FLOW_RUN_FACTS = (
    _flow_run.id.label("flow__id"),
    _flow_run.run_count.label("flow__run_count"),
    _flow_run.state_type.label("flow__state_type"),
    t.flow_run_state.c.state_details.label("flow__state_details"),
)
READ_FLOW_RUN = (
    select(*_FLOW_RUN_FACTS, _flow_run.labels.label("flow__labels"))
    .select_from(t.flow_run)
    .outerjoin(t.flow_run_state, t.flow_run_state.c.id == _flow_run.state_id)
    .where(_flow_run.id == bindparam("flow_run_id"))
)
#: A task run, its current state and its flow run, for set_state.
READ_FOR_TRANSITION = (
    select(t.task_run, *_STATE_COLUMNS, *_FLOW_RUN_FACTS)
    .select_from(t.task_run)
    .outerjoin(t.task_run_state, _state.id == _run.state_id)
    .outerjoin(t.flow_run, _flow_run.id == _run.flow_run_id)
    .outerjoin(t.flow_run_state, t.flow_run_state.c.id == _flow_run.state_id)
    .where(_run.id == bindparam("task_run_id"))
)


def state_of(mapping: Any) -> dict[str, Any] | None:
    """The current state in a row read with ``TASK_RUN_QUERY`` (``None``: it has none)."""
    if mapping["state__id"] is None:
        return None
    return {name: mapping[f"state__{name}"] for name in STATE_FIELDS}


def row_to_wire(row: Any, now: dt.datetime) -> dict[str, Any]:
    mapping = row._mapping
    return task_run_to_wire(mapping, state_of(mapping), now)


def dump_inputs(inputs: TaskInputs) -> dict[str, Any]:
    """``task_inputs`` as stored."""
    return {
        name: [item.model_dump(mode="json") for item in items] for name, items in inputs.items()
    }
