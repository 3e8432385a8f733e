"""Artifact wire models, with Prefect 3.9.1's key rule and metadata truncation."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from deputy.schemas.core import Offset, lowercase_dashed
from deputy.schemas.filters import (
    ArtifactCollectionFilter,
    ArtifactFilter,
    ArtifactSort,
    TaskRunRelatedFilters,
)

#: Longest metadata value kept whole; a longer one is cut there and ends with "...".
MAX_METADATA_VALUE_LENGTH = 500


def _shorten_metadata(metadata: dict[str, str] | None) -> dict[str, str] | None:
    """Prefect keeps metadata short by cutting long values, never by refusing them."""
    if metadata is None:
        return None
    return {
        key: value
        if len(value) <= MAX_METADATA_VALUE_LENGTH
        else value[:MAX_METADATA_VALUE_LENGTH] + "..."
        for key, value in metadata.items()
    }


ArtifactKey = Annotated[str, lowercase_dashed("Artifact key")]
Metadata = Annotated[dict[str, str] | None, AfterValidator(_shorten_metadata)]
#: Any JSON value: a table's rows, a markdown string, a progress number...
ArtifactData = dict[str, Any] | Any | None


class ArtifactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: ArtifactKey | None = None
    type: str | None = None
    description: str | None = None
    data: ArtifactData = None
    metadata_: Metadata = None
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


class ArtifactUpdate(BaseModel):
    """Only the keys sent are written (``update_progress_artifact`` sends ``data`` alone)."""

    model_config = ConfigDict(extra="forbid")

    data: ArtifactData = None
    description: str | None = None
    metadata_: Metadata = None


class Artifact(BaseModel):
    """An artifact as answered (documentation only: routes return ``artifact_to_wire``)."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    key: str | None = None
    type: str | None = None
    description: str | None = None
    data: ArtifactData = None
    metadata_: dict[str, str] | None = None
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


class ArtifactCollection(Artifact):
    """A key's newest artifact, as ``/artifacts/latest/filter`` answers it."""

    key: str
    latest_id: uuid.UUID


class _ArtifactPage(TaskRunRelatedFilters):
    """What both ``/artifacts/filter`` bodies share; unknown top-level keys are ignored."""

    sort: ArtifactSort = ArtifactSort.ID_DESC
    limit: int | None = Field(default=None, description="Defaults to the server's page size.")
    offset: Offset = 0


class ArtifactFilterBody(_ArtifactPage):
    artifacts: ArtifactFilter | None = None


class ArtifactCountBody(TaskRunRelatedFilters):
    artifacts: ArtifactFilter | None = None


class LatestArtifactFilterBody(_ArtifactPage):
    """Body of ``POST /artifacts/latest/filter``: filters on each key's newest artifact."""

    artifacts: ArtifactCollectionFilter | None = None


class LatestArtifactCountBody(TaskRunRelatedFilters):
    artifacts: ArtifactCollectionFilter | None = None


#: What a version holds besides its key; a key's row copies them from its newest version.
VERSION_FIELDS = ("type", "description", "data", "metadata_", "flow_run_id", "task_run_id")
#: Prefect's Artifact fields, in its order.
_ARTIFACT_FIELDS = ("id", "created", "updated", "key", *VERSION_FIELDS)
#: Prefect's ArtifactCollection fields: the same, with the newest version's id after the key.
_LATEST_FIELDS = (*_ARTIFACT_FIELDS[:4], "latest_id", *_ARTIFACT_FIELDS[4:])


def artifact_to_wire(row: Any) -> dict[str, Any]:
    """An ``artifact`` row (or, for ``/artifacts/{key}/latest``, an ``artifact_collection``
    row, whose own id Prefect answers there) as Prefect's Artifact."""
    return {name: getattr(row, name) for name in _ARTIFACT_FIELDS}


def latest_artifact_to_wire(row: Any) -> dict[str, Any]:
    """An ``artifact_collection`` row as Prefect's ArtifactCollection."""
    return {name: getattr(row, name) for name in _LATEST_FIELDS}
