"""Concurrency limit wire models: global (v2) limits, leases, and the v1 tag limits.

Prefect 3 keeps tag limits as v2 limits named ``tag:<tag>``; the v1 shape (``tag``,
``concurrency_limit``, ``active_slots`` as the task runs holding a slot) is built from them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt

from deputy.schemas.flows import Name

#: The v2 limit a v1 tag limit is stored as.
TAG_PREFIX = "tag:"


class ConcurrencyLimitV2Create(BaseModel):
    """Data used to create a v2 concurrency limit."""

    model_config = ConfigDict(extra="forbid")

    active: bool = Field(default=True, description="Whether the concurrency limit is active.")
    name: Name = Field(description="The name of the concurrency limit.")
    limit: NonNegativeInt = Field(description="The concurrency limit.")
    active_slots: NonNegativeInt = Field(default=0, description="The number of active slots.")
    denied_slots: NonNegativeInt = Field(default=0, description="The number of denied slots.")
    slot_decay_per_second: NonNegativeFloat = Field(
        default=0, description="The decay rate for active slots when used as a rate limit."
    )


class ConcurrencyLimitV2Update(BaseModel):
    """Data used to update a v2 concurrency limit; only the keys sent are changed."""

    model_config = ConfigDict(extra="forbid")

    active: bool | None = None
    name: Name | None = None
    limit: NonNegativeInt | None = None
    active_slots: NonNegativeInt | None = None
    denied_slots: NonNegativeInt | None = None
    slot_decay_per_second: NonNegativeFloat | None = None


class ConcurrencyLimitV2(BaseModel):
    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    active: bool = True
    name: Name
    limit: int
    active_slots: int = 0
    denied_slots: int = 0
    slot_decay_per_second: float = 0
    avg_slot_occupancy_seconds: float = 2.0


class MinimalConcurrencyLimitResponse(BaseModel):
    id: uuid.UUID
    name: str
    limit: int


class ConcurrencyLimitWithLeaseResponse(BaseModel):
    lease_id: uuid.UUID
    limits: list[MinimalConcurrencyLimitResponse]


class ConcurrencyLeaseHolder(BaseModel):
    """Who holds a lease: a flow run, a task run or a deployment."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["flow_run", "task_run", "deployment"]
    id: uuid.UUID


class ConcurrencyLimitCreate(BaseModel):
    """Data used to create (or change) a v1 tag concurrency limit."""

    model_config = ConfigDict(extra="forbid")

    tag: str = Field(description="A tag the concurrency limit is applied to.")
    concurrency_limit: int = Field(description="The concurrency limit.")


class ConcurrencyLimit(BaseModel):
    """A v1 tag concurrency limit."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    tag: str = Field(description="A tag the concurrency limit is applied to.")
    concurrency_limit: int = Field(description="The concurrency limit.")
    active_slots: list[uuid.UUID] = Field(
        default_factory=list, description="A list of active run ids using a concurrency slot"
    )


def limit_to_wire(row: Any) -> dict[str, Any]:
    """A ``concurrency_limit_v2`` row as Prefect's ``ConcurrencyLimitV2``."""
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "active": row.active,
        "name": row.name,
        "limit": row.limit,
        "active_slots": row.active_slots,
        "denied_slots": row.denied_slots,
        # floats even when SQLite hands back the integers it was given
        "slot_decay_per_second": float(row.slot_decay_per_second),
        "avg_slot_occupancy_seconds": float(row.avg_slot_occupancy_seconds),
    }


def global_limit_to_wire(row: Any) -> dict[str, Any]:
    """A limit read with its decayed ``active_slots``, as ``GlobalConcurrencyLimitResponse``."""
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "active": row.active,
        "name": row.name,
        "limit": row.limit,
        "active_slots": int(row.active_slots),
        "slot_decay_per_second": float(row.slot_decay_per_second),
    }


def minimal_limit_to_wire(row: Any, name: str | None = None) -> dict[str, Any]:
    return {"id": row.id, "name": row.name if name is None else name, "limit": row.limit}


def tag_limit_to_wire(row: Any, holders: list[str]) -> dict[str, Any]:
    """A ``tag:<tag>`` limit in the v1 shape; ``holders`` are the task runs holding a slot."""
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "tag": row.name.removeprefix(TAG_PREFIX),
        "concurrency_limit": row.limit,
        "active_slots": holders,
    }
