"""Routes for /logs: store batches, filter, and the live ``/logs/out`` websocket."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Request, WebSocket, status
from pydantic import ValidationError

from deputy.api import sockets
from deputy.api.deps import DatabaseDep, request_now
from deputy.api.responses import FastRouter, JSONResponse, dumps, json_response
from deputy.schemas.logs import Log, LogCreate, LogFilter, LogFilterBody
from deputy.services import logs
from deputy.services.common import page_limit

router = FastRouter(prefix="/logs", tags=["Logs"])


@router.post("/", status_code=status.HTTP_201_CREATED)
async def create_logs(
    request: Request, database: DatabaseDep, body: Annotated[list[LogCreate], Body()]
) -> JSONResponse:
    """Store a batch of logs (one INSERT), then hand them to live ``/logs/out`` subscribers."""
    async with database.write() as conn:
        rows = await logs.create_logs(conn, body, now=request_now(request))
    logs.publish(rows)
    return json_response(None, status_code=201)


@router.post("/filter", response_model=list[Log])
async def read_logs(database: DatabaseDep, body: LogFilterBody | None = None) -> JSONResponse:
    body = body or LogFilterBody()
    limit = page_limit(body.limit)
    async with database.read() as conn:
        rows = await logs.read_logs(
            conn, body.logs, sort=body.sort, offset=body.offset, limit=limit
        )
    return json_response(rows)


@router.websocket("/out")
async def stream_logs_out(websocket: WebSocket) -> None:
    """Live logs matching the client's filter, as ``{"type": "log", "log": {...}}``; no
    backfill, as in Prefect."""
    if not await sockets.accept_prefect_socket(websocket):
        return
    message = await sockets.receive_filter(websocket)
    if message is None:
        return
    try:
        flt = LogFilter.model_validate(message.get("filter") or {})
    except ValidationError as error:
        await sockets.close(websocket, sockets.WS_1002_PROTOCOL_ERROR, f"Invalid filter: {error}")
        return

    async with logs.subscribe(flt) as queue:

        async def send_all() -> None:
            while True:
                log: dict[str, Any] = await queue.get()
                await websocket.send_text(dumps({"type": "log", "log": log}).decode())

        await sockets.stream_until_disconnected(websocket, send_all)
