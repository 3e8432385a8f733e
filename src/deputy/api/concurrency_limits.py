"""Routes for /v2/concurrency_limits (global limits, slots and leases) and /concurrency_limits
(the v1 tag limits, kept as v2 limits named ``tag:<tag>``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Body, Path, Request, Response, status

from deputy.api.deps import DatabaseDep, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.orchestration.flow_context import DEFAULT_LEASE_SECONDS
from deputy.schemas.concurrency_limits import (
    ConcurrencyLeaseHolder,
    ConcurrencyLimit,
    ConcurrencyLimitCreate,
    ConcurrencyLimitV2,
    ConcurrencyLimitV2Create,
    ConcurrencyLimitV2Update,
    ConcurrencyLimitWithLeaseResponse,
    MinimalConcurrencyLimitResponse,
    global_limit_to_wire,
    limit_to_wire,
    minimal_limit_to_wire,
)
from deputy.schemas.core import MAX_OFFSET
from deputy.schemas.deployments import GlobalConcurrencyLimitResponse
from deputy.services.common import page_limit
from deputy.services.concurrency import leases, tag_limits
from deputy.services.concurrency import limits as concurrency_limits

router = FastRouter(prefix="/v2/concurrency_limits", tags=["Concurrency Limits V2"])
v1_router = FastRouter(prefix="/concurrency_limits", tags=["Concurrency Limits"])

IdOrName = Annotated[uuid.UUID | str, Path(description="The ID or name of the concurrency limit")]
Slots = Annotated[int, Body(gt=0)]
Names = Annotated[list[str], Body(min_length=1)]
#: Prefect's (older) FastAPI reads an explicit null for an optional body key as "not sent";
#: these keys accept null and the route applies the default.
ModeBody = Annotated[Literal["concurrency", "rate_limit"] | None, Body()]
LimitBody = Annotated[
    int | None,
    Body(description="Defaults to PREFECT_SERVER_API_DEFAULT_LIMIT if not provided."),
]
OffsetBody = Annotated[int | None, Body(ge=0, le=MAX_OFFSET)]
LeaseDuration = Annotated[
    float | None, Body(ge=60, le=86400, description="The duration of the lease in seconds.")
]


# --- v2: global concurrency limits ---------------------------------------------------------


@router.post("/", response_model=ConcurrencyLimitV2, status_code=status.HTTP_201_CREATED)
async def create_concurrency_limit_v2(
    request: Request, concurrency_limit: ConcurrencyLimitV2Create, database: DatabaseDep
) -> JSONResponse:
    """Create a global concurrency limit; a name already taken is a 409."""
    async with database.write() as conn:
        row = await concurrency_limits.create_limit(
            conn, concurrency_limit, now=request_now(request)
        )
    return json_response(limit_to_wire(row), status_code=201)


@router.get("/{id_or_name}", response_model=GlobalConcurrencyLimitResponse)
async def read_concurrency_limit_v2(
    request: Request, id_or_name: IdOrName, database: DatabaseDep
) -> JSONResponse:
    async with database.read() as conn:
        row = await concurrency_limits.read_limit(conn, id_or_name, now=request_now(request))
    return json_response(global_limit_to_wire(row))


@router.post("/filter", response_model=list[GlobalConcurrencyLimitResponse])
async def read_all_concurrency_limits_v2(
    request: Request, database: DatabaseDep, limit: LimitBody = None, offset: OffsetBody = 0
) -> JSONResponse:
    page = page_limit(limit)
    async with database.read() as conn:
        rows = await concurrency_limits.read_limits(
            conn, offset=offset or 0, limit=page, now=request_now(request)
        )
    return json_response([global_limit_to_wire(row) for row in rows])


@router.patch("/{id_or_name}", status_code=status.HTTP_204_NO_CONTENT)
async def update_concurrency_limit_v2(
    request: Request,
    concurrency_limit: ConcurrencyLimitV2Update,
    id_or_name: IdOrName,
    database: DatabaseDep,
) -> Response:
    async with database.write() as conn:
        await concurrency_limits.update_limit(
            conn, id_or_name, concurrency_limit, now=request_now(request)
        )
    return Response(status_code=204)


@router.delete("/{id_or_name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_concurrency_limit_v2(
    request: Request, id_or_name: IdOrName, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await concurrency_limits.delete_limit(conn, id_or_name, now=request_now(request))
    return Response(status_code=204)


@router.post("/increment", response_model=list[MinimalConcurrencyLimitResponse])
async def bulk_increment_active_slots(
    request: Request,
    slots: Slots,
    names: Names,
    database: DatabaseDep,
    mode: ModeBody = "concurrency",
    create_if_missing: Annotated[bool | None, Body(deprecated=True)] = None,
) -> JSONResponse:
    """Take ``slots`` on every active limit named, or none (423 with ``Retry-After``). Names
    without a limit are skipped; ``create_if_missing`` is ignored, as in Prefect 3."""
    async with database.write() as conn:
        acquisition = await concurrency_limits.acquire(
            conn, names, slots, mode or "concurrency", request_now(request)
        )
    if not acquisition.taken:
        raise concurrency_limits.Locked(retry_after=acquisition.retry_after)
    return json_response([minimal_limit_to_wire(row) for row in acquisition.limits])


@router.post("/increment-with-lease", response_model=ConcurrencyLimitWithLeaseResponse)
async def bulk_increment_active_slots_with_lease(
    request: Request,
    slots: Slots,
    names: Names,
    database: DatabaseDep,
    mode: ModeBody = "concurrency",
    lease_duration: LeaseDuration = DEFAULT_LEASE_SECONDS,
    holder: Annotated[
        ConcurrencyLeaseHolder | None,
        Body(
            description="The holder of the lease with type (flow_run, task_run, or "
            "deployment) and id."
        ),
    ] = None,
) -> JSONResponse:
    """Take the slots under a lease the client renews and releases. With no limit named,
    ``limits`` is empty and the client carries on without holding anything."""
    holder_json = holder.model_dump(mode="json") if holder is not None else None
    async with database.write() as conn:
        acquisition, lease_id = await leases.acquire_with_lease(
            conn,
            names,
            slots,
            mode or "concurrency",
            lease_duration if lease_duration is not None else DEFAULT_LEASE_SECONDS,
            holder_json,
            now=request_now(request),
        )
    if not acquisition.taken:
        raise concurrency_limits.Locked(retry_after=acquisition.retry_after)
    limits = [minimal_limit_to_wire(row) for row in acquisition.limits]
    return json_response({"lease_id": lease_id, "limits": limits})


@router.post("/decrement", response_model=list[MinimalConcurrencyLimitResponse])
async def bulk_decrement_active_slots(
    request: Request,
    slots: Slots,
    names: Names,
    database: DatabaseDep,
    occupancy_seconds: Annotated[float | None, Body(gt=0.0)] = None,
    create_if_missing: Annotated[bool | None, Body(deprecated=True)] = None,
) -> JSONResponse:
    async with database.write() as conn:
        rows = await concurrency_limits.decrement(
            conn, names, slots, occupancy_seconds, now=request_now(request)
        )
    return json_response([minimal_limit_to_wire(row) for row in rows])


@router.post("/decrement-with-lease", status_code=status.HTTP_204_NO_CONTENT)
async def bulk_decrement_active_slots_with_lease(
    request: Request,
    lease_id: Annotated[
        uuid.UUID,
        Body(
            embed=True,
            description="The ID of the lease corresponding to the concurrency limits to decrement.",
        ),
    ],
    database: DatabaseDep,
) -> Response:
    """Release the lease and give its slots back; a lease already gone is no error."""
    async with database.write() as conn:
        await leases.release_lease(conn, lease_id, now=request_now(request))
    return Response(status_code=204)


@router.post("/leases/{lease_id}/renew", status_code=status.HTTP_204_NO_CONTENT)
async def renew_concurrency_lease(
    request: Request,
    lease_id: Annotated[uuid.UUID, Path(description="The ID of the lease to renew")],
    database: DatabaseDep,
    lease_duration: Annotated[
        float | None,
        Body(ge=60, le=86400, embed=True, description="The duration of the lease in seconds."),
    ] = 300,
) -> Response:
    """Keep a concurrency lease alive; 410 once it expired or was revoked."""
    duration = lease_duration if lease_duration is not None else DEFAULT_LEASE_SECONDS
    async with database.write() as conn:
        await leases.renew_lease(conn, lease_id, duration, now=request_now(request))
    return Response(status_code=204)


# --- v1: tag concurrency limits ------------------------------------------------------------


@v1_router.post("/", response_model=ConcurrencyLimit)
async def create_concurrency_limit(
    request: Request, concurrency_limit: ConcurrencyLimitCreate, database: DatabaseDep
) -> JSONResponse:
    """Create the tag's limit (201) or change the limit of the existing one (200)."""
    async with database.write() as conn:
        body, created = await tag_limits.upsert_tag_limit(
            conn,
            concurrency_limit.tag,
            concurrency_limit.concurrency_limit,
            now=request_now(request),
        )
    return json_response(body, status_code=201 if created else 200)


@v1_router.get("/{id:uuid}", response_model=ConcurrencyLimit)
async def read_concurrency_limit(
    request: Request,
    id: Annotated[uuid.UUID, Path(alias="id", description="The concurrency limit id")],
    database: DatabaseDep,
) -> JSONResponse:
    """A tag limit by id; ``active_slots`` lists the task runs holding a slot."""
    async with database.read() as conn:
        body = await tag_limits.read_tag_limit_by_id(conn, id, now=request_now(request))
    return json_response(body)


@v1_router.get("/tag/{tag}", response_model=ConcurrencyLimit)
async def read_concurrency_limit_by_tag(
    request: Request, tag: Annotated[str, Path(description="The tag name")], database: DatabaseDep
) -> JSONResponse:
    async with database.read() as conn:
        body = await tag_limits.read_tag_limit(conn, tag, now=request_now(request))
    return json_response(body)


@v1_router.post("/filter", response_model=list[ConcurrencyLimit])
async def read_concurrency_limits(
    request: Request, database: DatabaseDep, limit: LimitBody = None, offset: OffsetBody = 0
) -> JSONResponse:
    page = page_limit(limit)
    async with database.read() as conn:
        bodies = await tag_limits.read_tag_limits(
            conn, offset=offset or 0, limit=page, now=request_now(request)
        )
    return json_response(bodies)


@v1_router.post("/tag/{tag}/reset")
async def reset_concurrency_limit_by_tag(
    request: Request,
    tag: Annotated[str, Path(description="The tag name")],
    database: DatabaseDep,
    slot_override: Annotated[
        list[uuid.UUID] | None,
        Body(embed=True, description="Manual override for active concurrency limit slots."),
    ] = None,
) -> None:
    async with database.write() as conn:
        await tag_limits.reset_tag_limit(conn, tag, slot_override, now=request_now(request))


@v1_router.delete("/{id:uuid}")
async def delete_concurrency_limit(
    request: Request,
    id: Annotated[uuid.UUID, Path(alias="id", description="The concurrency limit id")],
    database: DatabaseDep,
) -> None:
    async with database.write() as conn:
        await tag_limits.delete_limit_by_id(conn, id, now=request_now(request))


@v1_router.delete("/tag/{tag}")
async def delete_concurrency_limit_by_tag(
    request: Request, tag: Annotated[str, Path(description="The tag name")], database: DatabaseDep
) -> None:
    async with database.write() as conn:
        await tag_limits.delete_tag_limit(conn, tag, now=request_now(request))


@v1_router.post("/increment", response_model=list[MinimalConcurrencyLimitResponse])
async def increment_concurrency_limits_v1(
    request: Request,
    names: Annotated[list[str], Body(description="The tags to acquire a slot for")],
    task_run_id: Annotated[
        uuid.UUID, Body(description="The ID of the task run acquiring the slot")
    ],
    database: DatabaseDep,
) -> JSONResponse:
    async with database.write() as conn:
        taken = await tag_limits.increment_tags(conn, names, task_run_id, now=request_now(request))
    return json_response(taken)


@v1_router.post("/decrement", response_model=list[MinimalConcurrencyLimitResponse])
async def decrement_concurrency_limits_v1(
    request: Request,
    names: Annotated[list[str], Body(description="The tags to release a slot for")],
    task_run_id: Annotated[
        uuid.UUID, Body(description="The ID of the task run releasing the slot")
    ],
    database: DatabaseDep,
) -> JSONResponse:
    async with database.write() as conn:
        released = await tag_limits.decrement_tags(
            conn, names, task_run_id, now=request_now(request)
        )
    return json_response(released)
