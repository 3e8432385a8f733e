"""Routes that move a flow run between states: set_state and resume."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Request

from deputy.api.deps import ClientVersionDep, DatabaseDep, ForceBody, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.schemas.core import StateCreate
from deputy.schemas.orchestration import OrchestrationResult
from deputy.services.flow_runs import resume, set_state

router = FastRouter(prefix="/flow_runs", tags=["Flow Runs"])


@router.post("/{id:uuid}/set_state", response_model=OrchestrationResult)
async def set_flow_run_state(
    request: Request,
    id: IdPath,
    database: DatabaseDep,
    client_version: ClientVersionDep,
    state: Annotated[StateCreate, Body(description="The intended state.")],
    force: ForceBody = False,
) -> JSONResponse:
    """Propose a state: 201 when a state was written, 200 when not (wait, abort, reject)."""
    async with database.write() as conn:
        result = await set_state.set_flow_run_state(
            conn, id, state, force=force, client_version=client_version, now=request_now(request)
        )
    return json_response(result.body, status_code=result.status_code)


@router.post("/{id:uuid}/resume", response_model=OrchestrationResult)
async def resume_flow_run(
    request: Request,
    id: IdPath,
    database: DatabaseDep,
    client_version: ClientVersionDep,
    run_input: Annotated[dict[str, Any] | None, Body(embed=True)] = None,
) -> JSONResponse:
    """Resume a paused run: RUNNING again, or SCHEDULED "Resuming" if it was suspended."""
    async with database.write() as conn:
        result = await resume.resume_flow_run(
            conn, id, run_input, client_version=client_version, now=request_now(request)
        )
    return json_response(result.body, status_code=result.status_code)
