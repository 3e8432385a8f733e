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

from deputy.schemas.core import DateTime, Offset, canonical_policy
from deputy.schemas.filters import FilterBody, Operator
from deputy.schemas.flow_runs import (
    FlowRun,
    estimated_run_time,
    estimated_start_time_delta,
    state_to_wire,
)


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


def core_flow_run_to_wire(run: Any, state: Any, now: dt.datetime) -> dict[str, Any]:
    """A run (row mapping) and its current state as Prefect's core ``FlowRun``.

    Unlike ``FlowRunResponse`` it has no ``work_pool_id``/``work_pool_name``, and its
    ``work_queue_name`` is the run's own column (null for runs whose deployment named only a
    pool), as Prefect answers the worker poll.
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
        "work_queue_name": run["work_queue_name"],
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
        "work_queue_id": run["work_queue_id"],
        "state": state_to_wire(state) if state is not None else None,
        "job_variables": run["job_variables"],
    }
