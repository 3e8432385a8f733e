"""The worker poll's runs rendered by SQLite (see :mod:`deputy.db.sqlite_json`).

Each run comes back as a few JSON fragments in Prefect's field order: the fields before the
floats, the fields after them, the state without its details, and the job variables. Python
writes only what SQLite cannot write as orjson does: the floats (the stored run time and the
two estimates, which depend on the clock) and the state's details merged with their defaults.
The result is byte for byte what :func:`~deputy.schemas.workers.core_flow_run_to_wire` gives
for the decoded row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, type_coerce

from deputy.db.sqlite_json import json_object, wire_json, wire_time, wire_uuid, wire_value
from deputy.db.types import read_json
from deputy.schemas.core import canonical_details
from deputy.schemas.flow_runs import estimated_run_time, estimated_start_time_delta

#: The core FlowRun's fields before ``total_run_time``, in Prefect's order.
_HEAD = (
    "id",
    "created",
    "updated",
    "name",
    "flow_id",
    "state_id",
    "deployment_id",
    "deployment_version",
    "work_queue_name",
    "flow_version",
    "parameters",
    "idempotency_key",
    "context",
    "empirical_policy",
    "tags",
    "labels",
    "parent_task_run_id",
    "state_type",
    "state_name",
    "run_count",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
)
#: Those after the estimates and before ``state``.
_TAIL = (
    "auto_scheduled",
    "infrastructure_document_id",
    "infrastructure_pid",
    "created_by",
    "work_queue_id",
)
#: The state's fields before ``state_details``.
_STATE = ("id", "type", "name", "timestamp", "message", "data")


def columns(selected: Mapping[str, ColumnElement[Any]]) -> list[ColumnElement[Any]]:
    """The rendered columns, from a poll query's selected columns (runs, ``state__*``)."""

    def field(name: str) -> ColumnElement[Any]:
        if name == "labels":  # answered as {} when the run has none
            return wire_json(selected[name], default="{}")
        return wire_value(selected[name])

    return [
        json_object([(name, field(name)) for name in _HEAD]).label("head"),
        selected["total_run_time"].label("total_run_time"),
        # What the estimates read, as the wire rows hold them.
        selected["state_type"].label("state_type"),
        wire_time(selected["state_timestamp"]).label("state_timestamp"),
        wire_time(selected["expected_start_time"]).label("expected_start_time"),
        wire_time(selected["start_time"]).label("start_time"),
        json_object([(name, field(name)) for name in _TAIL]).label("tail"),
        type_coerce(selected["state__id"], String()).label("state_row"),
        json_object([(name, wire_value(selected[f"state__{name}"])) for name in _STATE]).label(
            "state_head"
        ),
        type_coerce(selected["state__state_details"], String()).label("state_details"),
        wire_json(selected["job_variables"]).label("job_variables"),
        wire_uuid(selected["work_queue_id"]).label("work_queue_id"),
    ]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def worker_flow_run(row: Any, pool_id: uuid.UUID, now: dt.datetime) -> orjson.Fragment:
    """A rendered row (see :func:`columns`) as Prefect's WorkerFlowRunResponse."""
    (
        head,
        total_run_time,
        state_type,
        state_timestamp,
        expected_start_time,
        start_time,
        tail,
        state_row,
        state_head,
        state_details,
        job_variables,
        work_queue_id,
    ) = row
    estimate_inputs = {
        "total_run_time": total_run_time,
        "state_type": state_type,
        "state_timestamp": state_timestamp,
        "expected_start_time": expected_start_time,
        "start_time": start_time,
    }
    state = "null"
    if state_row is not None:
        details = canonical_details(read_json(state_details) if state_details else None)
        state = f'{state_head[:-1]},"state_details":{_json(details)}}}'
    flow_run = (
        f'{head[:-1]},"total_run_time":{_json(total_run_time)}'
        f',"estimated_run_time":{_json(estimated_run_time(estimate_inputs, now))}'
        f',"estimated_start_time_delta":{_json(estimated_start_time_delta(estimate_inputs, now))}'
        f',{tail[1:-1]},"state":{state}'
        f',"job_variables":{job_variables if job_variables is not None else "null"}}}'
    )
    return orjson.Fragment(
        f'{{"work_pool_id":"{pool_id}","work_queue_id":{_json(work_queue_id)}'
        f',"flow_run":{flow_run}}}'
    )
