"""The worker poll's runs rendered mostly by SQLite (see :mod:`deputy.db.sqlite_json`).

Each run is one f-string over one row. SQLite writes the groups of fields it writes cheaply
(strings, times, numbers, as ``json_object`` members); Python cuts the UUIDs into their
dashed form (cheaper than SQLite's ``substr`` chains), splices the stored JSON documents in
as they are (their text is what orjson wrote), and writes what SQLite cannot write as orjson
does: the floats, the two estimates (which depend on the clock) and the state's details merged
with their defaults. The result is byte for byte what
:func:`~deputy.schemas.workers.core_flow_run_to_wire` gives for the decoded row; the tests
compare the two.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import ColumnElement, type_coerce
from sqlalchemy.types import NullType

from deputy.db.sqlite_json import json_object, wire_string, wire_value
from deputy.db.types import read_json
from deputy.db.wire_rows import sqlite_uuid
from deputy.schemas.core import canonical_details
from deputy.schemas.flow_runs import estimated_run_time, estimated_start_time_delta


def columns(selected: Mapping[str, ColumnElement[Any]]) -> list[ColumnElement[Any]]:
    """The columns :func:`worker_flow_run` reads, in its order, from a poll query's selected
    columns (the run's, and its state's as ``state__*``)."""

    def members(*names: str) -> ColumnElement[str]:
        return json_object([(name, wire_value(selected[name])) for name in names])

    def state_members(*names: str) -> ColumnElement[str]:
        return json_object([(name, wire_value(selected[f"state__{name}"])) for name in names])

    def stored(key: str) -> ColumnElement[Any]:  # as the driver reads it
        return type_coerce(selected[key], NullType())

    return [
        stored("id"),
        members("created", "updated", "name"),
        stored("flow_id"),
        stored("state_id"),
        stored("deployment_id"),
        members("deployment_version", "work_queue_name", "flow_version"),
        stored("parameters"),
        wire_string(selected["idempotency_key"]),
        stored("context"),
        stored("empirical_policy"),
        stored("tags"),
        stored("labels"),
        stored("parent_task_run_id"),
        members(
            "state_type",
            "state_name",
            "run_count",
            "expected_start_time",
            "next_scheduled_start_time",
            "start_time",
            "end_time",
        ),
        stored("total_run_time"),
        stored("state_type"),
        stored("state_timestamp"),
        stored("expected_start_time"),
        stored("start_time"),
        stored("auto_scheduled"),
        stored("infrastructure_document_id"),
        wire_string(selected["infrastructure_pid"]),
        stored("created_by"),
        stored("work_queue_id"),
        stored("state__id"),
        state_members("type", "name", "timestamp", "message"),
        stored("state__data"),
        stored("state__state_details"),
        stored("job_variables"),
    ]


def _uuid(value: str | None) -> str:
    if value is None:
        return "null"
    if len(value) == 32:  # as SQLAlchemy stores them; sqlite_uuid inlined, for speed
        return f'"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"'
    return f'"{sqlite_uuid(value)}"'


def _document(value: Any) -> str:
    """A stored JSON document as it is; a bare number (the column's NUMERIC affinity made it
    one) written by orjson."""
    if value is None:
        return "null"
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _float(value: float | None) -> str:
    return orjson.dumps(value).decode()


def _stored_time(text: str | None) -> str | None:
    """A time as SQLite holds it (naive UTC text) as ISO text with its offset, which the
    estimates parse only when they need it."""
    return None if text is None else f"{text}+00:00"


def worker_flow_run(row: Any, pool_id: str, now: dt.datetime) -> orjson.Fragment:
    """A row of :func:`columns` as Prefect's WorkerFlowRunResponse (``pool_id`` as text)."""
    (
        id_,
        created_updated_name,
        flow_id,
        state_id,
        deployment_id,
        versions_and_queue,
        parameters,
        idempotency_key,
        context,
        empirical_policy,
        tags,
        labels,
        parent_task_run_id,
        state_and_times,
        total_run_time,
        state_type,
        state_timestamp,
        expected_start_time,
        start_time,
        auto_scheduled,
        infrastructure_document_id,
        infrastructure_pid,
        created_by,
        work_queue_id,
        state_row_id,
        state_members,
        state_data,
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
    state_id_json = _uuid(state_id)
    queue_id_json = _uuid(work_queue_id)
    state = "null"
    if state_row_id is not None:  # the run's state_id is its state's id
        details = canonical_details(read_json(state_details) if state_details else None)
        state = (
            f'{{"id":{state_id_json},{state_members[1:-1]},"data":{_document(state_data)}'
            f',"state_details":{orjson.dumps(details).decode()}}}'
        )
    flow_run = (
        f'{{"id":{_uuid(id_)},{created_updated_name[1:-1]}'
        f',"flow_id":{_uuid(flow_id)},"state_id":{state_id_json}'
        f',"deployment_id":{_uuid(deployment_id)},{versions_and_queue[1:-1]}'
        f',"parameters":{_document(parameters)},"idempotency_key":{idempotency_key}'
        f',"context":{_document(context)},"empirical_policy":{_document(empirical_policy)}'
        f',"tags":{_document(tags)},"labels":{"{}" if labels is None else _document(labels)}'
        f',"parent_task_run_id":{_uuid(parent_task_run_id)},{state_and_times[1:-1]}'
        f',"total_run_time":{_float(total_run_time)}'
        f',"estimated_run_time":{_float(estimated_run_time(estimate_inputs, now))}'
        f',"estimated_start_time_delta":{_float(estimated_start_time_delta(estimate_inputs, now))}'
        f',"auto_scheduled":{"true" if auto_scheduled else "false"}'
        f',"infrastructure_document_id":{_uuid(infrastructure_document_id)}'
        f',"infrastructure_pid":{infrastructure_pid},"created_by":{_document(created_by)}'
        f',"work_queue_id":{queue_id_json},"state":{state}'
        f',"job_variables":{_document(job_variables)}}}'
    )
    return orjson.Fragment(
        f'{{"work_pool_id":"{pool_id}","work_queue_id":{queue_id_json},"flow_run":{flow_run}}}'
    )
