"""Flow wire models."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from deputy.schemas.core import KeyValueLabels, Offset, Page
from deputy.schemas.filters import FlowRelatedFilters, FlowSort

#: Prefect's rule for object names: no '/', '%', '&', '>' or '<'.
Name = Annotated[str, Field(pattern=r"^[^/%&><]+$")]


class FlowCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    tags: list[str] = Field(default_factory=list)
    labels: KeyValueLabels | None = Field(default_factory=dict)


class FlowUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list)


class Flow(BaseModel):
    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: Name
    tags: list[str] = Field(default_factory=list)
    labels: KeyValueLabels | None = None


class FlowFilterBody(FlowRelatedFilters):
    offset: Offset = 0
    limit: int | None = None
    sort: FlowSort = FlowSort.NAME_ASC


class FlowPaginateBody(FlowRelatedFilters):
    page: Page = 1
    limit: int | None = None
    sort: FlowSort = FlowSort.NAME_ASC


class FlowCountBody(FlowRelatedFilters):
    pass


class FlowPaginationResponse(BaseModel):
    results: list[Flow]
    count: int
    limit: int
    pages: int
    page: int


def flow_to_wire(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "name": row.name,
        "tags": row.tags,
        "labels": row.labels,
    }
