"""Deployment wire models, and ``create_flow_run``'s request body."""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deputy.parameters.schema import deployment_parameters_error
from deputy.schemas.core import (
    CreatedBy,
    FlowRunPolicy,
    KeyValueLabels,
    Offset,
    Page,
    StateCreate,
    UpdatedBy,
)
from deputy.schemas.filters import DeploymentSort, RelatedFilters
from deputy.schemas.schedules import (
    DeploymentSchedule,
    DeploymentScheduleCreate,
    DeploymentScheduleUpdate,
)

#: Largest request parameters accepted, as compact JSON (Prefect's ``max_parameter_size``).
MAX_PARAMETER_BYTES = 524_288


def serialized_size(value: Any) -> int:
    """Bytes of ``value`` as compact, ASCII-escaped JSON, the way Prefect measures it.

    orjson measures quickly; only when escaping non-ASCII text could change the verdict is
    the exact standard-library size computed.
    """
    try:
        fast = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return len(json.dumps(value, separators=(",", ":")))
    if fast.isascii() or len(fast) * 6 <= MAX_PARAMETER_BYTES:
        return len(fast)  # exact for ASCII; otherwise small enough that escaping cannot matter
    return len(json.dumps(value, separators=(",", ":")))


def check_parameter_size(value: dict[str, Any]) -> dict[str, Any]:
    """Prefect's ``SizedParameters``: at most 512 KiB as compact JSON."""
    size = serialized_size(value)
    if size > MAX_PARAMETER_BYTES:
        raise ValueError(
            f"Flow run parameters must be less than {MAX_PARAMETER_BYTES:,} bytes when "
            f"serialized (got {size:,} bytes)."
        )
    return value


#: Fields older clients send; Prefect drops them silently instead of refusing the body.
_LEGACY_FIELDS = (
    "worker_pool_queue_id",
    "worker_pool_name",
    "worker_pool_queue_name",
    "work_pool_queue_name",
)
BOTH_LIMITS = "A deployment cannot have both a concurrency limit and a global concurrency limit."


def _common_before(values: Any) -> Any:
    """Prefect's model-level checks shared by create and update, in its order."""
    if not isinstance(values, dict):
        return values  # the model's own type error reports it
    if values.get("concurrency_limit") and values.get("global_concurrency_limit_id"):
        raise ValueError(BOTH_LIMITS)
    return {key: value for key, value in values.items() if key not in _LEGACY_FIELDS}


class ConcurrencyLimitStrategy(enum.StrEnum):
    ENQUEUE = "ENQUEUE"
    CANCEL_NEW = "CANCEL_NEW"


class ConcurrencyOptions(BaseModel):
    collision_strategy: ConcurrencyLimitStrategy
    grace_period_seconds: int | None = Field(default=None, ge=60, le=86400)


class VersionInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    version: str


class _DeploymentFields(BaseModel):
    """Fields shared by create and update; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = None
    description: str | None = None
    paused: bool = False
    concurrency_limit: int | None = Field(default=None, gt=0)
    concurrency_options: ConcurrencyOptions | None = None
    global_concurrency_limit_id: uuid.UUID | None = None
    parameter_openapi_schema: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    work_queue_name: str | None = None
    work_pool_name: str | None = None
    path: str | None = None
    pull_steps: list[dict[str, Any]] | None = None
    entrypoint: str | None = None
    storage_document_id: uuid.UUID | None = None
    infrastructure_document_id: uuid.UUID | None = None
    version_info: VersionInfo | None = None


class DeploymentCreate(_DeploymentFields):
    #: Prefect's banned characters; "" is allowed. (Prefect answers 500 for a banned one.)
    name: str = Field(pattern=r"^[^/%&><]*$")
    flow_id: uuid.UUID
    schedules: list[DeploymentScheduleCreate] = Field(default_factory=list)
    enforce_parameter_schema: bool = True
    parameter_openapi_schema: dict[str, Any] | None = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    labels: KeyValueLabels | None = Field(default_factory=dict)
    job_variables: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _prefect_checks(cls, values: Any) -> Any:
        """Legacy fields dropped, both limits refused, and, only when the body itself turns
        ``enforce_parameter_schema`` on, the default parameters type-checked against the
        schema (``required`` ignored) and the schema checked to be valid JSON Schema."""
        values = _common_before(values)
        if not isinstance(values, dict) or not values.get("enforce_parameter_schema"):
            return values
        parameters = values.get("parameters", {})
        schema = values.get("parameter_openapi_schema")
        if isinstance(parameters, dict) and isinstance(schema, dict):
            message = deployment_parameters_error(parameters, schema)
            if message is not None:
                raise ValueError(message)
        return values

    _parameters_fit = field_validator("parameters")(check_parameter_size)


class DeploymentUpdate(_DeploymentFields):
    schedules: list[DeploymentScheduleUpdate] = Field(default_factory=list)
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None
    enforce_parameter_schema: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _prefect_checks(cls, values: Any) -> Any:
        return _common_before(values)

    @field_validator("parameters")
    @classmethod
    def _parameters_fit(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_parameter_size(value)


class GlobalConcurrencyLimitResponse(BaseModel):
    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    active: bool = True
    name: str
    limit: int
    active_slots: int
    slot_decay_per_second: float = 2.0


class DeploymentResponse(BaseModel):
    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: str
    version: str | None = None
    description: str | None = None
    flow_id: uuid.UUID
    paused: bool = False
    schedules: list[DeploymentSchedule] = Field(default_factory=list)
    concurrency_limit: int | None = None
    global_concurrency_limit: GlobalConcurrencyLimitResponse | None = None
    concurrency_options: ConcurrencyOptions | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    labels: KeyValueLabels = Field(default_factory=dict)
    work_queue_name: str | None = None
    work_queue_id: uuid.UUID | None = None
    last_polled: dt.datetime | None = None
    parameter_openapi_schema: dict[str, Any] | None = None
    path: str | None = None
    pull_steps: list[dict[str, Any]] | None = None
    entrypoint: str | None = None
    storage_document_id: uuid.UUID | None = None
    infrastructure_document_id: uuid.UUID | None = None
    created_by: CreatedBy | None = None
    updated_by: UpdatedBy | None = None
    work_pool_name: str | None = None
    status: str | None = "NOT_READY"
    enforce_parameter_schema: bool = True


class DeploymentFilterBody(RelatedFilters):
    offset: Offset = 0
    limit: int | None = None
    sort: DeploymentSort = DeploymentSort.NAME_ASC


class DeploymentPaginateBody(RelatedFilters):
    page: Page = 1
    limit: int | None = None
    sort: DeploymentSort = DeploymentSort.NAME_ASC


class DeploymentPaginationResponse(BaseModel):
    results: list[DeploymentResponse]
    count: int
    limit: int
    pages: int
    page: int


class DeploymentFlowRunCreate(BaseModel):
    """The body of ``POST /deployments/{id}/create_flow_run``."""

    model_config = ConfigDict(extra="forbid")

    state: StateCreate | None = None
    name: str = Field(default="")
    parameters: dict[str, Any] = Field(default_factory=dict)
    enforce_parameter_schema: bool | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    infrastructure_document_id: uuid.UUID | None = None
    empirical_policy: FlowRunPolicy = Field(default_factory=FlowRunPolicy)
    tags: list[str] = Field(default_factory=list)
    idempotency_key: str | None = None
    labels: KeyValueLabels | None = None
    parent_task_run_id: uuid.UUID | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] | None = Field(default_factory=dict)

    _parameters_fit = field_validator("parameters")(check_parameter_size)

    @field_validator("name", mode="before")
    @classmethod
    def _null_name_means_generated(cls, value: Any) -> Any:
        return "" if value is None else value


def schedule_to_wire(row: Any) -> dict[str, Any]:
    """A ``deployment_schedule`` row (or its insert values) as Prefect answers it."""
    get = row.get if isinstance(row, dict) else row._mapping.get
    return {
        key: get(key)
        for key in (
            "id",
            "created",
            "updated",
            "deployment_id",
            "schedule",
            "active",
            "max_scheduled_runs",
            "parameters",
            "slug",
        )
    }


def deployment_to_wire(row: Any, schedules: Sequence[Any] = ()) -> dict[str, Any]:
    """A deployment row joined with its queue, pool and concurrency limit, as Prefect answers,
    with its schedule rows."""
    limit = None
    if row.gcl_id is not None:
        limit = {
            "id": row.gcl_id,
            "created": row.gcl_created,
            "updated": row.gcl_updated,
            "active": row.gcl_active,
            "name": row.gcl_name,
            "limit": row.gcl_limit,
            "active_slots": row.gcl_active_slots,
            "slot_decay_per_second": row.gcl_slot_decay_per_second,
        }
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "name": row.name,
        "version": row.version,
        "description": row.description,
        "flow_id": row.flow_id,
        "paused": row.paused,
        "schedules": [schedule_to_wire(schedule) for schedule in schedules],
        "concurrency_limit": None,
        "global_concurrency_limit": limit,
        "concurrency_options": row.concurrency_options,
        "job_variables": row.job_variables,
        "parameters": row.parameters,
        "tags": row.tags,
        "labels": row.labels or {},
        "work_queue_name": row.queue_name if row.queue_name is not None else row.work_queue_name,
        "work_queue_id": row.work_queue_id,
        "last_polled": row.last_polled,
        "parameter_openapi_schema": row.parameter_openapi_schema,
        "path": row.path,
        "pull_steps": row.pull_steps,
        "entrypoint": row.entrypoint,
        "storage_document_id": row.storage_document_id,
        "infrastructure_document_id": row.infrastructure_document_id,
        "created_by": row.created_by,
        "updated_by": row.updated_by,
        "work_pool_name": row.pool_name,
        "status": row.status,
        "enforce_parameter_schema": row.enforce_parameter_schema,
    }
