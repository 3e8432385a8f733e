"""What ``/events/out`` streams to one client: the stored events of the last 15 minutes at
most (the backfill), oldest first, then live ones as they happen, each event once.

The subscription to the bus starts before the backfill is read, so an event stored while the
backfill is being sent is not missed; when it then arrives live as well, it is skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing, asynccontextmanager

from deputy.db.engine import Database
from deputy.schemas.events import EventFilter, EventOrder
from deputy.services.events import storage
from deputy.services.events.bus import Event, bus

#: Events sent per backfill page (Prefect's websocket backfill page size).
BACKFILL_PAGE_SIZE = 250
#: How far back the backfill reaches at most (Prefect's maximum websocket backfill).
MAXIMUM_BACKFILL = dt.timedelta(minutes=15)


@asynccontextmanager
async def watch(
    database: Database, flt: EventFilter, *, backfill: bool, now: dt.datetime
) -> AsyncIterator[AsyncIterator[Event]]:
    """Subscribe to the events matching ``flt`` (none older than ``MAXIMUM_BACKFILL``) and
    yield them: the stored ones first when ``backfill``, then the live ones."""
    flt = flt.model_copy(deep=True)
    flt.occurred.since = max(flt.occurred.since, now - MAXIMUM_BACKFILL)
    flt.order = EventOrder.ASC
    async with (
        bus.subscribe(flt) as queue,
        aclosing(_stream(database, flt, queue, backfill=backfill)) as events,
    ):
        yield events


async def _stream(
    database: Database, flt: EventFilter, queue: asyncio.Queue[Event], *, backfill: bool
) -> AsyncGenerator[Event, None]:
    backfilled: set[uuid.UUID] = set()
    if backfill:
        async with aclosing(_stored(database, flt)) as stored:
            async for event in stored:
                backfilled.add(event["id"])
                yield event
    while True:
        event = await queue.get()
        if event["id"] in backfilled:
            backfilled.discard(event["id"])
            continue
        yield event


async def _stored(database: Database, flt: EventFilter) -> AsyncGenerator[Event, None]:
    """The stored events matching ``flt``, a page per read transaction."""
    async with database.read() as conn:
        page, _, token = await storage.query_events(conn, flt, BACKFILL_PAGE_SIZE)
    while True:
        for event in page:
            yield event
        if token is None:
            return
        async with database.read() as conn:
            page, _, token = await storage.query_next_page(conn, token)
