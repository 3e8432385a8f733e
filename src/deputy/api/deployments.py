"""Routes for /deployments, including the hot path ``create_flow_run``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Response, status
from sqlalchemy.exc import IntegrityError

from deputy.api.deps import CreatedByDep, DatabaseDep, IdPath
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.errors import INTEGRITY_CONFLICT, BadRequest, DeputyError
from deputy.schemas.deployments import (
    DeploymentCreate,
    DeploymentFilterBody,
    DeploymentFlowRunCreate,
    DeploymentPaginateBody,
    DeploymentPaginationResponse,
    DeploymentResponse,
    DeploymentUpdate,
    deployment_to_wire,
)
from deputy.schemas.filters import RelatedFilters
from deputy.schemas.flow_runs import DeploymentFlowRunBulkResponse, FlowRunResponse
from deputy.schemas.workers import DeploymentScheduledRunsBody
from deputy.services import create_flow_run as runs
from deputy.services import deployments, workers
from deputy.services.common import page_limit, pagination

router = FastRouter(prefix="/deployments", tags=["Deployments"])

MAX_BULK_RUNS = 100


@router.post("/", response_model=DeploymentResponse, status_code=status.HTTP_201_CREATED)
async def create_deployment(
    body: DeploymentCreate,
    database: DatabaseDep,
    created_by: CreatedByDep,
) -> JSONResponse:
    """Create a deployment, or update the flow's deployment of the same name (200)."""
    async with database.write() as conn:
        row, created = await deployments.create_deployment(conn, body, created_by)
    return json_response(deployment_to_wire(row), status_code=201 if created else 200)


@router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_deployment(id: IdPath, body: DeploymentUpdate, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await deployments.update_deployment(conn, id, body)
    return Response(status_code=204)


@router.get("/name/{flow_name}/{deployment_name}", response_model=DeploymentResponse)
async def read_deployment_by_name(
    flow_name: str, deployment_name: str, database: DatabaseDep
) -> JSONResponse:
    async with database.read() as conn:
        row = await deployments.read_deployment_by_name(conn, flow_name, deployment_name)
    return json_response(deployment_to_wire(row))


@router.get("/{id:uuid}", response_model=DeploymentResponse)
async def read_deployment(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await deployments.read_deployment(conn, id)
    return json_response(deployment_to_wire(row))


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
    return json_response([deployment_to_wire(r) for r in rows])


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
    return json_response(pagination([deployment_to_wire(r) for r in rows], count, limit, body.page))


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
async def pause_deployment(id: IdPath, database: DatabaseDep) -> None:
    async with database.write() as conn:
        await deployments.set_paused(conn, id, paused=True)


@router.post("/{id:uuid}/resume_deployment")
async def resume_deployment(id: IdPath, database: DatabaseDep) -> None:
    async with database.write() as conn:
        await deployments.set_paused(conn, id, paused=False)


@router.post(
    "/{id:uuid}/create_flow_run",
    response_model=FlowRunResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_flow_run_from_deployment(
    id: IdPath,
    body: DeploymentFlowRunCreate,
    database: DatabaseDep,
    created_by: CreatedByDep,
) -> JSONResponse:
    """Create a flow run from a deployment: 201 new, 200 for a replayed idempotency key."""
    async with database.write() as conn:
        result = await runs.create_flow_run_from_deployment(conn, id, body, created_by=created_by)
    return json_response(result.body, status_code=201 if result.created else 200)


@router.post("/{id:uuid}/create_flow_run/bulk", response_model=DeploymentFlowRunBulkResponse)
async def create_flow_runs_from_deployment(
    id: IdPath,
    database: DatabaseDep,
    body: Annotated[list[DeploymentFlowRunCreate], Body()],
    created_by: CreatedByDep,
) -> JSONResponse:
    """Up to 100 runs in one transaction; each item succeeds or fails on its own, in order."""
    if len(body) > MAX_BULK_RUNS:
        raise BadRequest(f"Cannot create more than {MAX_BULK_RUNS} flow runs at once.")
    results: list[dict[str, Any]] = []
    async with database.write() as conn:
        deployment = await runs.read_deployment_for_runs(conn, id)
        for item in body:
            try:
                async with conn.begin_nested():
                    result = await runs.create_flow_run_for(
                        conn, deployment, item, created_by=created_by
                    )
            except DeputyError as error:
                results.append(_bulk_failure(error.message))
                continue
            except IntegrityError:
                results.append(_bulk_failure(INTEGRITY_CONFLICT))
                continue
            results.append({"flow_run_id": result.body["id"], "status": "CREATED", "error": None})
    return json_response({"results": results})


def _bulk_failure(message: str) -> dict[str, Any]:
    return {"flow_run_id": None, "status": "FAILED", "error": message}


@router.post("/get_scheduled_flow_runs", response_model=list[FlowRunResponse])
async def get_scheduled_flow_runs_for_deployments(
    body: DeploymentScheduledRunsBody, database: DatabaseDep
) -> JSONResponse:
    """Scheduled runs of served deployments (the Runner's poll), earliest first; the
    deployments are marked READY and polled in the same transaction when due."""
    limit = page_limit(body.limit)
    async with database.write() as conn:
        results = await workers.get_scheduled_flow_runs_for_deployments(
            conn, body.deployment_ids, scheduled_before=body.scheduled_before, limit=limit
        )
    return json_response(results)
