"""Routes for /flow_runs and /flow_run_states (reads, filters, deletes)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Body, Request, Response, status
from fastapi.responses import PlainTextResponse

from deputy.api.deps import CreatedByDep, DatabaseDep, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.schemas.core import State
from deputy.schemas.flow_run_input import (
    FlowRunInput,
    FlowRunInputCreate,
    FlowRunInputFilterBody,
    flow_run_input_to_wire,
)
from deputy.schemas.flow_runs import (
    FlowRunCountBody,
    FlowRunCreate,
    FlowRunFilterBody,
    FlowRunResponse,
    FlowRunUpdate,
)
from deputy.services.common import page_limit
from deputy.services.flow_runs import create as run_creation
from deputy.services.flow_runs import inputs as flow_run_input
from deputy.services.flow_runs import read as flow_runs

router = FastRouter(prefix="/flow_runs", tags=["Flow Runs"])
states_router = FastRouter(prefix="/flow_run_states", tags=["Flow Run States"])


@router.post("/", response_model=FlowRunResponse, status_code=status.HTTP_201_CREATED)
async def create_flow_run(
    request: Request,
    body: FlowRunCreate,
    database: DatabaseDep,
    created_by: CreatedByDep,
) -> JSONResponse:
    """Create a run of a flow (PENDING unless a state is given); 200 for a replayed key."""
    async with database.write() as conn:
        result = await run_creation.create_flow_run(
            conn, body, created_by=created_by, now=request_now(request)
        )
    return json_response(result.body, status_code=result.status_code)


@router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_flow_run(
    request: Request, id: IdPath, body: FlowRunUpdate, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await flow_runs.update_flow_run(conn, id, body, now=request_now(request))
    return Response(status_code=204)


@router.patch("/{id:uuid}/labels", status_code=status.HTTP_204_NO_CONTENT)
async def update_flow_run_labels(
    request: Request,
    id: IdPath,
    database: DatabaseDep,
    labels: Annotated[dict[str, Any], Body(description="The labels to update")],
) -> Response:
    """Merge labels into the run's (workers add their name, type and pool this way)."""
    async with database.write() as conn:
        await flow_runs.update_flow_run_labels(conn, id, labels, now=request_now(request))
    return Response(status_code=204)


@router.post("/count")
async def count_flow_runs(database: DatabaseDep, body: FlowRunCountBody | None = None) -> int:
    async with database.read() as conn:
        return await flow_runs.count_flow_runs(conn, body or FlowRunCountBody())


@router.get("/{id:uuid}", response_model=FlowRunResponse)
async def read_flow_run(request: Request, id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        run = await flow_runs.read_flow_run(conn, id, now=request_now(request))
    return json_response(run)


@router.post("/filter", response_model=list[FlowRunResponse])
async def read_flow_runs(
    request: Request, database: DatabaseDep, body: FlowRunFilterBody | None = None
) -> JSONResponse:
    body = body or FlowRunFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        runs = await flow_runs.filter_flow_runs(
            conn, body, sort=body.sort, offset=body.offset, limit=limit, now=request_now(request)
        )
    return json_response(runs)


@router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_flow_run(id: IdPath, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await flow_runs.delete_flow_run(conn, id)
    return Response(status_code=204)


@states_router.get("/{id:uuid}", response_model=State)
async def read_flow_run_state(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        state = await flow_runs.read_flow_run_state(conn, id)
    return json_response(state)


@states_router.get("/", response_model=list[State])
async def read_flow_run_states(flow_run_id: uuid.UUID, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        states = await flow_runs.read_flow_run_states(conn, flow_run_id)
    return json_response(states)


# --- inputs (pause_flow_run(wait_for_input=...), send_input/receive_input) -----------------


@router.post("/{id:uuid}/input", status_code=status.HTTP_201_CREATED)
async def create_flow_run_input(
    request: Request, id: IdPath, body: FlowRunInputCreate, database: DatabaseDep
) -> JSONResponse:
    async with database.write() as conn:
        await flow_run_input.create_flow_run_input(conn, id, body, now=request_now(request))
    return json_response(None, status_code=201)


@router.post("/{id:uuid}/input/filter", response_model=list[FlowRunInput])
async def filter_flow_run_input(
    id: IdPath, body: FlowRunInputFilterBody, database: DatabaseDep
) -> JSONResponse:
    async with database.read() as conn:
        rows = await flow_run_input.filter_flow_run_input(conn, id, body)
    return json_response([flow_run_input_to_wire(row) for row in rows])


@router.get("/{id:uuid}/input/{key}")
async def read_flow_run_input(id: IdPath, key: str, database: DatabaseDep) -> PlainTextResponse:
    """The input's value as stored, the text of a JSON document, answered as text/plain (as
    Prefect does, though its OpenAPI document, like this one, declares JSON)."""
    async with database.read() as conn:
        value = await flow_run_input.read_flow_run_input(conn, id, key)
    return PlainTextResponse(value)


@router.delete("/{id:uuid}/input/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_flow_run_input(id: IdPath, key: str, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await flow_run_input.delete_flow_run_input(conn, id, key)
    return Response(status_code=204)
