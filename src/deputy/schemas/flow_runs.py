"""Flow run and flow run state wire models, and the builders that shape rows into them."""

from __future__ import annotations

import datetime as dt
import enum
import operator
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from deputy.schemas.core import (
    TERMINAL_STATE_TYPES,
    CreatedBy,
    FlowRunPolicy,
    KeyValueLabels,
    Offset,
    State,
    StateCreate,
    StateType,
    canonical_details,
    canonical_policy,
)
from deputy.schemas.filters import FlowRunSort, RelatedFilters


class FlowRun(BaseModel):
    """Prefect's core ``FlowRun``: a ``FlowRunResponse`` without the pool's id and name."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: str
    flow_id: uuid.UUID
    state_id: uuid.UUID | None = None
    deployment_id: uuid.UUID | None = None
    deployment_version: str | None = None
    work_queue_name: str | None = None
    flow_version: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    empirical_policy: FlowRunPolicy = Field(default_factory=FlowRunPolicy)
    tags: list[str] = Field(default_factory=list)
    labels: KeyValueLabels | None = None
    parent_task_run_id: uuid.UUID | None = None
    state_type: StateType | None = None
    state_name: str | None = None
    run_count: int = 0
    expected_start_time: dt.datetime | None = None
    next_scheduled_start_time: dt.datetime | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    total_run_time: float = 0.0
    estimated_run_time: float = 0.0
    estimated_start_time_delta: float = 0.0
    auto_scheduled: bool = False
    infrastructure_document_id: uuid.UUID | None = None
    infrastructure_pid: str | None = None
    created_by: CreatedBy | None = None
    work_queue_id: uuid.UUID | None = None
    state: State | None = None
    job_variables: dict[str, Any] | None = None


class FlowRunResponse(FlowRun):
    """A ``FlowRun`` with its pool's id and name, as the flow-run endpoints answer it."""

    labels: KeyValueLabels = Field(default_factory=dict)
    work_pool_id: uuid.UUID | None = None
    work_pool_name: str | None = None


class FlowRunCreate(BaseModel):
    """The body of ``POST /flow_runs/``."""

    model_config = ConfigDict(extra="forbid")

    state: StateCreate | None = None
    name: str = ""
    flow_id: uuid.UUID
    flow_version: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    parent_task_run_id: uuid.UUID | None = None
    infrastructure_document_id: uuid.UUID | None = None
    empirical_policy: FlowRunPolicy = Field(default_factory=FlowRunPolicy)
    tags: list[str] = Field(default_factory=list)
    labels: KeyValueLabels | None = None
    idempotency_key: str | None = None
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] | None = None
    deployment_id: uuid.UUID | None = None

    @field_validator("name", mode="before")
    @classmethod
    def _null_name_means_generated(cls, value: Any) -> Any:
        return "" if value is None else value


class FlowRunUpdate(BaseModel):
    """The body of ``PATCH /flow_runs/{id}``: only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    flow_version: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    empirical_policy: FlowRunPolicy = Field(default_factory=FlowRunPolicy)
    tags: list[str] = Field(default_factory=list)
    infrastructure_pid: str | None = None
    job_variables: dict[str, Any] | None = None


class FlowRunFilterBody(RelatedFilters):
    sort: FlowRunSort = FlowRunSort.ID_DESC
    offset: Offset = 0
    limit: int | None = None


class FlowRunCountBody(RelatedFilters):
    pass


class DeploymentFlowRunBulkResult(BaseModel):
    flow_run_id: uuid.UUID | None = None
    status: str
    error: str | None = None


class DeploymentFlowRunBulkResponse(BaseModel):
    results: list[DeploymentFlowRunBulkResult]


# --- the wire shapes ----------------------------------------------------------------------


class Source(enum.Enum):
    """Where a flow-run wire field's value comes from."""

    COLUMN = "the run's column of the same name, as it is"
    POLICY = "the run's empirical_policy merged with FlowRunPolicy's defaults, in its order"
    LABELS = "the run's labels, {} when it has none"
    RUN_TIME = "estimated_run_time(): the stored total plus the current RUNNING stretch"
    START_DELTA = "estimated_start_time_delta(): how late the run started, or is so far"
    QUEUE_NAME = "the name of the run's queue, else the run's own work_queue_name"
    POOL_ID = "the id of the pool of the run's queue"
    POOL_NAME = "the name of the pool of the run's queue"
    STATE = "the run's current state, as state_to_wire() writes it; null without one"


_COLUMN = Source.COLUMN

# What both shapes share, around the places where they put the queue's (and pool's) fields.
_HEAD: dict[str, Source] = {
    "id": _COLUMN,
    "created": _COLUMN,
    "updated": _COLUMN,
    "name": _COLUMN,
    "flow_id": _COLUMN,
    "state_id": _COLUMN,
    "deployment_id": _COLUMN,
    "deployment_version": _COLUMN,
}
_BODY: dict[str, Source] = {
    "flow_version": _COLUMN,
    "parameters": _COLUMN,
    "idempotency_key": _COLUMN,
    "context": _COLUMN,
    "empirical_policy": Source.POLICY,
    "tags": _COLUMN,
    "labels": Source.LABELS,
    "parent_task_run_id": _COLUMN,
    "state_type": _COLUMN,
    "state_name": _COLUMN,
    "run_count": _COLUMN,
    "expected_start_time": _COLUMN,
    "next_scheduled_start_time": _COLUMN,
    "start_time": _COLUMN,
    "end_time": _COLUMN,
    "total_run_time": _COLUMN,
    "estimated_run_time": Source.RUN_TIME,
    "estimated_start_time_delta": Source.START_DELTA,
    "auto_scheduled": _COLUMN,
    "infrastructure_document_id": _COLUMN,
    "infrastructure_pid": _COLUMN,
    "created_by": _COLUMN,
}

#: Prefect's core ``FlowRun`` (the worker poll's ``flow_run``), its keys in Prefect's order:
#: no pool, the run's own ``work_queue_name`` (null for runs whose deployment named only a
#: pool), ``work_queue_id`` near the end.
FLOW_RUN_FIELDS: Mapping[str, Source] = {
    **_HEAD,
    "work_queue_name": _COLUMN,
    **_BODY,
    "work_queue_id": _COLUMN,
    "state": Source.STATE,
    "job_variables": _COLUMN,
}

#: Prefect's ``FlowRunResponse`` (the flow-run endpoints, the Runner's poll), its keys in
#: Prefect's order: the queue's id and name early, the pool's id and name near the end.
FLOW_RUN_RESPONSE_FIELDS: Mapping[str, Source] = {
    **_HEAD,
    "work_queue_id": _COLUMN,
    "work_queue_name": Source.QUEUE_NAME,
    **_BODY,
    "work_pool_id": Source.POOL_ID,
    "work_pool_name": Source.POOL_NAME,
    "state": Source.STATE,
    "job_variables": _COLUMN,
}


def state_to_wire(state: Any) -> dict[str, Any]:
    """A ``flow_run_state`` row (or the dict about to be inserted) as Prefect's State."""
    get = state.get if isinstance(state, dict) else state._mapping.get
    return {
        "id": get("id"),
        "type": get("type"),
        "name": get("name"),
        "timestamp": get("timestamp"),
        "message": get("message"),
        "data": get("data"),
        "state_details": canonical_details(get("state_details")),
    }


def _moment(value: dt.datetime | str | None) -> dt.datetime | None:
    """A row's time as a datetime: rows read for the wire hold it as the answered text
    (``...Z``, see :mod:`deputy.db.wire.rows`), decoded rows and new rows as a datetime."""
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


def estimated_run_time(run: Any, now: dt.datetime) -> float:
    """Run time so far: the stored total plus the current RUNNING stretch."""
    total: float = run["total_run_time"] or 0.0
    if run["state_type"] == StateType.RUNNING:
        since = _moment(run["state_timestamp"])
        if since is not None:
            total += max((now - since).total_seconds(), 0.0)
    return total


def estimated_start_time_delta(run: Any, now: dt.datetime) -> float:
    """How late the run started, or is so far when it has not started yet."""
    expected = _moment(run["expected_start_time"])
    started = _moment(run["start_time"])
    if expected is None:
        return 0.0
    if started is not None:
        return max((started - expected).total_seconds(), 0.0)
    if run["state_type"] not in TERMINAL_STATE_TYPES and expected < now:
        return (now - expected).total_seconds()
    return 0.0


def _wire_builder(
    fields: Mapping[str, Source],
) -> Callable[[Any, Any, dt.datetime], dict[str, Any]]:
    """A function writing a run (row mapping or dict) and its current state in the shape
    ``fields``: its columns copied, the values both shapes compute computed, and the ones
    only FlowRunResponse has (the queue's name, the pool's) left ``None`` for its caller.

    Copying a blank dict and updating it is faster than a dict literal of the same keys (no
    resizing): this runs for every run the polls and the flow-run filter answer.
    """
    blank = dict.fromkeys(fields)
    copied = tuple(key for key, source in fields.items() if source is Source.COLUMN)
    columns = operator.itemgetter(*copied)

    def to_wire(run: Any, state: Any, now: dt.datetime) -> dict[str, Any]:
        wire = blank.copy()
        # Not strict: the lengths match by construction, and the check costs ~5% here.
        wire.update(zip(copied, columns(run), strict=False))
        wire["empirical_policy"] = canonical_policy(run["empirical_policy"])
        wire["labels"] = run["labels"] or {}
        wire["estimated_run_time"] = estimated_run_time(run, now)
        wire["estimated_start_time_delta"] = estimated_start_time_delta(run, now)
        wire["state"] = state_to_wire(state) if state is not None else None
        return wire

    return to_wire


#: A run (row mapping) and its current state as Prefect's core ``FlowRun``
#: (:data:`FLOW_RUN_FIELDS`), as Prefect answers the worker poll.
core_flow_run_to_wire = _wire_builder(FLOW_RUN_FIELDS)

_flow_run_response = _wire_builder(FLOW_RUN_RESPONSE_FIELDS)


def flow_run_to_wire(
    run: Any,
    state: Any,
    *,
    queue_name: str | None,
    pool_id: Any,
    pool_name: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """A run (row mapping or dict), its current state, and its queue/pool names, as Prefect's
    FlowRunResponse (:data:`FLOW_RUN_RESPONSE_FIELDS`). The queue and pool names come from
    the joined queue, as Prefect fills them.
    """
    wire = _flow_run_response(run, state, now)
    wire["work_queue_name"] = queue_name if queue_name is not None else run["work_queue_name"]
    wire["work_pool_id"] = pool_id
    wire["work_pool_name"] = pool_name
    return wire
