"""Flow run and flow run state wire models, and the builders that shape rows into them."""

from __future__ import annotations

import datetime as dt
import uuid
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
    FlowRunResponse. The queue and pool names come from the joined queue, as Prefect fills them.
    """
    return {
        "id": run["id"],
        "created": run["created"],
        "updated": run["updated"],
        "name": run["name"],
        "flow_id": run["flow_id"],
        "state_id": run["state_id"],
        "deployment_id": run["deployment_id"],
        "deployment_version": run["deployment_version"],
        "work_queue_id": run["work_queue_id"],
        "work_queue_name": queue_name if queue_name is not None else run["work_queue_name"],
        "flow_version": run["flow_version"],
        "parameters": run["parameters"],
        "idempotency_key": run["idempotency_key"],
        "context": run["context"],
        "empirical_policy": canonical_policy(run["empirical_policy"]),
        "tags": run["tags"],
        "labels": run["labels"] or {},
        "parent_task_run_id": run["parent_task_run_id"],
        "state_type": run["state_type"],
        "state_name": run["state_name"],
        "run_count": run["run_count"],
        "expected_start_time": run["expected_start_time"],
        "next_scheduled_start_time": run["next_scheduled_start_time"],
        "start_time": run["start_time"],
        "end_time": run["end_time"],
        "total_run_time": run["total_run_time"],
        "estimated_run_time": estimated_run_time(run, now),
        "estimated_start_time_delta": estimated_start_time_delta(run, now),
        "auto_scheduled": run["auto_scheduled"],
        "infrastructure_document_id": run["infrastructure_document_id"],
        "infrastructure_pid": run["infrastructure_pid"],
        "created_by": run["created_by"],
        "work_pool_id": pool_id,
        "work_pool_name": pool_name,
        "state": state_to_wire(state) if state is not None else None,
        "job_variables": run["job_variables"],
    }
