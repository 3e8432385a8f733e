"""Routes for /deployments, including the hot path ``create_flow_run``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Body, Path, Request, Response, status

from deputy.api.deps import CreatedByDep, DatabaseDep, HorizonDep, IdPath, app_clock, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.errors import BadRequest
from deputy.schemas.deployments import (
    DeploymentCreate,
    DeploymentFilterBody,
    DeploymentFlowRunCreate,
    DeploymentPaginateBody,
    DeploymentPaginationResponse,
    DeploymentResponse,
    DeploymentUpdate,
    deployment_to_wire,
    schedule_to_wire,
)
from deputy.schemas.filters import RelatedFilters
from deputy.schemas.flow_runs import DeploymentFlowRunBulkResponse, FlowRunResponse
from deputy.schemas.schedules import (
    DeploymentSchedule,
    DeploymentScheduleCreate,
    DeploymentScheduleUpdate,
)
from deputy.schemas.workers import DeploymentScheduledRunsBody
from deputy.services import deployments, scheduler, schedules
from deputy.services.common import page_limit, pagination
from deputy.services.flow_runs import bulk
from deputy.services.flow_runs import create as runs
from deputy.services.work_pools import polls

if TYPE_CHECKING:
    from deputy.db.connection import Connection

router = FastRouter(prefix="/deployments", tags=["Deployments"])

ScheduleIdPath = Annotated[uuid.UUID, Path(alias="schedule_id")]


async def _to_wire(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    """Deployments as answered, each with its schedules (one more statement for all)."""
    found = await schedules.read_schedules_for(conn, [row.id for row in rows])
    return [deployment_to_wire(row, found[row.id]) for row in rows]


# The hot path first: routes are matched in order.
@router.post(
    "/{id:uuid}/create_flow_run",
    response_model=FlowRunResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_flow_run_from_deployment(
    request: Request,
    id: IdPath,
    body: DeploymentFlowRunCreate,
    database: DatabaseDep,
    created_by: CreatedByDep,
) -> JSONResponse:
    """Create a flow run from a deployment: 201 new, 200 for a replayed idempotency key.

    Ordinary requests are served by ``api/fast_path.py`` before they reach FastAPI; this
    route is the reference it copies, and answers whatever the fast path hands on.
    """
    async with database.write() as conn:
        result = await runs.create_flow_run_from_deployment(
            conn, id, body, created_by=created_by, now=request_now(request)
        )
    return json_response(result.body, status_code=result.status_code)


@router.post("/{id:uuid}/create_flow_run/bulk", response_model=DeploymentFlowRunBulkResponse)
async def create_flow_runs_from_deployment(
    request: Request,
    id: IdPath,
    database: DatabaseDep,
    body: Annotated[list[DeploymentFlowRunCreate], Body()],
    created_by: CreatedByDep,
) -> JSONResponse:
    """Up to 100 runs in one transaction; each item succeeds or fails on its own, in order."""
    if len(body) > bulk.MAX_BULK_RUNS:
        raise BadRequest(f"Cannot create more than {bulk.MAX_BULK_RUNS} flow runs at once.")
    async with database.write() as conn:
        results = await bulk.create_flow_runs_from_deployment(
            conn, id, body, created_by=created_by, clock=app_clock(request)
        )
    return json_response({"results": results})


@router.post("/", response_model=DeploymentResponse, status_code=status.HTTP_201_CREATED)
async def create_deployment(
    request: Request,
    body: DeploymentCreate,
    database: DatabaseDep,
    horizon: HorizonDep,
    created_by: CreatedByDep,
) -> JSONResponse:
    """Create a deployment, or update the flow's deployment of the same name (200)."""
    async with database.write() as conn:
        row, created = await deployments.create_deployment(
            conn, body, created_by, horizon, now=request_now(request)
        )
        (answer,) = await _to_wire(conn, [row])
    return json_response(answer, status_code=201 if created else 200)


@router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_deployment(
    request: Request, id: IdPath, body: DeploymentUpdate, database: DatabaseDep, horizon: HorizonDep
) -> Response:
    async with database.write() as conn:
        await deployments.update_deployment(conn, id, body, horizon, now=request_now(request))
    return Response(status_code=204)


@router.get("/name/{flow_name}/{deployment_name}", response_model=DeploymentResponse)
async def read_deployment_by_name(
    flow_name: str, deployment_name: str, database: DatabaseDep
) -> JSONResponse:
    async with database.read() as conn:
        row = await deployments.read_deployment_by_name(conn, flow_name, deployment_name)
        (answer,) = await _to_wire(conn, [row])
    return json_response(answer)


@router.get("/{id:uuid}", response_model=DeploymentResponse)
async def read_deployment(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await deployments.read_deployment(conn, id)
        (answer,) = await _to_wire(conn, [row])
    return json_response(answer)


@router.post("/filter", response_model=list[DeploymentResponse])
async def read_deployments(
    database: DatabaseDep, body: DeploymentFilterBody | None = None
) -> JSONResponse:
    body = body or DeploymentFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await deployments.filter_deployments(
            conn, body, sort=body.sort, offset=body.offset, limit=limit
        )
        answer = await _to_wire(conn, rows)
    return json_response(answer)


@router.post("/paginate", response_model=DeploymentPaginationResponse)
async def paginate_deployments(
    database: DatabaseDep, body: DeploymentPaginateBody | None = None
) -> JSONResponse:
    body = body or DeploymentPaginateBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        count = await deployments.count_deployments(conn, body)
        rows = await deployments.filter_deployments(
            conn, body, sort=body.sort, offset=(body.page - 1) * limit, limit=limit
        )
        answer = await _to_wire(conn, rows)
    return json_response(pagination(answer, count, limit, body.page))


@router.post("/count")
async def count_deployments(database: DatabaseDep, body: RelatedFilters | None = None) -> int:
    async with database.read() as conn:
        return await deployments.count_deployments(conn, body or RelatedFilters())


@router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment(id: IdPath, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await deployments.delete_deployment(conn, id)
    return Response(status_code=204)


@router.post("/{id:uuid}/pause_deployment")
async def pause_deployment(
    request: Request, id: IdPath, database: DatabaseDep, horizon: HorizonDep
) -> None:
    """Pause: the auto-scheduled runs still waiting are deleted in the same transaction."""
    async with database.write() as conn:
        await deployments.set_paused(
            conn, id, paused=True, horizon=horizon, now=request_now(request)
        )


@router.post("/{id:uuid}/resume_deployment")
async def resume_deployment(
    request: Request, id: IdPath, database: DatabaseDep, horizon: HorizonDep
) -> None:
    """Resume: future runs are planned again from now (no backlog of Late runs)."""
    async with database.write() as conn:
        await deployments.set_paused(
            conn, id, paused=False, horizon=horizon, now=request_now(request)
        )


#: Bounds for POST /deployments/{id}/schedule: the largest timedelta Python can hold, and
#: far more runs than a schedule computation yields (about 1,000 candidates).
_MAX_SECONDS = dt.timedelta.max.total_seconds()
_MAX_RUNS = 1_000_000


@router.post("/{id:uuid}/schedule")
async def schedule_deployment(
    request: Request,
    id: IdPath,
    database: DatabaseDep,
    horizon: HorizonDep,
    start_time: Annotated[dt.datetime | None, Body()] = None,
    end_time: Annotated[dt.datetime | None, Body()] = None,
    min_time: Annotated[
        float | None,
        Body(ge=-_MAX_SECONDS, le=_MAX_SECONDS, json_schema_extra={"format": "time-delta"}),
    ] = None,
    min_runs: Annotated[int | None, Body(ge=0, le=_MAX_RUNS)] = None,
    max_runs: Annotated[int | None, Body(ge=0, le=_MAX_RUNS)] = None,
) -> None:
    """Create the runs of a window (in the past for a backfill), by Prefect's min/max rules;
    slots that already have a run are left alone. Values Prefect would fail on with a 500
    (a ``min_time`` beyond any date, astronomically many runs) are refused with a 422."""
    horizon = scheduler.Horizon(
        min_runs=horizon.min_runs if min_runs is None else min_runs,
        max_runs=horizon.max_runs if max_runs is None else max_runs,
        min_time=horizon.min_time if min_time is None else dt.timedelta(seconds=min_time),
        max_time=horizon.max_time,
    )
    async with database.write() as conn:
        await scheduler.schedule_window(
            conn, id, horizon, start=_utc(start_time), end=_utc(end_time), now=request_now(request)
        )


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """A naive time is UTC, as everywhere in Prefect's API."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


@router.get("/{id:uuid}/schedules", response_model=list[DeploymentSchedule])
async def read_deployment_schedules(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        rows = await schedules.read_deployment_schedules(conn, id)
    return json_response([schedule_to_wire(row) for row in rows])


@router.post(
    "/{id:uuid}/schedules",
    response_model=list[DeploymentSchedule],
    status_code=status.HTTP_201_CREATED,
)
async def create_deployment_schedules(
    request: Request,
    id: IdPath,
    body: Annotated[list[DeploymentScheduleCreate], Body()],
    database: DatabaseDep,
    horizon: HorizonDep,
) -> JSONResponse:
    """Add schedules; their runs are created in the same transaction."""
    async with database.write() as conn:
        rows = await schedules.create_deployment_schedules(
            conn, id, body, horizon, now=request_now(request)
        )
    return json_response([schedule_to_wire(row) for row in rows], status_code=201)


@router.patch("/{id:uuid}/schedules/{schedule_id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_deployment_schedule(
    request: Request,
    id: IdPath,
    schedule_id: ScheduleIdPath,
    body: DeploymentScheduleUpdate,
    database: DatabaseDep,
    horizon: HorizonDep,
) -> Response:
    """Change a schedule; runs that no longer match are replaced in the same transaction."""
    async with database.write() as conn:
        await schedules.update_deployment_schedule(
            conn, id, schedule_id, body, horizon, now=request_now(request)
        )
    return Response(status_code=204)


@router.delete("/{id:uuid}/schedules/{schedule_id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_deployment_schedule(
    request: Request,
    id: IdPath,
    schedule_id: ScheduleIdPath,
    database: DatabaseDep,
    horizon: HorizonDep,
) -> Response:
    """Delete a schedule and, as Prefect does, the auto-scheduled runs still waiting (then
    the other schedules' future runs are planned again)."""
    async with database.write() as conn:
        await schedules.delete_deployment_schedule(
            conn, id, schedule_id, horizon, now=request_now(request)
        )
    return Response(status_code=204)


@router.post("/get_scheduled_flow_runs", response_model=list[FlowRunResponse])
async def get_scheduled_flow_runs_for_deployments(
    request: Request, body: DeploymentScheduledRunsBody, database: DatabaseDep
) -> JSONResponse:
    """Scheduled runs of served deployments (the Runner's poll), earliest first; the
    deployments are marked READY and polled in the same transaction when due."""
    limit = page_limit(body.limit)
    async with database.write() as conn:
        results = await polls.get_scheduled_flow_runs_for_deployments(
            conn,
            body.deployment_ids,
            scheduled_before=body.scheduled_before,
            limit=limit,
            now=request_now(request),
        )
    return json_response(results)
