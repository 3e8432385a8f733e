"""Routes for /block_documents, and a block type's documents under /block_types/slug/{slug}."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request, Response, status

from deputy.api.deps import CipherDep, DatabaseDep, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.schemas.block_documents import (
    BlockDocument,
    BlockDocumentCountBody,
    BlockDocumentCreate,
    BlockDocumentFilterBody,
    BlockDocumentUpdate,
)
from deputy.services.blocks import documents
from deputy.services.common import page_limit

router = FastRouter(prefix="/block_documents", tags=["Block documents"])
type_documents_router = FastRouter(prefix="/block_types", tags=["Block types"])

IncludeSecrets = Annotated[
    bool, Query(description="Whether to include sensitive values in the block document.")
]


@router.post("/", response_model=BlockDocument, status_code=status.HTTP_201_CREATED)
async def create_block_document(
    request: Request, body: BlockDocumentCreate, database: DatabaseDep, cipher: CipherDep
) -> JSONResponse:
    """Create a block document; a name its type already has is a 409."""
    async with database.write() as conn:
        answer = await documents.create_block_document(
            conn, body, cipher=cipher, now=request_now(request)
        )
    return json_response(answer, status_code=201)


@router.post("/filter", response_model=list[BlockDocument])
async def read_block_documents(
    database: DatabaseDep, cipher: CipherDep, body: BlockDocumentFilterBody | None = None
) -> JSONResponse:
    body = body or BlockDocumentFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        answer = await documents.filter_block_documents(
            conn,
            body.block_documents,
            body.block_types,
            body.block_schemas,
            cipher=cipher,
            include_secrets=body.include_secrets,
            sort=body.sort,
            offset=body.offset,
            limit=limit,
        )
    return json_response(answer)


@router.post("/count")
async def count_block_documents(
    database: DatabaseDep, body: BlockDocumentCountBody | None = None
) -> int:
    body = body or BlockDocumentCountBody()
    async with database.read() as conn:
        return await documents.count_block_documents(
            conn, body.block_documents, body.block_types, body.block_schemas
        )


@router.get("/{id:uuid}", response_model=BlockDocument)
async def read_block_document_by_id(
    id: IdPath, database: DatabaseDep, cipher: CipherDep, include_secrets: IncludeSecrets = False
) -> JSONResponse:
    async with database.read() as conn:
        answer = await documents.read_block_document(
            conn, id, cipher=cipher, include_secrets=include_secrets
        )
    return json_response(answer)


@router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_block_document(
    request: Request, id: IdPath, database: DatabaseDep, cipher: CipherDep
) -> Response:
    async with database.write() as conn:
        await documents.delete_block_document(conn, id, cipher=cipher, now=request_now(request))
    return Response(status_code=204)


@router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_block_document_data(
    request: Request,
    id: IdPath,
    body: BlockDocumentUpdate,
    database: DatabaseDep,
    cipher: CipherDep,
) -> Response:
    async with database.write() as conn:
        await documents.update_block_document(
            conn, id, body, cipher=cipher, now=request_now(request)
        )
    return Response(status_code=204)


@type_documents_router.get(
    "/slug/{slug}/block_documents",
    response_model=list[BlockDocument],
    tags=["Block documents"],
)
async def read_block_documents_for_block_type(
    database: DatabaseDep,
    cipher: CipherDep,
    slug: Annotated[str, Path(description="The block type name")],
    include_secrets: IncludeSecrets = False,
) -> JSONResponse:
    async with database.read() as conn:
        answer = await documents.read_type_documents(
            conn, slug, cipher=cipher, include_secrets=include_secrets
        )
    return json_response(answer)


@type_documents_router.get(
    "/slug/{slug}/block_documents/name/{block_document_name}",
    response_model=BlockDocument,
    tags=["Block documents"],
)
async def read_block_document_by_name_for_block_type(
    database: DatabaseDep,
    cipher: CipherDep,
    slug: Annotated[str, Path(description="The block type name")],
    block_document_name: Annotated[str, Path(description="The block type name")],
    include_secrets: IncludeSecrets = False,
) -> JSONResponse:
    async with database.read() as conn:
        answer = await documents.read_block_document_by_name(
            conn, slug, block_document_name, cipher=cipher, include_secrets=include_secrets
        )
    return json_response(answer)
