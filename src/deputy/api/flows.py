"""Routes for /flows."""

from __future__ import annotations

from fastapi import Request, Response, status

from deputy.api.deps import DatabaseDep, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.schemas.flows import (
    Flow,
    FlowCountBody,
    FlowCreate,
    FlowFilterBody,
    FlowPaginateBody,
    FlowPaginationResponse,
    FlowUpdate,
    flow_to_wire,
)
from deputy.services import flows
from deputy.services.common import page_limit, pagination

router = FastRouter(prefix="/flows", tags=["Flows"])


@router.post("/", response_model=Flow, status_code=status.HTTP_201_CREATED)
async def create_flow(request: Request, body: FlowCreate, database: DatabaseDep) -> JSONResponse:
    """Create a flow, or return the existing one with the same name (200)."""
    async with database.write() as conn:
        row, created = await flows.create_flow(conn, body, now=request_now(request))
    return json_response(flow_to_wire(row), status_code=201 if created else 200)


@router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_flow(
    request: Request, id: IdPath, body: FlowUpdate, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await flows.update_flow(conn, id, body, now=request_now(request))
    return Response(status_code=204)


@router.post("/count")
async def count_flows(database: DatabaseDep, body: FlowCountBody | None = None) -> int:
    async with database.read() as conn:
        return await flows.count_flows(conn, body or FlowCountBody())


@router.get("/name/{name}", response_model=Flow)
async def read_flow_by_name(name: str, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await flows.read_flow_by_name(conn, name)
    return json_response(flow_to_wire(row))


@router.get("/{id:uuid}", response_model=Flow)
async def read_flow(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await flows.read_flow(conn, id)
    return json_response(flow_to_wire(row))


@router.post("/filter", response_model=list[Flow])
async def read_flows(database: DatabaseDep, body: FlowFilterBody | None = None) -> JSONResponse:
    body = body or FlowFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await flows.filter_flows(conn, body, sort=body.sort, offset=body.offset, limit=limit)
    return json_response([flow_to_wire(r) for r in rows])


@router.post("/paginate", response_model=FlowPaginationResponse)
async def paginate_flows(
    database: DatabaseDep, body: FlowPaginateBody | None = None
) -> JSONResponse:
    body = body or FlowPaginateBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        count = await flows.count_flows(conn, body)
        rows = await flows.filter_flows(
            conn, body, sort=body.sort, offset=(body.page - 1) * limit, limit=limit
        )
    return json_response(pagination([flow_to_wire(r) for r in rows], count, limit, body.page))


@router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_flow(request: Request, id: IdPath, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await flows.delete_flow(conn, id, now=request_now(request))
    return Response(status_code=204)
