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

from deputy.db.sqlite_json import json_object, wire_json, wire_uuid, wire_value
from deputy.db.types import read_json
from deputy.schemas.core import canonical_details
from deputy.schemas.flow_runs import estimated_run_time, estimated_start_time_delta

#: The core FlowRun's fields in Prefect's order, cut where Python writes a value: the run's
#: state id and its queue id (each rendered once, though the answer has each twice: cutting a
#: UUID into its dashed form is the dearest thing SQLite does here), the floats, the state.
_HEAD = ("id", "created", "updated", "name", "flow_id")
# "state_id"
_MIDDLE = (
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
# "total_run_time", "estimated_run_time", "estimated_start_time_delta"
_TAIL = ("auto_scheduled", "infrastructure_document_id", "infrastructure_pid", "created_by")
# "work_queue_id", "state", "job_variables"
#: The state's fields after its id and before its details.
_STATE = ("type", "name", "timestamp", "message", "data")


def columns(selected: Mapping[str, ColumnElement[Any]]) -> list[ColumnElement[Any]]:
    """The rendered columns, from a poll query's selected columns (runs, ``state__*``)."""

    def fields(names: tuple[str, ...], prefix: str = "") -> ColumnElement[str]:
        return json_object([(name, field(prefix + name)) for name in names])

    def field(key: str) -> ColumnElement[Any]:
        if key == "labels":  # answered as {} when the run has none
            return wire_json(selected[key], default="{}")
        return wire_value(selected[key])

    def stored(key: str) -> ColumnElement[Any]:
        return type_coerce(selected[key], String()).label(key)

    return [
        fields(_HEAD).label("head"),
        wire_uuid(selected["state_id"]).label("state_id"),
        fields(_MIDDLE).label("middle"),
        selected["total_run_time"].label("total_run_time"),
        # What the estimates read, as stored.
        selected["state_type"].label("state_type"),
        stored("state_timestamp"),
        stored("expected_start_time"),
        stored("start_time"),
        fields(_TAIL).label("tail"),
        wire_uuid(selected["work_queue_id"]).label("work_queue_id"),
        stored("state__id"),
        fields(_STATE, prefix="state__").label("state"),
        stored("state__state_details"),
        wire_json(selected["job_variables"]).label("job_variables"),
    ]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _stored_time(text: str | None) -> str | None:
    """A time as SQLite holds it (naive UTC text) as ISO text with its offset, which the
    estimates parse only when they need it."""
    return None if text is None else f"{text}+00:00"


def worker_flow_run(row: Any, pool_id: uuid.UUID, now: dt.datetime) -> orjson.Fragment:
    """A rendered row (see :func:`columns`) as Prefect's WorkerFlowRunResponse."""
    (
        head,
        state_id,
        middle,
        total_run_time,
        state_type,
        state_timestamp,
        expected_start_time,
        start_time,
        tail,
        queue_id,
        state_row,
        state_fields,
        state_details,
        job_variables,
    ) = row
    estimate_inputs = {
        "total_run_time": total_run_time,
        "state_type": state_type,
        "state_timestamp": _stored_time(state_timestamp),
        "expected_start_time": _stored_time(expected_start_time),
        "start_time": _stored_time(start_time),
    }
    state_id_json = _json(state_id)
    queue_id_json = _json(queue_id)
    state = "null"
    if state_row is not None:  # the run's state_id is the state's id
        details = canonical_details(read_json(state_details) if state_details else None)
        state = f'{{"id":{state_id_json},{state_fields[1:-1]},"state_details":{_json(details)}}}'
    flow_run = (
        f'{head[:-1]},"state_id":{state_id_json},{middle[1:-1]}'
        f',"total_run_time":{_json(total_run_time)}'
        f',"estimated_run_time":{_json(estimated_run_time(estimate_inputs, now))}'
        f',"estimated_start_time_delta":{_json(estimated_start_time_delta(estimate_inputs, now))}'
        f',{tail[1:-1]},"work_queue_id":{queue_id_json},"state":{state}'
        f',"job_variables":{job_variables if job_variables is not None else "null"}}}'
    )
    return orjson.Fragment(
        f'{{"work_pool_id":"{pool_id}","work_queue_id":{queue_id_json},"flow_run":{flow_run}}}'
    )
