"""Work pool and work queue wire models, and the dict builders the routes answer with.

Bodies are field for field Prefect 3.9.1's ``WorkPoolCreate`` / ``WorkPoolUpdate`` /
``WorkQueueCreate`` / ``WorkQueueUpdate`` (unknown keys refused). The response models exist
for the OpenAPI document only: routes return plain dicts from the ``*_to_wire`` builders.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from deputy.schemas.core import DateTime, Offset, Page, StateType
from deputy.schemas.filters import FilterBody, WorkPoolFilter, WorkQueueFilter
from deputy.schemas.flows import Name

#: The pool type of legacy agent pools; Prefect reports no status for them.
AGENT_POOL_TYPE = "prefect-agent"

NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveInt = Annotated[int, Field(gt=0)]


def _non_emptyish(value: Any) -> Any:
    """Prefect refuses pool names that are empty once quotes and spaces are stripped."""
    if isinstance(value, str) and not value.strip("' \""):
        raise ValueError("name cannot be an empty string")
    return value


#: A pool name: Prefect's banned-character pattern plus its "not empty-ish" check, which
#: runs first (so ``""`` fails with the value error, not the pattern).
PoolName = Annotated[str, Field(pattern=r"^[^/%&><]+$"), BeforeValidator(_non_emptyish)]


class WorkPoolStatus(enum.StrEnum):
    READY = "READY"
    NOT_READY = "NOT_READY"
    PAUSED = "PAUSED"


class WorkQueueStatus(enum.StrEnum):
    READY = "READY"
    NOT_READY = "NOT_READY"
    PAUSED = "PAUSED"


class WorkPoolStorageConfiguration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bundle_upload_step: dict[str, Any] | None = None
    bundle_execution_step: dict[str, Any] | None = None
    default_result_storage_block_id: uuid.UUID | None = None


class QueueFilter(BaseModel):
    """Deprecated queue filter, stored and echoed; unknown keys dropped as Prefect does."""

    tags: list[str] | None = None
    deployment_ids: list[uuid.UUID] | None = None


# --- base job template ------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"{{\s*([\w.\-\[\]$]+)\s*}}")


def check_base_job_template(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Prefect's structural check: ``{}`` or both keys, every ``{{ var }}`` declared.

    Placeholders are searched in each value's ``json.dumps`` text, as Prefect does (so
    non-ASCII names, escaped by ``json.dumps``, are never seen as placeholders). Where
    Prefect crashes (a non-object ``job_configuration`` or ``properties``), we refuse.
    """
    if value is None or value == {}:
        return value
    job_configuration = value.get("job_configuration")
    variables = value.get("variables")
    if not (job_configuration and variables):
        raise ValueError(
            "The `base_job_template` must contain both a `job_configuration` key"
            " and a `variables` key."
        )
    if not isinstance(job_configuration, dict) or not isinstance(variables, dict):
        raise ValueError(
            "The `job_configuration` and `variables` of a `base_job_template` must be objects."
        )
    used: set[str] = set()
    for template in job_configuration.values():
        used.update(_PLACEHOLDER.findall(json.dumps(template)))
    properties = variables.get("properties", {})
    if not isinstance(properties, dict):
        raise ValueError("The `variables` schema's `properties` must be an object.")
    missing = used - set(properties)
    if missing:
        # Prefect joins a set (arbitrary order) with " ,"; we keep the separator, sorted.
        raise ValueError(
            "The variables specified in the job configuration template must be present as "
            "properties in the variables schema. Your job configuration uses the following "
            f"undeclared variable(s): {' ,'.join(sorted(missing))}."
        )
    return value


# --- request bodies ---------------------------------------------------------------------


class WorkPoolCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PoolName = Field(description="The name of the work pool.")
    description: str | None = None
    type: str = AGENT_POOL_TYPE
    base_job_template: dict[str, Any] = Field(default_factory=dict)
    is_paused: bool = False
    concurrency_limit: NonNegativeInt | None = None
    storage_configuration: WorkPoolStorageConfiguration = Field(
        default_factory=WorkPoolStorageConfiguration
    )

    @field_validator("base_job_template")
    @classmethod
    def _check_template(cls, value: dict[str, Any]) -> dict[str, Any]:
        checked = check_base_job_template(value)
        assert checked is not None
        return checked


class WorkPoolUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    is_paused: bool | None = None
    base_job_template: dict[str, Any] | None = None
    concurrency_limit: NonNegativeInt | None = None
    storage_configuration: WorkPoolStorageConfiguration | None = None

    @field_validator("base_job_template")
    @classmethod
    def _check_template(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_base_job_template(value)


class WorkQueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: str | None = ""
    is_paused: bool = False
    concurrency_limit: NonNegativeInt | None = None
    priority: PositiveInt | None = None
    filter: QueueFilter | None = None

    @field_validator("description")
    @classmethod
    def _null_description_is_empty(cls, value: str | None) -> str:
        """The Prefect client sends ``null`` for a queue without a description (``prefect
        work-queue create --pool``); Prefect stores ``""`` then, as for a missing key."""
        return "" if value is None else value


class WorkQueueUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Prefect checks no pattern on rename (a queue can be renamed to "a/b").
    name: str | None = None
    description: str | None = None
    is_paused: bool = False
    concurrency_limit: NonNegativeInt | None = None
    priority: PositiveInt | None = None
    last_polled: DateTime | None = None
    filter: QueueFilter | None = None


class WorkPoolFilterBody(FilterBody):
    """``POST /work_pools/filter``; unknown top-level keys are ignored, as Prefect does."""

    work_pools: WorkPoolFilter | None = None
    offset: Offset = 0
    limit: int | None = None


class WorkPoolCountBody(FilterBody):
    work_pools: WorkPoolFilter | None = None


class WorkQueueFilterBody(FilterBody):
    work_queues: WorkQueueFilter | None = None
    offset: Offset = 0
    limit: int | None = None


# --- responses (OpenAPI only) -------------------------------------------------------------


class WorkPoolResponse(BaseModel):
    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: str
    description: str | None = None
    type: str
    base_job_template: dict[str, Any] = Field(default_factory=dict)
    is_paused: bool = False
    concurrency_limit: int | None = None
    status: WorkPoolStatus | None = None
    default_queue_id: uuid.UUID | None = None
    storage_configuration: WorkPoolStorageConfiguration = Field(
        default_factory=WorkPoolStorageConfiguration
    )
    active_slots: int | None = None


class WorkQueueResponse(BaseModel):
    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: str
    description: str | None = ""
    is_paused: bool = False
    concurrency_limit: int | None = None
    priority: int = 1
    work_pool_id: uuid.UUID | None = None
    filter: QueueFilter | None = None
    last_polled: dt.datetime | None = None
    work_pool_name: str | None = None
    status: WorkQueueStatus | None = None
    active_slots: int | None = None


# --- wire builders ----------------------------------------------------------------------

_EMPTY_STORAGE: dict[str, Any] = {
    "bundle_upload_step": None,
    "bundle_execution_step": None,
    "default_result_storage_block_id": None,
}


def work_pool_to_wire(
    row: Any, active_slots: int | None = None, *, legacy_client: bool = False
) -> dict[str, Any]:
    """A ``WorkPoolResponse`` dict.

    ``active_slots`` is reported only when the pool has a limit (0 unless counted).
    Agent pools report ``status: null``. Clients up to 3.3.7 refuse the
    ``default_result_storage_block_id`` key, so ``legacy_client`` drops it, as Prefect does.
    """
    storage = {**_EMPTY_STORAGE, **(row.storage_configuration or {})}
    if legacy_client:
        storage.pop("default_result_storage_block_id", None)
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "name": row.name,
        "description": row.description,
        "type": row.type,
        "base_job_template": row.base_job_template,
        "is_paused": row.is_paused,
        "concurrency_limit": row.concurrency_limit,
        "status": None if row.type == AGENT_POOL_TYPE else row.status,
        "default_queue_id": row.default_queue_id,
        "storage_configuration": storage,
        "active_slots": None if row.concurrency_limit is None else (active_slots or 0),
    }


def work_queue_to_wire(
    row: Any, pool_name: str | None, active_slots: int | None = None
) -> dict[str, Any]:
    """A ``WorkQueueResponse`` dict; ``active_slots`` as for pools."""
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "name": row.name,
        "description": row.description,
        "is_paused": row.is_paused,
        "concurrency_limit": row.concurrency_limit,
        "priority": row.priority,
        "work_pool_id": row.work_pool_id,
        "filter": row.filter,
        "last_polled": row.last_polled,
        "work_pool_name": pool_name,
        "status": row.status,
        "active_slots": None if row.concurrency_limit is None else (active_slots or 0),
    }


class WorkQueueHealthPolicy(BaseModel):
    maximum_late_runs: int | None = 0
    maximum_seconds_since_last_polled: int | None = 60


class WorkQueueStatusDetail(BaseModel):
    """``GET /work_queues/{id}/status`` (documentation only)."""

    healthy: bool
    late_runs_count: int = 0
    last_polled: dt.datetime | None = None
    health_check_policy: WorkQueueHealthPolicy


#: Prefect judges every queue by this policy (it cannot be set).
QUEUE_HEALTH_POLICY = WorkQueueHealthPolicy()


def work_queue_status_to_wire(
    late_runs_count: int, last_polled: dt.datetime | None, now: dt.datetime
) -> dict[str, Any]:
    """Healthy: no more late runs than the policy allows, and polled recently enough."""
    policy = QUEUE_HEALTH_POLICY
    healthy = (
        policy.maximum_late_runs is None or late_runs_count <= policy.maximum_late_runs
    ) and (
        policy.maximum_seconds_since_last_polled is None
        or (
            last_polled is not None
            and (now - last_polled).total_seconds() <= policy.maximum_seconds_since_last_polled
        )
    )
    return {
        "healthy": healthy,
        "late_runs_count": late_runs_count,
        "last_polled": last_polled,
        "health_check_policy": policy.model_dump(),
    }


# --- who holds the slots (``POST .../concurrency_status``) ---------------------------------


class WorkPoolConcurrencyStatusBody(FilterBody):
    page: Page = 1
    limit: int | None = None
    flow_run_limit: int = Field(default=10, ge=0, le=200, description="Max flow runs per queue")


class WorkQueueConcurrencyStatusBody(FilterBody):
    page: Page = 1
    limit: int | None = None


class FlowRunSlotSummary(BaseModel):
    id: uuid.UUID
    name: str
    state_type: StateType | None = None
    state_name: str | None = None
    start_time: dt.datetime | None = None
    state_timestamp: dt.datetime | None = None
    time_in_current_state: float | None = Field(default=None, description="Seconds.")


class WorkQueueConcurrencyStatusDetail(BaseModel):
    queue_id: uuid.UUID
    queue_name: str
    active_slots: int
    concurrency_limit: int | None = None
    flow_runs: list[FlowRunSlotSummary] = Field(default_factory=list)
    flow_run_count: int | None = None


class _SlotsPage(BaseModel):
    active_slots: int
    concurrency_limit: int | None = None
    count: int
    limit: int
    pages: int
    page: int


class WorkPoolConcurrencyStatus(_SlotsPage):
    """A page of the pool's queues: ``count`` and ``pages`` count queues."""

    queues: list[WorkQueueConcurrencyStatusDetail] = Field(default_factory=list)


class WorkQueueConcurrencyStatus(_SlotsPage):
    """A page of the queue's slot holders: ``count`` and ``pages`` count runs."""

    flow_runs: list[FlowRunSlotSummary] = Field(default_factory=list)


def flow_run_slot_summary(run: Any, now: dt.datetime) -> dict[str, Any]:
    """A slot-holding run, with how long it has been in its state (seconds)."""
    since = run.state_timestamp
    return {
        "id": run.id,
        "name": run.name,
        "state_type": run.state_type,
        "state_name": run.state_name,
        "start_time": run.start_time,
        "state_timestamp": since,
        "time_in_current_state": None if since is None else (now - since).total_seconds(),
    }
