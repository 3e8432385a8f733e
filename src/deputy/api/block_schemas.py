"""Routes for /block_schemas and /block_capabilities."""

from __future__ import annotations

from fastapi import Request, Response, status

from deputy.api.deps import DatabaseDep, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.schemas.blocks import (
    BlockSchema,
    BlockSchemaCreate,
    BlockSchemaFilterBody,
    block_schema_to_wire,
)
from deputy.services.blocks import schemas as block_schemas
from deputy.services.common import page_limit

router = FastRouter(prefix="/block_schemas", tags=["Block schemas"])
capabilities_router = FastRouter(prefix="/block_capabilities", tags=["Block capabilities"])


@router.post("/", response_model=BlockSchema, status_code=status.HTTP_201_CREATED)
async def create_block_schema(
    request: Request, body: BlockSchemaCreate, database: DatabaseDep
) -> JSONResponse:
    """Create a block schema (201), or answer the one already stored with the same checksum
    and version (200)."""
    async with database.write() as conn:
        schema, block_type, created = await block_schemas.create_block_schema(
            conn, body, now=request_now(request)
        )
    return json_response(
        block_schema_to_wire(schema, block_type), status_code=201 if created else 200
    )


@router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_block_schema(id: IdPath, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await block_schemas.delete_block_schema(conn, id)
    return Response(status_code=204)


@router.post("/filter", response_model=list[BlockSchema])
async def read_block_schemas(
    database: DatabaseDep, body: BlockSchemaFilterBody | None = None
) -> JSONResponse:
    """Block schemas, newest first."""
    body = body or BlockSchemaFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        found = await block_schemas.filter_block_schemas(
            conn, body.block_schemas, offset=body.offset, limit=limit
        )
    return json_response([block_schema_to_wire(schema, kind) for schema, kind in found])


@router.get("/{id:uuid}", response_model=BlockSchema)
async def read_block_schema_by_id(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        schema, block_type = await block_schemas.read_block_schema(conn, id)
    return json_response(block_schema_to_wire(schema, block_type))


@router.get("/checksum/{checksum}", response_model=BlockSchema)
async def read_block_schema_by_checksum(
    checksum: str, database: DatabaseDep, version: str | None = None
) -> JSONResponse:
    """The newest schema with this checksum (and this version, if one is given)."""
    async with database.read() as conn:
        schema, block_type = await block_schemas.read_block_schema_by_checksum(
            conn, checksum, version
        )
    return json_response(block_schema_to_wire(schema, block_type))


@capabilities_router.get("/", response_model=list[str])
async def read_available_block_capabilities(database: DatabaseDep) -> JSONResponse:
    """Every capability of the stored block schemas."""
    async with database.read() as conn:
        found = await block_schemas.read_block_capabilities(conn)
    return json_response(found)
