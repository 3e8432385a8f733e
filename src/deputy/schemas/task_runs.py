"""Task run and task run state wire models, and the builders that shape rows into them."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deputy.schemas.core import (
    DateTime,
    KeyValueLabels,
    Offset,
    Page,
    State,
    StateCreate,
    StateType,
)
from deputy.schemas.filters import TaskRunRelatedFilters, TaskRunSort
from deputy.schemas.flow_runs import estimated_run_time, estimated_start_time_delta, state_to_wire

#: Longest cache key a task run may carry (Prefect's ``server.tasks.max_cache_key_length``).
MAX_CACHE_KEY_LENGTH = 2000
#: Most retry delays a task may list.
MAX_RETRY_DELAYS = 50


def check_cache_key(cache_key: str | None) -> str | None:
    if cache_key and len(cache_key) > MAX_CACHE_KEY_LENGTH:
        raise ValueError(
            f"Cache key exceeded maximum allowed length of {MAX_CACHE_KEY_LENGTH} characters."
        )
    return cache_key


class TaskRunPolicy(BaseModel):
    """How a task run retries; unknown keys are dropped, as Prefect does."""

    max_retries: int = 0
    retry_delay_seconds: float = 0
    retries: int | None = None
    retry_delay: int | float | list[int] | list[float] | None = None
    retry_jitter_factor: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _legacy_retry_fields(cls, values: Any) -> Any:
        """Old clients send ``max_retries`` / ``retry_delay_seconds``; copy them forward."""
        if isinstance(values, dict):
            if not values.get("retries") and values.get("max_retries", 0) != 0:
                values = {**values, "retries": values["max_retries"]}
            if not values.get("retry_delay") and values.get("retry_delay_seconds", 0) != 0:
                values = {**values, "retry_delay": values["retry_delay_seconds"]}
        return values

    @field_validator("retry_delay")
    @classmethod
    def _at_most_fifty_delays(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_RETRY_DELAYS:
            raise ValueError("Can not configure more than 50 retry delays per task.")
        return value

    @field_validator("retry_jitter_factor")
    @classmethod
    def _jitter_not_negative(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("`retry_jitter_factor` must be >= 0.")
        return value


class TaskRunResult(BaseModel):
    """An upstream task run's result used as an input."""

    model_config = ConfigDict(frozen=True)

    input_type: Literal["task_run"] = "task_run"
    id: uuid.UUID


class FlowRunResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    input_type: Literal["flow_run"] = "flow_run"
    id: uuid.UUID


class Parameter(BaseModel):
    """A flow parameter used as an input."""

    model_config = ConfigDict(frozen=True)

    input_type: Literal["parameter"] = "parameter"
    name: str


class Constant(BaseModel):
    """A constant value used as an input."""

    model_config = ConfigDict(frozen=True)

    input_type: Literal["constant"] = "constant"
    type: str


TaskInputs = dict[str, list[TaskRunResult | FlowRunResult | Parameter | Constant]]


def _generated_when_empty(value: Any) -> Any:
    """``null`` and ``""`` ask the server to make a name up ("" stands for it here)."""
    return "" if value is None else value


class TaskRunCreate(BaseModel):
    """The body of ``POST /task_runs/``."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID | None = None
    state: StateCreate | None = None
    name: str = Field(default="", examples=["my-task-run"])
    flow_run_id: uuid.UUID | None = None
    task_key: str
    dynamic_key: str
    cache_key: str | None = None
    cache_expiration: DateTime | None = None
    task_version: str | None = None
    empirical_policy: TaskRunPolicy = Field(default_factory=TaskRunPolicy)
    tags: list[str] = Field(default_factory=list)
    labels: KeyValueLabels | None = Field(default_factory=dict)
    task_inputs: TaskInputs = Field(default_factory=dict)

    _name = field_validator("name", mode="before")(_generated_when_empty)
    _cache_key = field_validator("cache_key")(check_cache_key)


class TaskRunUpdate(BaseModel):
    """The body of ``PATCH /task_runs/{id}``: a new name (``null`` or ``""``: a generated one)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", examples=["my-task-run"])

    _name = field_validator("name", mode="before")(_generated_when_empty)


class TaskRun(BaseModel):
    """A task run as answered by the read, filter and create endpoints."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: str
    flow_run_id: uuid.UUID | None = None
    task_key: str
    dynamic_key: str
    cache_key: str | None = None
    cache_expiration: dt.datetime | None = None
    task_version: str | None = None
    empirical_policy: TaskRunPolicy = Field(default_factory=TaskRunPolicy)
    tags: list[str] = Field(default_factory=list)
    labels: KeyValueLabels | None = Field(default_factory=dict)
    state_id: uuid.UUID | None = None
    task_inputs: TaskInputs = Field(default_factory=dict)
    state_type: StateType | None = None
    state_name: str | None = None
    run_count: int = 0
    flow_run_run_count: int = 0
    expected_start_time: dt.datetime | None = None
    next_scheduled_start_time: dt.datetime | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    total_run_time: float = 0.0
    estimated_run_time: float = 0.0
    estimated_start_time_delta: float = 0.0
    state: State | None = None


class TaskRunResponse(BaseModel):
    """The shorter task run that ``POST /task_runs/paginate`` answers, as Prefect does."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: str
    flow_run_id: uuid.UUID | None = None
    task_key: str
    state_id: uuid.UUID | None = None
    state: State | None = None
    task_version: str | None = None
    task_inputs: TaskInputs = Field(default_factory=dict)
    empirical_policy: TaskRunPolicy = Field(default_factory=TaskRunPolicy)
    tags: list[str] = Field(default_factory=list)
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    total_run_time: float = 0.0
    estimated_run_time: float = 0.0
    estimated_start_time_delta: float = 0.0


class TaskRunPaginationResponse(BaseModel):
    results: list[TaskRunResponse]
    count: int
    limit: int
    pages: int
    page: int


class TaskRunFilterBody(TaskRunRelatedFilters):
    sort: TaskRunSort = TaskRunSort.ID_DESC
    offset: Offset = 0
    limit: int | None = None


class TaskRunPaginateBody(TaskRunRelatedFilters):
    sort: TaskRunSort = TaskRunSort.ID_DESC
    page: Page = 1
    limit: int | None = None


class TaskRunCountBody(TaskRunRelatedFilters):
    pass


def task_run_to_wire(run: Any, state: Any, now: dt.datetime) -> dict[str, Any]:
    """A task run (row mapping or dict) and its current state as Prefect's TaskRun."""
    return {
        "id": run["id"],
        "created": run["created"],
        "updated": run["updated"],
        "name": run["name"],
        "flow_run_id": run["flow_run_id"],
        "task_key": run["task_key"],
        "dynamic_key": run["dynamic_key"],
        "cache_key": run["cache_key"],
        "cache_expiration": run["cache_expiration"],
        "task_version": run["task_version"],
        "empirical_policy": run["empirical_policy"],
        "tags": run["tags"],
        "labels": run["labels"],
        "state_id": run["state_id"],
        "task_inputs": run["task_inputs"],
        "state_type": run["state_type"],
        "state_name": run["state_name"],
        "run_count": run["run_count"],
        "flow_run_run_count": run["flow_run_run_count"],
        "expected_start_time": run["expected_start_time"],
        "next_scheduled_start_time": run["next_scheduled_start_time"],
        "start_time": run["start_time"],
        "end_time": run["end_time"],
        "total_run_time": run["total_run_time"],
        "estimated_run_time": estimated_run_time(run, now),
        "estimated_start_time_delta": estimated_start_time_delta(run, now),
        "state": state_to_wire(state) if state is not None else None,
    }


#: The fields of a full task run that ``TaskRunResponse`` keeps.
RESPONSE_FIELDS = tuple(TaskRunResponse.model_fields)


def task_run_response_to_wire(full: dict[str, Any]) -> dict[str, Any]:
    """A ``task_run_to_wire`` answer cut down to ``TaskRunResponse`` (paginate's items)."""
    return {name: full[name] for name in RESPONSE_FIELDS}
