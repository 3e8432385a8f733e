"""Flow runs rendered mostly by SQLite (see :mod:`deputy.db.wire.sqlite_json`), for the hot reads.

Each run is one row cut into pieces of JSON text, spliced into its shape's template. SQLite
writes the groups of fields it writes cheaply (strings, times, numbers, as ``json_object``
members); Python cuts the UUIDs into their dashed form (cheaper than SQLite's ``substr``
chains), splices the stored JSON documents in as they are (their text is what orjson wrote),
and writes what SQLite cannot write as orjson does: the floats, the two estimates (which depend
on the clock) and the documents merged with their defaults (the state's details and the run's
policy).

Two shapes: the worker poll's WorkerFlowRunResponse (Prefect's core ``FlowRun``), and the
FlowRunResponse of the flow-run filter and read and the Runner's poll. Each template is built
once, at import, from the field list its wire builder follows
(:data:`~deputy.schemas.flow_runs.FLOW_RUN_FIELDS`,
:data:`~deputy.schemas.flow_runs.FLOW_RUN_RESPONSE_FIELDS`), and each answer is byte for byte
what that builder (:func:`~deputy.schemas.flow_runs.core_flow_run_to_wire`,
:func:`~deputy.schemas.flow_runs.flow_run_to_wire`) gives for the decoded row; the tests
compare them.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import ColumnElement, String, func, type_coerce
from sqlalchemy.types import NullType

from deputy.db.types import read_json
from deputy.db.wire.rows import sqlite_parsed_json, sqlite_uuid
from deputy.db.wire.sqlite_json import json_object, wire_string, wire_value
from deputy.schemas.core import canonical_details, canonical_policy
from deputy.schemas.flow_runs import (
    FLOW_RUN_FIELDS,
    FLOW_RUN_RESPONSE_FIELDS,
    Source,
    estimated_run_time,
    estimated_start_time_delta,
)

Columns = Mapping[str, ColumnElement[Any]]

#: A run as answered: a wire dict, or JSON text SQLite rendered.
WireRun = dict[str, Any] | orjson.Fragment

#: Fields consecutive in both shapes that SQLite writes as the members of one
#: ``json_object``, by their first key.
_GROUPS = {
    "created": ("created", "updated", "name"),
    "state_type": (
        "state_type",
        "state_name",
        "run_count",
        "expected_start_time",
        "next_scheduled_start_time",
        "start_time",
        "end_time",
    ),
}
_STATE_MEMBERS = ("type", "name", "timestamp", "message")


def _members(selected: Columns, names: tuple[str, ...], prefix: str = "") -> ColumnElement[str]:
    return json_object([(name, wire_value(selected[prefix + name])) for name in names])


def _stored(selected: Columns, key: str) -> ColumnElement[Any]:
    """The column as the driver reads it (no result processing)."""
    return type_coerce(selected[key], NullType())


def _common_columns(selected: Columns) -> list[ColumnElement[Any]]:
    """What both shapes read, in the order :func:`_pieces` unpacks it."""
    return [
        _stored(selected, "id"),
        _members(selected, _GROUPS["created"]),
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
        _members(selected, _GROUPS["state_type"]),
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


#: How many columns :func:`_common_columns` reads; each shape's own follow them.
_SHARED = 30


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


#: The keys of what :func:`_pieces` gives, in its order (a group by its first key): the
#: templates find each key's text by its place here. The core FlowRun's order, which its
#: template (the worker poll's, the hottest read) then takes as it is.
_PIECES = (
    "id",
    "created",
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
    "total_run_time",
    "estimated_run_time",
    "estimated_start_time_delta",
    "auto_scheduled",
    "infrastructure_document_id",
    "infrastructure_pid",
    "created_by",
    "work_queue_id",
    "state",
    "job_variables",
)
_WORK_QUEUE_NAME = _PIECES.index("work_queue_name")
_WORK_QUEUE_ID = _PIECES.index("work_queue_id")


def _pieces(row: Any, now: dt.datetime) -> list[str]:
    """A row of :func:`_common_columns` as the JSON text of each field, in the order of
    :data:`_PIECES`; a group of :data:`_GROUPS` as its members (no braces). The queue's
    name, which each shape reads its own way, is left empty."""
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
    ) = row[:_SHARED]
    estimate_inputs = {
        "total_run_time": total_run_time,
        "state_type": state_type,
        "state_timestamp": _stored_time(state_timestamp),
        "expected_start_time": _stored_time(expected_start_time),
        "start_time": _stored_time(start_time),
    }
    state_id_json = _uuid(state_id)
    state = "null"
    if state_row_id is not None:  # the run's state_id is its state's id
        details = canonical_details(sqlite_parsed_json(state_details) if state_details else None)
        state = (
            f'{{"id":{state_id_json},{state_members[1:-1]},"data":{_document(state_data)}'
            f',"state_details":{orjson.dumps(details).decode()}}}'
        )
    return [
        _uuid(id_),
        times_and_name[1:-1],
        _uuid(flow_id),
        state_id_json,
        _uuid(deployment_id),
        deployment_version,
        "",  # work_queue_name
        flow_version,
        _document(parameters),
        idempotency_key,
        _document(context),
        _canonical_policy(policy if policy is None else _document(policy)),
        _document(tags),
        "{}" if labels is None else _document(labels),
        _uuid(parent_task_run_id),
        progress[1:-1],
        _float(total_run_time),
        _float(estimated_run_time(estimate_inputs, now)),
        _float(estimated_start_time_delta(estimate_inputs, now)),
        "true" if auto_scheduled else "false",
        _uuid(infrastructure_document_id),
        infrastructure_pid,
        _document(created_by),
        _uuid(work_queue_id),
        state,
        _document(job_variables),
    ]


def _holes(fields: Mapping[str, Source]) -> tuple[list[str], list[str]]:
    """The shape ``fields`` (a field list of :mod:`deputy.schemas.flow_runs`) as the text
    before each hole, and the key whose JSON text fills it (a group's members by its first
    key), in order."""
    keys = list(fields)
    texts: list[str] = []
    holes: list[str] = []
    before = "{"
    at = 0
    while at < len(keys):
        key = keys[at]
        group = _GROUPS.get(key)
        if group is None:
            texts.append(f'{before}"{key}":')
            at += 1
        else:
            if tuple(keys[at : at + len(group)]) != group:
                raise ValueError(f"not consecutive in the shape, as SQLite writes them: {group}")
            if any(fields[member] is not Source.COLUMN for member in group):
                raise ValueError(f"SQLite writes columns only: {group}")
            texts.append(before)
            at += len(group)
        holes.append(key)
        before = ","
    return texts, holes


class _Template:
    """Text with holes, filled from :func:`_pieces` and what follows them (``extras``).

    Built once per shape; joining a list is as fast as an f-string, and much faster than
    ``%`` or ``str.format``, which look each hole up by name and write piece by piece.
    """

    __slots__ = ("_blank", "_values")

    def __init__(self, texts: list[str], holes: list[str], extras: tuple[str, ...] = ()) -> None:
        names = [*_PIECES, *extras]
        unknown = set(holes) - set(names)
        if unknown:
            raise ValueError(f"no piece for {sorted(unknown)}")
        self._blank: list[str] = [""] * (2 * len(holes) + 1)
        self._blank[0::2] = [*texts, "}"]
        self._values: Callable[[list[str]], Sequence[str]] | None = None  # in order already
        if holes != names:
            self._values = operator.itemgetter(*(names.index(hole) for hole in holes))

    def fill(self, pieces: list[str]) -> str:
        parts = self._blank.copy()
        parts[1::2] = pieces if self._values is None else self._values(pieces)
        return "".join(parts)


_FLOW_RUN = _Template(*_holes(FLOW_RUN_FIELDS))
_FLOW_RUN_RESPONSE = _Template(
    *_holes(FLOW_RUN_RESPONSE_FIELDS), extras=("work_pool_id", "work_pool_name")
)


def worker_flow_run(row: Any, pool_id: str, now: dt.datetime) -> orjson.Fragment:
    """A row of :func:`worker_columns` as Prefect's WorkerFlowRunResponse (``pool_id`` as
    text): the run's own queue name (not its queue's)."""
    pieces = _pieces(row, now)
    pieces[_WORK_QUEUE_NAME] = row[_SHARED]
    return orjson.Fragment(
        f'{{"work_pool_id":"{pool_id}","work_queue_id":{pieces[_WORK_QUEUE_ID]}'
        f',"flow_run":{_FLOW_RUN.fill(pieces)}}}'
    )


def flow_run_response(row: Any, now: dt.datetime) -> orjson.Fragment:
    """A row of :func:`response_columns` as Prefect's FlowRunResponse: the queue's name when
    the run has a queue, and its pool."""
    pieces = _pieces(row, now)
    pieces[_WORK_QUEUE_NAME], pool_id, pool_name = row[_SHARED:]
    pieces += (_uuid(pool_id), pool_name)
    return orjson.Fragment(_FLOW_RUN_RESPONSE.fill(pieces))
