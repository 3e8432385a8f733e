"""Workers and polling: request bodies, response models and the wire builders.

Bodies follow Prefect 3.9.1's ``Body_*`` objects, which FastAPI assembles from separate body
parameters: unknown top-level keys are ignored and an explicit ``null`` means "not sent"
(:class:`FilterBody`). The nested ``WorkerFilter`` objects refuse unknown keys, as Prefect's.
The response models exist for the OpenAPI document; routes answer the ``*_to_wire`` dicts.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deputy.schemas.core import DateTime, Offset
from deputy.schemas.filters import FilterBody, Operator
from deputy.schemas.flow_runs import FlowRun


class WorkerStatus(enum.StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"


class DeploymentStatus(enum.StrEnum):
    READY = "READY"
    NOT_READY = "NOT_READY"


# --- filters ------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkerFilterLastHeartbeatTime(_Strict):
    before_: DateTime | None = None
    after_: DateTime | None = None


class WorkerFilterStatus(_Strict):
    any_: list[WorkerStatus] | None = None
    not_any_: list[WorkerStatus] | None = None


class WorkerFilter(_Strict):
    operator: Operator = Operator.and_
    last_heartbeat_time: WorkerFilterLastHeartbeatTime | None = None
    status: WorkerFilterStatus | None = None


# --- request bodies -----------------------------------------------------------------------


class WorkerFilterBody(FilterBody):
    """``POST /work_pools/{pool}/workers/filter``."""

    workers: WorkerFilter | None = None
    offset: Offset = 0
    limit: int | None = None


class WorkerHeartbeatBody(FilterBody):
    """``POST /work_pools/{pool}/workers/heartbeat``; Cloud-only keys (``return_id``,
    ``metadata``) are ignored, as Prefect's open-source server does."""

    name: str = Field(description="The worker process name")
    heartbeat_interval_seconds: int | None = Field(
        default=None, description="The worker's heartbeat interval in seconds"
    )


class WorkerScheduledRunsBody(FilterBody):
    """``POST /work_pools/{name}/get_scheduled_flow_runs``; no key means every queue of the
    pool, no time bound and the default page."""

    work_queue_names: list[str] | None = None
    scheduled_before: DateTime | None = None
    scheduled_after: DateTime | None = None
    limit: int | None = None


class WorkQueueRunsBody(FilterBody):
    """``POST /work_queues/{id}/get_runs``: no key means no time bound and the default page."""

    scheduled_before: DateTime | None = None
    limit: int | None = None


class DeploymentScheduledRunsBody(FilterBody):
    """``POST /deployments/get_scheduled_flow_runs`` (served deployments, the Runner)."""

    deployment_ids: list[uuid.UUID] = Field(
        description="The deployment IDs to get scheduled runs for"
    )
    scheduled_before: DateTime | None = None
    limit: int | None = None


# --- responses (OpenAPI only) -------------------------------------------------------------


class WorkerResponse(BaseModel):
    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: str
    work_pool_id: uuid.UUID
    last_heartbeat_time: dt.datetime | None = None
    heartbeat_interval_seconds: int | None = None
    status: WorkerStatus = WorkerStatus.OFFLINE


class WorkerFlowRunResponse(BaseModel):
    work_pool_id: uuid.UUID
    work_queue_id: uuid.UUID
    flow_run: FlowRun


# --- wire builders ------------------------------------------------------------------------


def worker_to_wire(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "name": row.name,
        "work_pool_id": row.work_pool_id,
        "last_heartbeat_time": row.last_heartbeat_time,
        "heartbeat_interval_seconds": row.heartbeat_interval_seconds,
        "status": row.status,
    }
