"""Routes for /artifacts: what ``create_markdown_artifact`` and friends send, and what
``prefect artifact ls`` and the UI read."""

from __future__ import annotations

from fastapi import Request, Response, status

from deputy.api.deps import DatabaseDep, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.db import tables as t
from deputy.schemas.artifacts import (
    Artifact,
    ArtifactCollection,
    ArtifactCountBody,
    ArtifactCreate,
    ArtifactFilterBody,
    ArtifactUpdate,
    LatestArtifactCountBody,
    LatestArtifactFilterBody,
    artifact_to_wire,
    latest_artifact_to_wire,
)
from deputy.services import artifacts
from deputy.services.common import page_limit

router = FastRouter(prefix="/artifacts", tags=["Artifacts"])


@router.post("/", response_model=Artifact, status_code=status.HTTP_201_CREATED)
async def create_artifact(
    request: Request, body: ArtifactCreate, database: DatabaseDep
) -> JSONResponse:
    async with database.write() as conn:
        row = await artifacts.create_artifact(conn, body, now=request_now(request))
    return json_response(artifact_to_wire(row), status_code=201)


@router.get("/{id:uuid}", response_model=Artifact)
async def read_artifact(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await artifacts.read_artifact(conn, id)
    return json_response(artifact_to_wire(row))


@router.get("/{key}/latest", response_model=Artifact)
async def read_latest_artifact(key: str, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row = await artifacts.read_latest_artifact(conn, key)
    return json_response(artifact_to_wire(row))


@router.post("/filter", response_model=list[Artifact])
async def read_artifacts(
    database: DatabaseDep, body: ArtifactFilterBody | None = None
) -> JSONResponse:
    body = body or ArtifactFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await artifacts.filter_artifacts(
            conn, t.artifact, body.artifacts, body, sort=body.sort, offset=body.offset, limit=limit
        )
    return json_response([artifact_to_wire(row) for row in rows])


@router.post("/latest/filter", response_model=list[ArtifactCollection])
async def read_latest_artifacts(
    database: DatabaseDep, body: LatestArtifactFilterBody | None = None
) -> JSONResponse:
    body = body or LatestArtifactFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await artifacts.filter_artifacts(
            conn,
            t.artifact_collection,
            body.artifacts,
            body,
            sort=body.sort,
            offset=body.offset,
            limit=limit,
        )
    return json_response([latest_artifact_to_wire(row) for row in rows])


@router.post("/count")
async def count_artifacts(database: DatabaseDep, body: ArtifactCountBody | None = None) -> int:
    body = body or ArtifactCountBody()
    async with database.read() as conn:
        return await artifacts.count_artifacts(conn, t.artifact, body.artifacts, body)


@router.post("/latest/count")
async def count_latest_artifacts(
    database: DatabaseDep, body: LatestArtifactCountBody | None = None
) -> int:
    body = body or LatestArtifactCountBody()
    async with database.read() as conn:
        return await artifacts.count_artifacts(conn, t.artifact_collection, body.artifacts, body)


@router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_artifact(
    request: Request, id: IdPath, body: ArtifactUpdate, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await artifacts.update_artifact(conn, id, body, now=request_now(request))
    return Response(status_code=204)


@router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_artifact(request: Request, id: IdPath, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await artifacts.delete_artifact(conn, id, now=request_now(request))
    return Response(status_code=204)
