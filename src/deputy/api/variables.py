"""Routes for /variables."""

from __future__ import annotations

from fastapi import Request, Response, status

from deputy.api.deps import DatabaseDep, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.schemas.variables import (
    Variable,
    VariableCountBody,
    VariableCreate,
    VariableFilterBody,
    VariableUpdate,
    variable_to_wire,
)
from deputy.services import variables
from deputy.services.common import page_limit

router = FastRouter(prefix="/variables", tags=["Variables"])


@router.post("/", response_model=Variable, status_code=status.HTTP_201_CREATED)
async def create_variable(
    request: Request, body: VariableCreate, database: DatabaseDep
) -> JSONResponse:
    """Create a variable; a name already taken is a 409."""
    async with database.write() as conn:
        row = await variables.create_variable(conn, body, now=request_now(request))
    return json_response(variable_to_wire(row), status_code=201)


@router.get("/{id:uuid}", response_model=Variable)
async def read_variable(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await variables.read_variable(conn, id)
    return json_response(variable_to_wire(row))


@router.get("/name/{name}", response_model=Variable)
async def read_variable_by_name(name: str, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await variables.read_variable_by_name(conn, name)
    return json_response(variable_to_wire(row))


@router.post("/filter", response_model=list[Variable])
async def read_variables(
    database: DatabaseDep, body: VariableFilterBody | None = None
) -> JSONResponse:
    body = body or VariableFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await variables.filter_variables(
            conn, body.variables, sort=body.sort, offset=body.offset, limit=limit
        )
    return json_response([variable_to_wire(r) for r in rows])


@router.post("/count")
async def count_variables(database: DatabaseDep, body: VariableCountBody | None = None) -> int:
    async with database.read() as conn:
        return await variables.count_variables(conn, body.variables if body else None)


@router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_variable(
    request: Request, id: IdPath, body: VariableUpdate, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await variables.update_variable(conn, id, body, now=request_now(request))
    return Response(status_code=204)


@router.patch("/name/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def update_variable_by_name(
    request: Request, name: str, body: VariableUpdate, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await variables.update_variable_by_name(conn, name, body, now=request_now(request))
    return Response(status_code=204)


@router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_variable(request: Request, id: IdPath, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await variables.delete_variable(conn, id, now=request_now(request))
    return Response(status_code=204)


@router.delete("/name/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_variable_by_name(request: Request, name: str, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await variables.delete_variable_by_name(conn, name, now=request_now(request))
    return Response(status_code=204)
