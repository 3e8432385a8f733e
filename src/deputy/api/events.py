"""Routes for /events: the ``/events/in`` and ``/events/out`` websockets, and the reads."""

from __future__ import annotations

import datetime as dt
import logging
import urllib.parse
from typing import Annotated, Any

from fastapi import Body, Query, Request, Response, WebSocket, status
from pydantic import ValidationError

from deputy.api import sockets
from deputy.api.deps import DatabaseDep, request_now
from deputy.api.responses import FastRouter, JSONResponse, dumps, json_response
from deputy.db.engine import Database
from deputy.errors import Forbidden
from deputy.schemas.events import (
    MAXIMUM_LABELS_PER_RESOURCE,
    Countable,
    Event,
    EventCount,
    EventCountBody,
    EventFilter,
    EventFilterBody,
    EventPage,
)
from deputy.services.events import storage as event_storage
from deputy.services.events import stream as event_stream
from deputy.services.events.bus import bus

logger = logging.getLogger("deputy.api.events")

router = FastRouter(prefix="/events", tags=["Events"])

#: Largest event accepted on ``/events/in`` (Prefect's ``server.events.maximum_size_bytes``).
MAXIMUM_EVENT_BYTES = 1_500_000


def _received(event: Event, received: dt.datetime) -> dict[str, Any]:
    return {
        "occurred": event.occurred,
        "event": event.event,
        "resource": event.resource,
        "related": event.related,
        "payload": event.payload,
        "id": event.id,
        "follows": event.follows,
        "received": received,
    }


def _problem(event: Event) -> str | None:
    """What Prefect's resource rules refuse in an otherwise valid event, if anything."""
    if not event.resource.get("prefect.resource.id"):
        return "the resource has no prefect.resource.id"
    for labels in (event.resource, *event.related):
        if len(labels) > MAXIMUM_LABELS_PER_RESOURCE:
            return f"a resource has more than {MAXIMUM_LABELS_PER_RESOURCE} labels"
    for related in event.related:
        if not related.get("prefect.resource.id") or not related.get("prefect.resource.role"):
            return "a related resource lacks prefect.resource.id or prefect.resource.role"
    return None


def parse_event(raw: str | bytes, *, now: dt.datetime) -> dict[str, Any] | str:
    """A received event from one websocket frame (received ``now``), or why it was refused."""
    if len(raw) > MAXIMUM_EVENT_BYTES:
        return f"larger than {MAXIMUM_EVENT_BYTES} bytes"
    try:
        event = Event.model_validate_json(raw)
    except ValidationError as error:
        return f"{error.error_count()} validation errors: {error.errors()[0]['msg']}"
    problem = _problem(event)
    return problem if problem is not None else _received(event, now)


@router.post("", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def create_events(request: Request, events: Annotated[list[Event], Body()]) -> Response:
    """Record a batch of events (written by the event flusher, as streamed ones are)."""
    received = request_now(request)
    for event in events:
        problem = _problem(event)
        if problem is not None:
            logger.warning("event %s refused: %s", event.id, problem)
            continue
        bus.emit(_received(event, received))
    return Response(status_code=204)


@router.websocket("/in")
async def stream_events_in(websocket: WebSocket) -> None:
    """Events streamed by clients, one per frame. Each is checked and queued (no I/O on this
    path); an invalid event is logged and skipped, never closing the socket."""
    if not await sockets.accept_prefect_socket(websocket):
        return
    refused = 0
    while True:
        try:
            raw = await sockets.receive_text(websocket)
        except (sockets.Disconnected, RuntimeError):
            break
        parsed = parse_event(raw, now=request_now(websocket))  # each frame's own reading
        if isinstance(parsed, str):
            refused += 1
            log = logger.warning if refused == 1 else logger.debug
            log("event refused on /events/in: %s", parsed)
            continue
        bus.emit(parsed)


def _database(websocket: WebSocket) -> Database:
    database: Database = websocket.app.state.database
    return database


@router.websocket("/out")
async def stream_events_out(websocket: WebSocket) -> None:
    """Events matching the client's filter as ``{"type": "event", "event": {...}}``: first the
    stored ones of the last 15 minutes at most (unless ``"backfill": false``), oldest first,
    then live ones as they happen."""
    if not await sockets.accept_prefect_socket(websocket):
        return
    message = await sockets.receive_filter(websocket)
    if message is None:
        return
    try:
        flt = EventFilter.model_validate(message.get("filter") or {})
    except ValidationError as error:
        await sockets.close(websocket, sockets.WS_1002_PROTOCOL_ERROR, f"Invalid filter: {error}")
        return
    backfill = message.get("backfill", True) is not False
    now = request_now(websocket)
    async with event_stream.watch(_database(websocket), flt, backfill=backfill, now=now) as events:

        async def send_all() -> None:
            async for event in events:
                await websocket.send_text(dumps({"type": "event", "event": event}).decode())

        await sockets.stream_until_disconnected(websocket, send_all)


def _next_page_link(request: Request, token: str | None) -> str | None:
    if token is None:
        return None
    root = request.scope.get("root_path", "").rstrip("/")
    query = urllib.parse.urlencode({"page-token": token})
    return str(request.url.replace(path=f"{root}/events/filter/next", query=query))


def _page(request: Request, events: list[dict[str, Any]], total: int, token: str | None) -> Any:
    return {"events": events, "total": total, "next_page": _next_page_link(request, token)}


@router.post("/filter", response_model=EventPage)
async def read_events(
    request: Request, database: DatabaseDep, body: EventFilterBody | None = None
) -> JSONResponse:
    """The first page of matching events, the total, and a link to the next page."""
    body = body or EventFilterBody()
    flt = body.filter or EventFilter()
    async with database.read() as conn:
        events, total, token = await event_storage.query_events(conn, flt, body.limit)
    return json_response(_page(request, events, total, token))


@router.get("/filter/next", response_model=EventPage)
async def read_events_page(
    request: Request,
    database: DatabaseDep,
    page_token: Annotated[str, Query(alias="page-token")],
) -> JSONResponse:
    """A following page, named by the token of the previous page's ``next_page`` link."""
    async with database.read() as conn:
        try:
            events, total, token = await event_storage.query_next_page(conn, page_token)
        except event_storage.InvalidPageToken:
            raise Forbidden("Forbidden") from None
    return json_response(_page(request, events, total, token))


@router.post("/count-by/{countable}", response_model=list[EventCount])
async def count_events(
    request: Request, countable: Countable, database: DatabaseDep, body: EventCountBody
) -> JSONResponse:
    """Matching events counted by time bucket, event name or resource."""
    async with database.read() as conn:
        counts = await event_storage.count_events(
            conn,
            body.filter,
            countable,
            body.time_unit,
            body.time_interval,
            now=request_now(request),
        )
    return json_response(counts)
