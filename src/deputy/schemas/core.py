"""Wire models shared by many endpoints: states, run policies, provenance, pagination."""

from __future__ import annotations

import datetime as dt
import enum
import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

UTC = dt.UTC


def _as_utc(value: Any) -> Any:
    """Naive datetimes on the wire are UTC, as Prefect reads them."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


DateTime = Annotated[dt.datetime, AfterValidator(_as_utc)]

#: The largest OFFSET the databases take (a signed 64-bit integer). Beyond it a page could
#: only be empty; Prefect fails there with a 500, deputy refuses with a 422.
MAX_OFFSET = 2**63 - 1
#: The largest page number whose first row, at the largest page size (200), is within it.
MAX_PAGE = MAX_OFFSET // 200 + 1
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]
Page = Annotated[int, Field(ge=1, le=MAX_PAGE)]
LabelValue = bool | int | float | str

# ``$`` (not ``\Z``) on purpose, as Prefect's rule: one trailing newline gets through.
_LOWERCASE_DASHED = re.compile(r"^[a-z0-9-]*$")


def lowercase_dashed(field_name: str) -> AfterValidator:
    """Prefect's rule for artifact and flow-run input keys, with its message."""

    def check(value: str) -> str:
        if _LOWERCASE_DASHED.match(value) is None:
            raise ValueError(
                f"{field_name} must only contain lowercase letters, numbers, and dashes."
            )
        return value

    return AfterValidator(check)


KeyValueLabels = dict[str, LabelValue]


class StateType(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"


TERMINAL_STATE_TYPES = frozenset(
    {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
)


class StateDetails(BaseModel):
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None
    child_flow_run_id: uuid.UUID | None = None
    scheduled_time: DateTime | None = None
    cache_key: str | None = None
    cache_expiration: DateTime | None = None
    deferred: bool | None = False
    untrackable_result: bool = False
    pause_timeout: DateTime | None = None
    pause_reschedule: bool = False
    pause_key: str | None = None
    run_input_keyset: dict[str, str] | None = None
    refresh_cache: bool | None = None
    retriable: bool | None = None
    transition_id: uuid.UUID | None = None
    task_parameters_id: uuid.UUID | None = None
    traceparent: str | None = None
    deployment_concurrency_lease_id: uuid.UUID | None = None


#: Every state-details field at its default, as Prefect answers them.
EMPTY_STATE_DETAILS: dict[str, Any] = StateDetails().model_dump(mode="json")


def canonical_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """State details in Prefect's field order (PostgreSQL's JSONB does not keep key order)."""
    return {**EMPTY_STATE_DETAILS, **details} if details else dict(EMPTY_STATE_DETAILS)


class StateCreate(BaseModel):
    """A proposed state; unknown keys are refused as Prefect does."""

    model_config = ConfigDict(extra="forbid")

    type: StateType
    name: str | None = None
    message: str | None = Field(default=None, examples=["Run started"])
    data: Any | None = None
    state_details: StateDetails = Field(default_factory=StateDetails)


class State(BaseModel):
    id: uuid.UUID
    type: StateType
    name: str | None = None
    timestamp: dt.datetime
    message: str | None = None
    data: Any | None = None
    state_details: StateDetails = Field(default_factory=StateDetails)


class FlowRunPolicy(BaseModel):
    """Retry and pause settings of a flow run; unknown keys are dropped, as Prefect does."""

    max_retries: int = 0
    retry_delay_seconds: float = 0
    retries: int | None = None
    retry_delay: int | None = None
    pause_keys: set[str] | None = Field(default_factory=set)
    resuming: bool | None = False
    retry_type: Literal["in_process", "reschedule"] | None = None

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


class CreatedBy(BaseModel):
    id: uuid.UUID | None = None
    type: str | None = None
    display_value: str | None = None


class UpdatedBy(CreatedBy):
    pass


def canonical_policy(policy: dict[str, Any] | None) -> dict[str, Any]:
    """A stored flow-run policy in Prefect's field order."""
    return {**DEFAULT_POLICY, **policy} if policy else dict(DEFAULT_POLICY)


def dump_policy(policy: FlowRunPolicy) -> dict[str, Any]:
    """The policy as stored and answered: ``pause_keys`` as a list."""
    data = policy.model_dump(mode="json")
    if data.get("pause_keys") is not None:
        data["pause_keys"] = sorted(data["pause_keys"])
    return data


#: The policy of a run created without one, as Prefect answers it.
DEFAULT_POLICY: dict[str, Any] = dump_policy(FlowRunPolicy())
