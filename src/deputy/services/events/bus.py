"""The in-process event bus: ``emit`` from anywhere, persisted and streamed in batches.

``emit(event)`` appends to a queue and returns: it is called from the hot paths (every
written flow-run state) and from ``/events/in`` for every client event, so it does no I/O.
A flusher task, started with the app, wakes when events arrive, waits ``FLUSH_DELAY_SECONDS``
so a burst travels together, then for each batch of at most ``BATCH_SIZE``:

1. hands the events to the live ``/events/out`` subscribers whose filter matches (each has a
   bounded queue; a subscriber that falls ``SUBSCRIPTION_BACKLOG`` behind loses events, as in
   Prefect);
2. writes them in ONE transaction (``event`` + ``event_resource`` rows, duplicates by id
   ignored), and hands each newly stored event to the recorders of its name (given to
   ``start`` by the app: ``prefect.task-run.*`` events become task runs) in the same
   transaction. When the batch fails, its events are retried one transaction each, so one bad
   event is logged and skipped without losing the others.

Memory is bounded: beyond ``MAX_QUEUED`` waiting events the oldest are dropped, counted and
logged. Stopping the app flushes what is queued. Without a running flusher (services called
directly, in tests) ``emit`` does nothing.

Events are plain dicts shaped like Prefect's ``ReceivedEvent``: ``occurred`` and ``received``
are aware datetimes, ``id``/``follows`` UUIDs, ``resource`` a dict of string labels,
``related`` a list of them, ``payload`` JSON data.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from deputy.db.connection import Connection
from deputy.db.engine import Database
from deputy.schemas.events import EventFilter
from deputy.services import common
from deputy.services.common import Clock
from deputy.services.events import storage
from deputy.services.events.match import matches
from deputy.text_search import ParsedQuery, parse

logger = logging.getLogger("deputy.services.events.bus")

#: How long the flusher lets events gather after the first one arrives.
FLUSH_DELAY_SECONDS = 0.05
#: Most events written in one transaction.
BATCH_SIZE = 100
#: Most events waiting to be written; beyond it the oldest are dropped.
MAX_QUEUED = 20_000
#: Most events waiting for one live subscriber; beyond it new ones are dropped for it.
SUBSCRIPTION_BACKLOG = 256

#: An event as the bus holds it (shaped like Prefect's ``ReceivedEvent``, see above).
Event = dict[str, Any]


class Recorder(Protocol):
    """Records a stored event into the tables of its domain, inside the bus's transaction
    (``now``: the clock read once that transaction began)."""

    def __call__(
        self, conn: Connection, event: Event, /, *, now: dt.datetime
    ) -> Awaitable[None]: ...


class _Subscriber:
    __slots__ = ("filter", "queue", "text")

    def __init__(self, flt: EventFilter) -> None:
        self.filter = flt
        self.queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIPTION_BACKLOG)
        self.text: ParsedQuery | None = parse(flt.text.query) if flt.text is not None else None


#: How often the relay looks for events stored by other server processes, how far back it
#: looks past its last look (for commits landing late), how many it reads at once, and how
#: many streamed ids it remembers to avoid streaming an event twice.
RELAY_INTERVAL_SECONDS = 0.5
RELAY_MARGIN_SECONDS = 5.0
RELAY_BATCH = 1000
MAX_REMEMBERED_STREAMED = 100_000


class EventBus:
    """The queue, its flusher, and the live subscribers of one server process."""

    def __init__(self) -> None:
        self._queue: deque[Event | tuple[Callable[..., Event], tuple[Any, ...]]] = deque()
        self._subscribers: set[_Subscriber] = set()
        self._database: Database | None = None
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.dropped = 0
        self._last_drop_log = 0.0
        # Ids already streamed to this process's subscribers (its own events and relayed ones),
        # so the relay never streams an event twice; bounded, oldest forgotten first.
        self._streamed: OrderedDict[str, None] = OrderedDict()
        self._relay: asyncio.Task[None] | None = None
        self._recorders: Mapping[str, Recorder] = {}
        self._clock: Clock = common.now

    @property
    def active(self) -> bool:
        """Whether a flusher runs (otherwise ``emit`` ignores events)."""
        return self._wakeup is not None

    # --- producing ---------------------------------------------------------------------

    def emit(self, event: Event) -> None:
        """Queue one event; O(1), no I/O. Ignored when no flusher runs."""
        self._enqueue(event)

    def emit_later(self, build: Callable[..., Event], *args: Any) -> None:
        """Queue an event that the flusher builds with ``build(*args)``: the hot paths hand
        over what they have and pay nothing for shaping it. ``args`` must not change later."""
        self._enqueue((build, args))

    def _enqueue(self, item: Event | tuple[Callable[..., Event], tuple[Any, ...]]) -> None:
        wakeup = self._wakeup
        if wakeup is None:
            return
        if len(self._queue) >= MAX_QUEUED:
            self._queue.popleft()
            self._count_drop()
        self._queue.append(item)
        if not wakeup.is_set():
            wakeup.set()

    def _count_drop(self) -> None:
        self.dropped += 1
        moment = time.monotonic()
        if moment - self._last_drop_log >= 10:
            self._last_drop_log = moment
            logger.warning(
                "event queue full (%d waiting): dropping the oldest events; %d dropped so far",
                MAX_QUEUED,
                self.dropped,
            )

    # --- lifecycle ---------------------------------------------------------------------

    def start(
        self,
        database: Database,
        *,
        recorders: Mapping[str, Recorder] | None = None,
        clock: Clock,
    ) -> None:
        """Start the flusher for ``database`` (the app's lifespan calls this). ``recorders``
        maps an event-name prefix to what records the stored events so named: the bus knows
        no domain, the app says which events update which tables. ``clock`` is the app's."""
        self._database = database
        self._recorders = dict(recorders or {})
        self._clock = clock
        self._queue.clear()
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="deputy: event flusher")
        self._relay = asyncio.create_task(self._relay_forever(), name="deputy: event relay")

    async def stop(self) -> None:
        """Let the flusher finish the batch it is writing, then write whatever is queued."""
        task, self._task = self._task, None
        relay, self._relay = self._relay, None
        if relay is not None:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        self._stopping = True
        if self._wakeup is not None:
            self._wakeup.set()
        try:
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
            self._wakeup = None  # emit() is a no-op from here on
            await self._drain()
        finally:
            self._wakeup = None
            self._database = None
            self._recorders = {}
            self._stopping = False

    async def flush(self) -> None:
        """Write (and stream) everything queued now, without waiting for the flusher."""
        await self._drain()

    async def _run(self) -> None:
        while True:
            wakeup = self._wakeup
            assert wakeup is not None
            await wakeup.wait()
            if not self._stopping:
                await asyncio.sleep(FLUSH_DELAY_SECONDS)
            wakeup.clear()  # events emitted from here on wake the next round
            try:
                await self._drain(len(self._queue))
            except Exception:  # never let the flusher die
                logger.exception("writing events failed")
            if self._stopping:
                return

    async def _drain(self, limit: int | None = None) -> None:
        """Write the queued events (at most ``limit``), ``BATCH_SIZE`` per transaction."""
        remaining = len(self._queue) if limit is None else limit
        while self._queue and remaining > 0:
            count = min(len(self._queue), BATCH_SIZE, remaining)
            remaining -= count
            batch = [event for event in map(_built, self._take(count)) if event is not None]
            self._fan_out(batch)
            await self._persist(batch)
            await asyncio.sleep(0)  # let requests in between batches

    def _take(self, count: int) -> list[Event | tuple[Callable[..., Event], tuple[Any, ...]]]:
        return [self._queue.popleft() for _ in range(count)]

    async def _persist(self, batch: list[Event]) -> None:
        database = self._database
        if database is None:
            return
        try:
            await persist(database, batch, self._recorders, self._clock)
            return
        except Exception:
            if len(batch) == 1:
                logger.exception("event %s could not be recorded; skipped", batch[0].get("id"))
                return
            logger.warning("a batch of %d events failed; retrying one by one", len(batch))
        for event in batch:
            try:
                await persist(database, [event], self._recorders, self._clock)
            except Exception:
                logger.exception("event %s could not be recorded; skipped", event.get("id"))

    # --- subscribing -------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(self, flt: EventFilter) -> AsyncIterator[asyncio.Queue[Event]]:
        """A queue receiving every event emitted from now on that matches ``flt``."""
        subscriber = _Subscriber(flt)
        self._subscribers.add(subscriber)
        try:
            yield subscriber.queue
        finally:
            self._subscribers.discard(subscriber)

    async def _relay_forever(self) -> None:
        """Stream events other server processes stored to this process's subscribers.

        Replicas share the database, not memory: a worker connected to one replica must still
        hear of a run cancelled through another. While anyone is subscribed, this reads the
        events stored since the last look (with a margin for commits landing late) and streams
        those not streamed yet.
        """
        watermark = self._clock()
        while True:
            await asyncio.sleep(RELAY_INTERVAL_SECONDS)
            database = self._database
            if database is None or not self._subscribers:
                watermark = self._clock()
                continue
            try:
                async with database.read() as conn:
                    stored = await storage.events_recorded_since(
                        conn, watermark - dt.timedelta(seconds=RELAY_MARGIN_SECONDS), RELAY_BATCH
                    )
            except Exception:
                logger.exception("reading events for the relay failed")
                continue
            fresh = [event for _, event in stored if str(event.get("id")) not in self._streamed]
            if stored:
                watermark = max(watermark, stored[-1][0])
            if fresh:
                self._fan_out(fresh)

    def _remember_streamed(self, batch: list[Event]) -> None:
        for event in batch:
            self._streamed[str(event.get("id"))] = None
        while len(self._streamed) > MAX_REMEMBERED_STREAMED:
            self._streamed.popitem(last=False)

    def _fan_out(self, batch: list[Event]) -> None:
        self._remember_streamed(batch)
        for subscriber in list(self._subscribers):
            for event in batch:
                if matches(subscriber.filter, event, subscriber.text):
                    try:
                        subscriber.queue.put_nowait(event)
                    except asyncio.QueueFull:
                        break


def _built(item: Event | tuple[Callable[..., Event], tuple[Any, ...]]) -> Event | None:
    if isinstance(item, dict):
        return item
    build, args = item
    try:
        return build(*args)
    except Exception:
        logger.exception("an event could not be built; skipped")
        return None


#: The bus of this process.
bus = EventBus()


async def persist(
    database: Database, batch: Sequence[Event], recorders: Mapping[str, Recorder], clock: Clock
) -> None:
    """Write events in one transaction; each newly stored event is also handed, in that
    transaction, to the recorders whose prefix its name starts with (once per id).

    Unlike a service, this opens and commits its own transaction: the bus is a background
    writer, like the scheduler loop, and no request waits for (or could own) its writes.
    """
    async with database.write() as conn:
        now = clock()  # once the transaction has begun, as a request's
        inserted = await storage.write_events(conn, batch, now=now)
        if not recorders or not inserted:
            return
        for event in batch:
            if event["id"] in inserted:
                inserted.discard(event["id"])  # a repeated id is recorded once
                for prefix, record in recorders.items():
                    if event["event"].startswith(prefix):
                        await record(conn, event, now=now)
