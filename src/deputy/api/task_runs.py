"""Routes for /task_runs and /task_run_states."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Body, Request, Response, status

from deputy.api.deps import DatabaseDep, ForceBody, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.schemas.core import State, StateCreate
from deputy.schemas.orchestration import OrchestrationResult
from deputy.schemas.task_runs import (
    TaskRun,
    TaskRunCountBody,
    TaskRunCreate,
    TaskRunFilterBody,
    TaskRunPaginateBody,
    TaskRunPaginationResponse,
    TaskRunUpdate,
    task_run_response_to_wire,
)
from deputy.services.common import page_limit, pagination
from deputy.services.task_runs import crud as task_runs
from deputy.services.task_runs import orchestrate

router = FastRouter(prefix="/task_runs", tags=["Task Runs"])
states_router = FastRouter(prefix="/task_run_states", tags=["Task Run States"])


@router.post("/", response_model=TaskRun)
async def create_task_run(
    request: Request, body: TaskRunCreate, database: DatabaseDep
) -> JSONResponse:
    """Create a task run (PENDING unless a state is given): 201; the run already there for
    the same flow run, task key and dynamic key: 200, unchanged."""
    async with database.write() as conn:
        result = await task_runs.create_task_run(conn, body, now=request_now(request))
    return json_response(result.body, status_code=result.status_code)


@router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_task_run(
    request: Request, id: IdPath, body: TaskRunUpdate, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await task_runs.update_task_run(conn, id, body, now=request_now(request))
    return Response(status_code=204)


@router.post("/count")
async def count_task_runs(database: DatabaseDep, body: TaskRunCountBody | None = None) -> int:
    async with database.read() as conn:
        return await task_runs.count_task_runs(conn, body or TaskRunCountBody())


@router.get("/{id:uuid}", response_model=TaskRun)
async def read_task_run(request: Request, id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        run = await task_runs.read_task_run(conn, id, now=request_now(request))
    return json_response(run)


@router.post("/filter", response_model=list[TaskRun])
async def read_task_runs(
    request: Request, database: DatabaseDep, body: TaskRunFilterBody | None = None
) -> JSONResponse:
    body = body or TaskRunFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        runs = await task_runs.filter_task_runs(
            conn, body, sort=body.sort, offset=body.offset, limit=limit, now=request_now(request)
        )
    return json_response(runs)


@router.post("/paginate", response_model=TaskRunPaginationResponse)
async def paginate_task_runs(
    request: Request, database: DatabaseDep, body: TaskRunPaginateBody | None = None
) -> JSONResponse:
    """A page of task runs, each in Prefect's shorter ``TaskRunResponse`` shape."""
    body = body or TaskRunPaginateBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        count = await task_runs.count_task_runs(conn, body)
        runs = await task_runs.filter_task_runs(
            conn,
            body,
            sort=body.sort,
            offset=(body.page - 1) * limit,
            limit=limit,
            now=request_now(request),
        )
    results = [task_run_response_to_wire(run) for run in runs]
    return json_response(pagination(results, count, limit, body.page))


@router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_task_run(id: IdPath, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await task_runs.delete_task_run(conn, id)
    return Response(status_code=204)


@router.post("/{id:uuid}/set_state", response_model=OrchestrationResult)
async def set_task_run_state(
    request: Request,
    id: IdPath,
    database: DatabaseDep,
    state: Annotated[StateCreate, Body(description="The intended state.")],
    force: ForceBody = False,
) -> JSONResponse:
    """Propose a state: 201 when a state was written, 200 when not (wait, abort, reject)."""
    async with database.write() as conn:
        result = await orchestrate.set_task_run_state(
            conn, id, state, force=force, now=request_now(request)
        )
    return json_response(result.body, status_code=result.status_code)


@states_router.get("/{id:uuid}", response_model=State)
async def read_task_run_state(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        state = await task_runs.read_task_run_state(conn, id)
    return json_response(state)


@states_router.get("/", response_model=list[State])
async def read_task_run_states(task_run_id: uuid.UUID, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        states = await task_runs.read_task_run_states(conn, task_run_id)
    return json_response(states)
