"""Routes for /work_pools (pools, their queues, workers and the worker poll) and /work_queues
(queues by id, and legacy queues in ``default-agent-pool``)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Header, Path, Request, Response, status

from deputy.api.deps import CipherDep, DatabaseDep, IdPath, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.schemas.flow_runs import FlowRunResponse
from deputy.schemas.work_pools import (
    WorkPoolConcurrencyStatus,
    WorkPoolConcurrencyStatusBody,
    WorkPoolCountBody,
    WorkPoolCreate,
    WorkPoolFilterBody,
    WorkPoolResponse,
    WorkPoolUpdate,
    WorkQueueConcurrencyStatus,
    WorkQueueConcurrencyStatusBody,
    WorkQueueCreate,
    WorkQueueFilterBody,
    WorkQueueResponse,
    WorkQueueStatusDetail,
    WorkQueueUpdate,
    work_pool_to_wire,
    work_queue_to_wire,
)
from deputy.schemas.workers import (
    WorkerFilterBody,
    WorkerFlowRunResponse,
    WorkerHeartbeatBody,
    WorkerResponse,
    WorkerScheduledRunsBody,
    WorkQueueRunsBody,
    worker_to_wire,
)
from deputy.services.common import page_limit
from deputy.services.work_pools import polls, queues, workers
from deputy.services.work_pools import pools as work_pools
from deputy.services.work_pools import slots as slot_status
from deputy.services.work_pools.pools import DEFAULT_AGENT_POOL_NAME

router = FastRouter(prefix="/work_pools", tags=["Work Pools"])
work_queues_router = FastRouter(prefix="/work_queues", tags=["Work Queues"])

_CLIENT_AGENT = re.compile(r"^prefect/(\d+)\.(\d+)\.(\d+)\S* \(API \S+\)$")


def legacy_storage_client(
    user_agent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> bool:
    """True for Prefect clients up to 3.3.7, which reject ``default_result_storage_block_id``.

    The client's User-Agent is ``prefect/<version> (API <api version>)``.
    """
    match = _CLIENT_AGENT.match(user_agent or "")
    if match is None:
        return False
    return tuple(int(part) for part in match.groups()) <= (3, 3, 7)


LegacyClient = Annotated[bool, Depends(legacy_storage_client)]
PoolName = Annotated[str, Path(alias="name", description="The work pool name")]
QueuePoolName = Annotated[str, Path(description="The work pool name")]
QueueName = Annotated[str, Path(alias="name", description="The work pool queue name")]
WorkerName = Annotated[str, Path(alias="name", description="The work pool's worker name")]


# --- pools ------------------------------------------------------------------------------


@router.post("/", response_model=WorkPoolResponse, status_code=status.HTTP_201_CREATED)
async def create_work_pool(
    request: Request,
    body: WorkPoolCreate,
    database: DatabaseDep,
    legacy: LegacyClient,
    cipher: CipherDep,
) -> JSONResponse:
    """Create a pool with its ``default`` queue."""
    async with database.write() as conn:
        row = await work_pools.create_work_pool(conn, body, cipher=cipher, now=request_now(request))
    return json_response(work_pool_to_wire(row, legacy_client=legacy), status_code=201)


@router.post("/filter", response_model=list[WorkPoolResponse])
async def read_work_pools(
    database: DatabaseDep, legacy: LegacyClient, body: WorkPoolFilterBody | None = None
) -> JSONResponse:
    body = body or WorkPoolFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await work_pools.filter_work_pools(
            conn, body.work_pools, offset=body.offset, limit=limit
        )
        slots = await work_pools.pool_active_slots(conn, rows)
    return json_response(
        [work_pool_to_wire(r, slots.get(r.id), legacy_client=legacy) for r in rows]
    )


@router.post("/count")
async def count_work_pools(database: DatabaseDep, body: WorkPoolCountBody | None = None) -> int:
    async with database.read() as conn:
        return await work_pools.count_work_pools(conn, body.work_pools if body else None)


@router.get("/{name}", response_model=WorkPoolResponse)
async def read_work_pool(
    name: PoolName, database: DatabaseDep, legacy: LegacyClient
) -> JSONResponse:
    async with database.read() as conn:
        row = await work_pools.read_work_pool_by_name(conn, name)
        slots = await work_pools.pool_active_slots(conn, [row])
    return json_response(work_pool_to_wire(row, slots.get(row.id), legacy_client=legacy))


@router.patch("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def update_work_pool(
    request: Request, name: PoolName, body: WorkPoolUpdate, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await work_pools.update_work_pool(conn, name, body, now=request_now(request))
    return Response(status_code=204)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_work_pool(name: PoolName, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await work_pools.delete_work_pool(conn, name)
    return Response(status_code=204)


@router.post("/{name}/get_scheduled_flow_runs", response_model=list[WorkerFlowRunResponse])
async def get_scheduled_flow_runs(
    request: Request,
    name: PoolName,
    database: DatabaseDep,
    body: WorkerScheduledRunsBody | None = None,
) -> JSONResponse:
    """Load scheduled runs for a worker; the polled queues and their deployments are marked
    READY in the same transaction (only the rows whose mark is due)."""
    body = body or WorkerScheduledRunsBody()
    limit = page_limit(body.limit)
    async with database.write() as conn:
        results = await polls.get_scheduled_flow_runs(
            conn,
            name,
            queue_names=body.work_queue_names,
            scheduled_before=body.scheduled_before,
            scheduled_after=body.scheduled_after,
            limit=limit,
            now=request_now(request),
        )
    return json_response(results)


# --- queues of a pool -------------------------------------------------------------------


@router.post(
    "/{work_pool_name}/queues",
    response_model=WorkQueueResponse,
    status_code=status.HTTP_201_CREATED,
)
async def create_work_queue(
    request: Request, work_pool_name: QueuePoolName, body: WorkQueueCreate, database: DatabaseDep
) -> JSONResponse:
    """Create a queue; a taken priority pushes the holder and those after it down."""
    async with database.write() as conn:
        row = await queues.create_work_queue(conn, work_pool_name, body, now=request_now(request))
    return json_response(work_queue_to_wire(row, work_pool_name), status_code=201)


@router.post("/{work_pool_name}/queues/filter", response_model=list[WorkQueueResponse])
async def read_work_queues(
    work_pool_name: QueuePoolName,
    database: DatabaseDep,
    body: WorkQueueFilterBody | None = None,
) -> JSONResponse:
    body = body or WorkQueueFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await queues.filter_pool_queues(
            conn, work_pool_name, body.work_queues, offset=body.offset, limit=limit
        )
        slots = await queues.queue_active_slots(conn, rows)
    return json_response([work_queue_to_wire(r, work_pool_name, slots.get(r.id)) for r in rows])


@router.get("/{work_pool_name}/queues/{name}", response_model=WorkQueueResponse)
async def read_work_queue(
    work_pool_name: QueuePoolName, name: QueueName, database: DatabaseDep
) -> JSONResponse:
    async with database.read() as conn:
        row = await queues.read_work_queue(conn, work_pool_name, name)
        slots = await queues.queue_active_slots(conn, [row])
    return json_response(work_queue_to_wire(row, work_pool_name, slots.get(row.id)))


@router.patch("/{work_pool_name}/queues/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def update_work_queue(
    request: Request,
    work_pool_name: QueuePoolName,
    name: QueueName,
    body: WorkQueueUpdate,
    database: DatabaseDep,
) -> Response:
    async with database.write() as conn:
        await queues.update_work_queue(conn, work_pool_name, name, body, now=request_now(request))
    return Response(status_code=204)


@router.delete("/{work_pool_name}/queues/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_work_queue(
    request: Request, work_pool_name: QueuePoolName, name: QueueName, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await queues.delete_work_queue(conn, work_pool_name, name, now=request_now(request))
    return Response(status_code=204)


@router.post("/{name}/concurrency_status", response_model=WorkPoolConcurrencyStatus)
async def read_work_pool_concurrency_status(
    request: Request,
    name: str,
    database: DatabaseDep,
    body: WorkPoolConcurrencyStatusBody | None = None,
) -> JSONResponse:
    """Who holds the pool's slots, queue by queue (``prefect work-pool slots``)."""
    body = body or WorkPoolConcurrencyStatusBody()
    async with database.read() as conn:
        status_page = await slot_status.work_pool_slots(
            conn,
            name,
            page=body.page,
            limit=page_limit(body.limit),
            flow_run_limit=body.flow_run_limit,
            now=request_now(request),
        )
    return json_response(status_page)


# --- workers ----------------------------------------------------------------------------


@router.post("/{work_pool_name}/workers/heartbeat", status_code=status.HTTP_204_NO_CONTENT)
async def worker_heartbeat(
    request: Request,
    work_pool_name: QueuePoolName,
    body: WorkerHeartbeatBody,
    database: DatabaseDep,
) -> Response:
    """Record a worker's heartbeat (an upsert); the pool turns READY."""
    async with database.write() as conn:
        await workers.worker_heartbeat(
            conn,
            work_pool_name,
            body.name,
            body.heartbeat_interval_seconds,
            now=request_now(request),
        )
    return Response(status_code=204)


@router.post("/{work_pool_name}/workers/filter", response_model=list[WorkerResponse])
async def read_workers(
    work_pool_name: QueuePoolName, database: DatabaseDep, body: WorkerFilterBody | None = None
) -> JSONResponse:
    """Read a pool's workers, most recent heartbeat first."""
    body = body or WorkerFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await workers.read_workers(
            conn, work_pool_name, body.workers, offset=body.offset, limit=limit
        )
    return json_response([worker_to_wire(row) for row in rows])


@router.delete("/{work_pool_name}/workers/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_worker(
    work_pool_name: QueuePoolName, name: WorkerName, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await workers.delete_worker(conn, work_pool_name, name)
    return Response(status_code=204)


# --- /work_queues ----------------------------------------------------------------------


@work_queues_router.post("/", response_model=WorkQueueResponse, status_code=status.HTTP_201_CREATED)
async def create_legacy_work_queue(
    request: Request, body: WorkQueueCreate, database: DatabaseDep
) -> JSONResponse:
    """A queue in ``default-agent-pool`` (``create_work_queue`` without a pool's name)."""
    async with database.write() as conn:
        row = await queues.create_legacy_work_queue(conn, body, now=request_now(request))
    return json_response(work_queue_to_wire(row, DEFAULT_AGENT_POOL_NAME), status_code=201)


@work_queues_router.patch("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def update_work_queue_by_id(
    request: Request, id: IdPath, body: WorkQueueUpdate, database: DatabaseDep
) -> Response:
    async with database.write() as conn:
        await queues.update_work_queue_by_id(conn, id, body, now=request_now(request))
    return Response(status_code=204)


@work_queues_router.delete("/{id:uuid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_work_queue_by_id(request: Request, id: IdPath, database: DatabaseDep) -> Response:
    async with database.write() as conn:
        await queues.delete_work_queue_by_id(conn, id, now=request_now(request))
    return Response(status_code=204)


@work_queues_router.get("/{id:uuid}/status", response_model=WorkQueueStatusDetail)
async def read_work_queue_status(
    request: Request, id: IdPath, database: DatabaseDep
) -> JSONResponse:
    async with database.read() as conn:
        return json_response(
            await queues.read_work_queue_status(conn, id, now=request_now(request))
        )


@work_queues_router.post("/{id:uuid}/get_runs", response_model=list[FlowRunResponse])
async def read_work_queue_runs(
    request: Request,
    id: IdPath,
    database: DatabaseDep,
    body: WorkQueueRunsBody | None = None,
    x_prefect_ui: Annotated[bool | None, Header()] = False,
) -> JSONResponse:
    """A queue's runs to start, as an agent polled them; the UI's look is not a poll."""
    body = body or WorkQueueRunsBody()
    async with database.read() if x_prefect_ui else database.write() as conn:
        runs = await polls.read_work_queue_runs(
            conn,
            id,
            scheduled_before=body.scheduled_before,
            limit=page_limit(body.limit),
            mark_polled=not x_prefect_ui,
            now=request_now(request),
        )
    return json_response(runs)


@work_queues_router.post("/{id:uuid}/concurrency_status", response_model=WorkQueueConcurrencyStatus)
async def read_work_queue_concurrency_status(
    request: Request,
    id: IdPath,
    database: DatabaseDep,
    body: WorkQueueConcurrencyStatusBody | None = None,
) -> JSONResponse:
    """Who holds the queue's slots (``prefect work-queue slots``)."""
    body = body or WorkQueueConcurrencyStatusBody()
    async with database.read() as conn:
        status_page = await slot_status.work_queue_slots(
            conn, id, page=body.page, limit=page_limit(body.limit), now=request_now(request)
        )
    return json_response(status_page)


@work_queues_router.post("/filter", response_model=list[WorkQueueResponse])
async def filter_work_queues(
    database: DatabaseDep, body: WorkQueueFilterBody | None = None
) -> JSONResponse:
    """Queues of every pool, by name."""
    body = body or WorkQueueFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        found = await queues.filter_work_queues(
            conn, body.work_queues, offset=body.offset, limit=limit
        )
        slots = await queues.queue_active_slots(conn, [row for row, _ in found])
    return json_response([work_queue_to_wire(row, pool, slots.get(row.id)) for row, pool in found])


@work_queues_router.get("/name/{name}", response_model=WorkQueueResponse)
async def read_work_queue_by_name(name: str, database: DatabaseDep) -> JSONResponse:
    """A legacy queue by name: the one in ``default-agent-pool``."""
    async with database.read() as conn:
        row, pool_name = await queues.read_legacy_work_queue_by_name(conn, name)
        slots = await queues.queue_active_slots(conn, [row])
    return json_response(work_queue_to_wire(row, pool_name, slots.get(row.id)))


@work_queues_router.get("/{id:uuid}", response_model=WorkQueueResponse)
async def read_work_queue_by_id(id: IdPath, database: DatabaseDep) -> JSONResponse:
    async with database.read() as conn:
        row, pool_name = await queues.read_work_queue_by_id(conn, id)
        slots = await queues.queue_active_slots(conn, [row])
    return json_response(work_queue_to_wire(row, pool_name, slots.get(row.id)))
