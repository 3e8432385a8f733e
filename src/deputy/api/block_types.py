"""Routes for /block_types: create, read, update, delete and filter block types.

``install_system_block_types`` and a type's documents (``/block_types/slug/{slug}/
block_documents``) are served by their own modules.
"""

from __future__ import annotations

from fastapi import Request, Response, status

from deputy.api.deps import DatabaseDep, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.schemas.blocks import (
    BlockType,
    BlockTypeCreate,
    BlockTypeFilterBody,
    BlockTypeUpdate,
    block_type_to_wire,
)
from deputy.services.blocks import types as block_types
from deputy.services.common import page_limit

router = FastRouter(prefix="/block_types", tags=["Block types"])


@router.post("/", response_model=BlockType, status_code=status.HTTP_201_CREATED)
async def create_block_type(
    request: Request, body: BlockTypeCreate, database: DatabaseDep
) -> JSONResponse:
    """Create a block type: 403 for a name starting with "Prefect", 409 for a slug taken by
    another type, 200 with the type when an identical one holds the slug."""
    async with database.write() as conn:
        row, created = await block_types.create_block_type(conn, body, now=request_now(request))
    return json_response(block_type_to_wire(row), status_code=201 if created else 200)


@router.get("/{id:uuid}", response_model=BlockType)
async def read_block_type_by_id(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await block_types.read_block_type(conn, id)
    return json_response(block_type_to_wire(row))


@router.get("/slug/{slug}", response_model=BlockType)
async def read_block_type_by_slug(slug: str, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await block_types.read_block_type_by_slug(conn, slug)
    return json_response(block_type_to_wire(row))


@router.post("/filter", response_model=list[BlockType])
async def read_block_types(
    database: DatabaseDep, body: BlockTypeFilterBody | None = None
) -> JSONResponse:
    """Block types by name; ``block_schemas`` keeps those with a matching schema."""
    body = body or BlockTypeFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await block_types.filter_block_types(
            conn, body.block_types, body.block_schemas, offset=body.offset, limit=limit
        )
    return json_response([block_type_to_wire(row) for row in rows])


@router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_block_type(
    request: Request, id: IdPath, body: BlockTypeUpdate, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await block_types.update_block_type(conn, id, body, now=request_now(request))
    return Response(status_code=204)


@router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_block_type(request: Request, id: IdPath, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await block_types.delete_block_type(conn, id, now=request_now(request))
    return Response(status_code=204)
