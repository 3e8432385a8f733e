"""Flow runs rendered mostly by SQLite (see :mod:`deputy.db.wire.sqlite_json`), for the hot reads.

Each run is one f-string over one row. SQLite writes the groups of fields it writes cheaply
(strings, times, numbers, as ``json_object`` members); Python cuts the UUIDs into their
dashed form (cheaper than SQLite's ``substr`` chains), splices the stored JSON documents in
as they are (their text is what orjson wrote), and writes what SQLite cannot write as orjson
does: the floats, the two estimates (which depend on the clock) and the documents merged with
their defaults (the state's details and the run's policy).

Two shapes: the worker poll's WorkerFlowRunResponse (Prefect's core ``FlowRun``), and the
FlowRunResponse of the flow-run filter and read and the Runner's poll. Each is byte for byte
what its wire builder (:func:`~deputy.schemas.workers.core_flow_run_to_wire`,
:func:`~deputy.schemas.flow_runs.flow_run_to_wire`) gives for the decoded row; the tests
compare them.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, func, type_coerce
from sqlalchemy.types import NullType

from deputy.db.types import read_json
from deputy.db.wire.rows import sqlite_parsed_json, sqlite_uuid
from deputy.db.wire.sqlite_json import json_object, wire_string, wire_value
from deputy.schemas.core import canonical_details, canonical_policy
from deputy.schemas.flow_runs import estimated_run_time, estimated_start_time_delta

Columns = Mapping[str, ColumnElement[Any]]

#: A run as answered: a wire dict, or JSON text SQLite rendered.
WireRun = dict[str, Any] | orjson.Fragment

#: Consecutive fields SQLite writes as ``json_object`` members.
_TIMES_AND_NAME = ("created", "updated", "name")
_PROGRESS = (
    "state_type",
    "state_name",
    "run_count",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
)
_STATE_MEMBERS = ("type", "name", "timestamp", "message")


def _members(selected: Columns, names: tuple[str, ...], prefix: str = "") -> ColumnElement[str]:
    return json_object([(name, wire_value(selected[prefix + name])) for name in names])


def _stored(selected: Columns, key: str) -> ColumnElement[Any]:
    """The column as the driver reads it (no result processing)."""
    return type_coerce(selected[key], NullType())


def _common_columns(selected: Columns) -> list[ColumnElement[Any]]:
    """What both shapes read, in the order :func:`_Run` unpacks it."""
    return [
        _stored(selected, "id"),
        _members(selected, _TIMES_AND_NAME),
        _stored(selected, "flow_id"),
        _stored(selected, "state_id"),
        _stored(selected, "deployment_id"),
        wire_string(selected["deployment_version"]),
        wire_string(selected["flow_version"]),
        _stored(selected, "parameters"),
        wire_string(selected["idempotency_key"]),
        _stored(selected, "context"),
        _stored(selected, "empirical_policy"),
        _stored(selected, "tags"),
        _stored(selected, "labels"),
        _stored(selected, "parent_task_run_id"),
        _members(selected, _PROGRESS),
        _stored(selected, "total_run_time"),
        _stored(selected, "state_type"),
        _stored(selected, "state_timestamp"),
        _stored(selected, "expected_start_time"),
        _stored(selected, "start_time"),
        _stored(selected, "auto_scheduled"),
        _stored(selected, "infrastructure_document_id"),
        wire_string(selected["infrastructure_pid"]),
        _stored(selected, "created_by"),
        _stored(selected, "work_queue_id"),
        _stored(selected, "state__id"),
        _members(selected, _STATE_MEMBERS, prefix="state__"),
        _stored(selected, "state__data"),
        _stored(selected, "state__state_details"),
        _stored(selected, "job_variables"),
    ]


def worker_columns(selected: Columns) -> list[ColumnElement[Any]]:
    """The columns :func:`worker_flow_run` reads, from a poll query's selected columns (the
    run's, and its state's as ``state__*``)."""
    return [*_common_columns(selected), wire_string(selected["work_queue_name"])]


def response_columns(selected: Columns) -> list[ColumnElement[Any]]:
    """The columns :func:`flow_run_response` reads, from :func:`flow_run_query`'s selected
    columns (also ``queue__name``, ``pool__id`` and ``pool__name``)."""
    queue_name = func.coalesce(selected["queue__name"], selected["work_queue_name"], type_=String())
    return [
        *_common_columns(selected),
        wire_string(queue_name),
        _stored(selected, "pool__id"),
        wire_string(selected["pool__name"]),
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


@functools.lru_cache(maxsize=256)
def _canonical_policy(stored: str | None) -> str:
    """A stored policy merged with the defaults, as JSON text. Cached by the stored text:
    most runs share a handful of policies (the default one above all)."""
    return orjson.dumps(canonical_policy(read_json(stored) if stored else None)).decode()


def _float(value: float | None) -> str:
    return orjson.dumps(value).decode()


def _stored_time(text: str | None) -> str | None:
    """A time as SQLite holds it (naive UTC text) as ISO text with its offset, which the
    estimates parse only when they need it."""
    return None if text is None else f"{text}+00:00"


class _Run:
    """One row of :func:`_common_columns` (and what follows), with its fields as JSON text
    cut into the pieces both shapes are assembled from."""

    __slots__ = ("head", "job_variables", "middle", "policy", "queue_id", "state", "tail")

    def __init__(self, row: Any, now: dt.datetime) -> None:
        (
            id_,
            times_and_name,
            flow_id,
            state_id,
            deployment_id,
            deployment_version,
            flow_version,
            parameters,
            idempotency_key,
            context,
            policy,
            tags,
            labels,
            parent_task_run_id,
            progress,
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
        ) = row[:30]
        estimate_inputs = {
            "total_run_time": total_run_time,
            "state_type": state_type,
            "state_timestamp": _stored_time(state_timestamp),
            "expected_start_time": _stored_time(expected_start_time),
            "start_time": _stored_time(start_time),
        }
        run_time = estimated_run_time(estimate_inputs, now)
        start_delta = estimated_start_time_delta(estimate_inputs, now)
        state_id_json = _uuid(state_id)
        self.queue_id = _uuid(work_queue_id)
        # Up to the fields the two shapes order differently (queue and flow version).
        self.head = (
            f'{{"id":{_uuid(id_)},{times_and_name[1:-1]}'
            f',"flow_id":{_uuid(flow_id)},"state_id":{state_id_json}'
            f',"deployment_id":{_uuid(deployment_id)},"deployment_version":{deployment_version}'
        )
        # From the flow version up to the policy.
        self.middle = (
            f'"flow_version":{flow_version}'
            f',"parameters":{_document(parameters)},"idempotency_key":{idempotency_key}'
            f',"context":{_document(context)}'
        )
        # From the tags to the creator.
        self.tail = (
            f'"tags":{_document(tags)},"labels":{"{}" if labels is None else _document(labels)}'
            f',"parent_task_run_id":{_uuid(parent_task_run_id)},{progress[1:-1]}'
            f',"total_run_time":{_float(total_run_time)}'
            f',"estimated_run_time":{_float(run_time)}'
            f',"estimated_start_time_delta":{_float(start_delta)}'
            f',"auto_scheduled":{"true" if auto_scheduled else "false"}'
            f',"infrastructure_document_id":{_uuid(infrastructure_document_id)}'
            f',"infrastructure_pid":{infrastructure_pid},"created_by":{_document(created_by)}'
        )
        self.state = "null"
        if state_row_id is not None:  # the run's state_id is its state's id
            details = canonical_details(
                sqlite_parsed_json(state_details) if state_details else None
            )
            self.state = (
                f'{{"id":{state_id_json},{state_members[1:-1]},"data":{_document(state_data)}'
                f',"state_details":{orjson.dumps(details).decode()}}}'
            )
        self.job_variables = _document(job_variables)
        self.policy = _canonical_policy(policy if policy is None else _document(policy))


def worker_flow_run(row: Any, pool_id: str, now: dt.datetime) -> orjson.Fragment:
    """A row of :func:`worker_columns` as Prefect's WorkerFlowRunResponse (``pool_id`` as
    text): the run's own queue name (not its queue's)."""
    run = _Run(row, now)
    queue_name = row[30]
    flow_run = (
        f'{run.head},"work_queue_name":{queue_name},{run.middle}'
        f',"empirical_policy":{run.policy},{run.tail}'
        f',"work_queue_id":{run.queue_id},"state":{run.state}'
        f',"job_variables":{run.job_variables}}}'
    )
    return orjson.Fragment(
        f'{{"work_pool_id":"{pool_id}","work_queue_id":{run.queue_id},"flow_run":{flow_run}}}'
    )


def flow_run_response(row: Any, now: dt.datetime) -> orjson.Fragment:
    """A row of :func:`response_columns` as Prefect's FlowRunResponse: the queue's name when
    the run has a queue, and its pool."""
    run = _Run(row, now)
    queue_name, pool_id, pool_name = row[30:33]
    return orjson.Fragment(
        f'{run.head},"work_queue_id":{run.queue_id},"work_queue_name":{queue_name}'
        f',{run.middle},"empirical_policy":{run.policy},{run.tail}'
        f',"work_pool_id":{_uuid(pool_id)},"work_pool_name":{pool_name}'
        f',"state":{run.state},"job_variables":{run.job_variables}}}'
    )
