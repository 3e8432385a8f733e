"""The filter objects clients send to ``*/filter``, ``*/count`` and ``*/paginate``.

Field for field with Prefect 3.9.1; unknown keys are refused (422), as Prefect does. The SQL
they become is built in ``deputy.db.filters`` (``objects.py``, ``related.py``).
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deputy.schemas.core import DateTime, StateType


class Operator(enum.StrEnum):
    and_ = "and_"
    or_ = "or_"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Combined(_Strict):
    operator: Operator = Operator.and_


class IdAny(_Strict):
    any_: list[uuid.UUID] | None = None
    not_any_: list[uuid.UUID] | None = None


class IdOnlyAny(_Strict):
    any_: list[uuid.UUID] | None = None


class NameAnyLike(_Strict):
    any_: list[str] | None = None
    like_: str | None = None


class NameAny(_Strict):
    any_: list[str] | None = None


class TagsAllNull(_Combined):
    all_: list[str] | None = None
    is_null_: bool | None = None


class TagsAllAnyNull(TagsAllNull):
    any_: list[str] | None = None


class TimeWindow(_Strict):
    before_: DateTime | None = None
    after_: DateTime | None = None


class TimeWindowNullable(TimeWindow):
    is_null_: bool | None = None


# --- flows -------------------------------------------------------------------------------


class FlowFilterDeployment(_Combined):
    is_null_: bool | None = None


class FlowFilter(_Combined):
    id: IdAny | None = None
    deployment: FlowFilterDeployment | None = None
    name: NameAnyLike | None = None
    tags: TagsAllNull | None = None


# --- flow runs ---------------------------------------------------------------------------


class FlowRunFilterDeploymentId(_Combined):
    any_: list[uuid.UUID] | None = None
    is_null_: bool | None = None


class FlowRunFilterWorkQueueName(_Combined):
    any_: list[str] | None = None
    is_null_: bool | None = None


class FlowRunFilterStateType(_Strict):
    any_: list[StateType] | None = None
    not_any_: list[StateType] | None = None


class FlowRunFilterStateName(_Strict):
    any_: list[str] | None = None
    not_any_: list[str] | None = None


class FlowRunFilterState(_Combined):
    type: FlowRunFilterStateType | None = None
    name: FlowRunFilterStateName | None = None


class FlowRunFilterParentFlowRunId(_Combined):
    any_: list[uuid.UUID] | None = None


class FlowRunFilterParentTaskRunId(_Combined):
    any_: list[uuid.UUID] | None = None
    is_null_: bool | None = None


class FlowRunFilterIdempotencyKey(_Strict):
    any_: list[str] | None = None
    not_any_: list[str] | None = None


class FlowRunFilterCreatedBy(_Combined):
    id_: list[uuid.UUID] | None = None
    type_: list[str] | None = None
    is_null_: bool | None = None


class FlowRunFilter(_Combined):
    id: IdAny | None = None
    name: NameAnyLike | None = None
    tags: TagsAllAnyNull | None = None
    deployment_id: FlowRunFilterDeploymentId | None = None
    work_queue_name: FlowRunFilterWorkQueueName | None = None
    state: FlowRunFilterState | None = None
    flow_version: NameAny | None = None
    start_time: TimeWindowNullable | None = None
    end_time: TimeWindowNullable | None = None
    expected_start_time: TimeWindow | None = None
    next_scheduled_start_time: TimeWindow | None = None
    parent_flow_run_id: FlowRunFilterParentFlowRunId | None = None
    parent_task_run_id: FlowRunFilterParentTaskRunId | None = None
    idempotency_key: FlowRunFilterIdempotencyKey | None = None
    created_by: FlowRunFilterCreatedBy | None = None


# --- deployments -------------------------------------------------------------------------


class DeploymentOrFlowNameFilter(_Strict):
    like_: str | None = None


class DeploymentFilterPaused(_Strict):
    eq_: bool | None = None


class DeploymentFilterConcurrencyLimit(_Strict):
    ge_: int | None = None
    le_: int | None = None
    is_null_: bool | None = None


class DeploymentFilter(_Combined):
    id: IdAny | None = None
    name: NameAnyLike | None = None
    flow_or_deployment_name: DeploymentOrFlowNameFilter | None = None
    paused: DeploymentFilterPaused | None = None
    tags: TagsAllAnyNull | None = None
    work_queue_name: NameAny | None = None
    #: Accepted and ignored, as Prefect 3.9.1 does (deprecated there).
    concurrency_limit: DeploymentFilterConcurrencyLimit | None = None


# --- work pools, queues, variables -------------------------------------------------------


class WorkPoolFilter(_Combined):
    id: IdOnlyAny | None = None
    name: NameAny | None = None
    type: NameAny | None = None


class WorkQueueFilterName(_Strict):
    any_: list[str] | None = None
    startswith_: list[str] | None = None


class WorkQueueFilter(_Combined):
    id: IdOnlyAny | None = None
    name: WorkQueueFilterName | None = None


class VariableFilterTags(_Combined):
    all_: list[str] | None = None
    is_null_: bool | None = None


class VariableFilter(_Combined):
    id: IdOnlyAny | None = None
    name: NameAnyLike | None = None
    tags: VariableFilterTags | None = None


# --- artifacts ---------------------------------------------------------------------------


class ArtifactFilterKey(_Strict):
    any_: list[str] | None = None
    like_: str | None = None
    exists_: bool | None = None


class ArtifactFilterType(_Strict):
    any_: list[str] | None = None
    not_any_: list[str] | None = None


class ArtifactFilter(_Combined):
    id: IdOnlyAny | None = None
    key: ArtifactFilterKey | None = None
    flow_run_id: IdOnlyAny | None = None
    task_run_id: IdOnlyAny | None = None
    type: ArtifactFilterType | None = None


class ArtifactCollectionFilter(_Combined):
    latest_id: IdOnlyAny | None = None
    key: ArtifactFilterKey | None = None
    flow_run_id: IdOnlyAny | None = None
    task_run_id: IdOnlyAny | None = None
    type: ArtifactFilterType | None = None


# --- sorts -------------------------------------------------------------------------------


class FlowSort(enum.StrEnum):
    CREATED_DESC = "CREATED_DESC"
    UPDATED_DESC = "UPDATED_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class DeploymentSort(enum.StrEnum):
    CREATED_DESC = "CREATED_DESC"
    UPDATED_DESC = "UPDATED_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class VariableSort(enum.StrEnum):
    CREATED_DESC = "CREATED_DESC"
    UPDATED_DESC = "UPDATED_DESC"
    NAME_DESC = "NAME_DESC"
    NAME_ASC = "NAME_ASC"


class ArtifactSort(enum.StrEnum):
    """Also the sorts of the latest artifacts (Prefect's ``ArtifactCollectionSort``)."""

    CREATED_DESC = "CREATED_DESC"
    UPDATED_DESC = "UPDATED_DESC"
    ID_DESC = "ID_DESC"
    KEY_DESC = "KEY_DESC"
    KEY_ASC = "KEY_ASC"


class FlowRunSort(enum.StrEnum):
    ID_DESC = "ID_DESC"
    START_TIME_ASC = "START_TIME_ASC"
    START_TIME_DESC = "START_TIME_DESC"
    EXPECTED_START_TIME_ASC = "EXPECTED_START_TIME_ASC"
    EXPECTED_START_TIME_DESC = "EXPECTED_START_TIME_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    NEXT_SCHEDULED_START_TIME_ASC = "NEXT_SCHEDULED_START_TIME_ASC"
    END_TIME_DESC = "END_TIME_DESC"


# --- task runs ---------------------------------------------------------------------------


class TaskRunFilterFlowRunId(_Combined):
    """``is_null_`` defaults to False, as in Prefect: ``{}`` means "has a flow run"."""

    any_: list[uuid.UUID] | None = None
    is_null_: bool | None = False


class TaskRunFilterStateType(_Strict):
    any_: list[StateType] | None = None


class TaskRunFilterState(_Combined):
    type: TaskRunFilterStateType | None = None
    name: NameAny | None = None


class TaskRunFilterSubFlowRuns(_Strict):
    exists_: bool | None = None


class TaskRunFilter(_Combined):
    id: IdOnlyAny | None = None
    name: NameAnyLike | None = None
    tags: TagsAllNull | None = None
    state: TaskRunFilterState | None = None
    start_time: TimeWindowNullable | None = None
    end_time: TimeWindowNullable | None = None
    expected_start_time: TimeWindow | None = None
    subflow_runs: TaskRunFilterSubFlowRuns | None = None
    flow_run_id: TaskRunFilterFlowRunId | None = None


class TaskRunSort(enum.StrEnum):
    ID_DESC = "ID_DESC"
    EXPECTED_START_TIME_ASC = "EXPECTED_START_TIME_ASC"
    EXPECTED_START_TIME_DESC = "EXPECTED_START_TIME_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"
    NEXT_SCHEDULED_START_TIME_ASC = "NEXT_SCHEDULED_START_TIME_ASC"
    END_TIME_DESC = "END_TIME_DESC"
    DURATION_DESC = "DURATION_DESC"
    DURATION_ASC = "DURATION_ASC"


class FilterBody(BaseModel):
    """A body whose top-level keys Prefect declares as separate body parameters: the
    ``*/filter``, ``*/count`` and ``*/paginate`` bodies, and a few others.

    So ``null`` means "use the default" (the Prefect client sends ``"sort": null``), unknown
    keys are ignored, and a missing required key is reported with ``"input": null``
    (``deputy.api.validation``).
    """

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return {key: value for key, value in values.items() if value is not None}
        return values


class FlowRelatedFilters(FilterBody):
    """The cross-object filters the flow endpoints accept."""

    flows: FlowFilter | None = None
    flow_runs: FlowRunFilter | None = None
    task_runs: TaskRunFilter | None = None
    deployments: DeploymentFilter | None = None
    work_pools: WorkPoolFilter | None = None


class RelatedFilters(FlowRelatedFilters):
    """The cross-object filters the run and deployment endpoints accept."""

    work_pool_queues: WorkQueueFilter | None = None


class TaskRunRelatedFilters(FilterBody):
    """The cross-object filters the task-run endpoints accept."""

    flows: FlowFilter | None = None
    flow_runs: FlowRunFilter | None = None
    task_runs: TaskRunFilter | None = None
    deployments: DeploymentFilter | None = None


LimitField = Field(default=None, description="Defaults to the server's page size (200).")
