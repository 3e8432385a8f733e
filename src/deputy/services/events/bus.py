"""The in-process event bus: ``emit`` from anywhere, persisted and streamed in batches.

``emit(event)`` appends to a queue and returns: it is called from the hot paths (every
written flow-run state) and from ``/events/in`` for every client event, so it does no I/O.
A flusher task, started with the app, wakes when events arrive, waits ``FLUSH_DELAY_SECONDS``
so a burst travels together, then for each batch of at most ``BATCH_SIZE``:

1. hands the events to the live ``/events/out`` subscribers whose filter matches (each has a
   bounded queue; a subscriber that falls ``SUBSCRIPTION_BACKLOG`` behind loses events, as in
   Prefect);
2. writes them in ONE transaction (``event`` + ``event_resource`` rows, duplicates by id
   ignored), recording ``prefect.task-run.*`` events into task runs in the same transaction.
   When the batch fails, its events are retried one transaction each, so one bad event is
   logged and skipped without losing the others.

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
import fnmatch
import functools
import importlib
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from deputy.db.engine import Database
from deputy.schemas.events import EventAnyResourceFilter, EventFilter, EventRelatedFilter
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
#: State messages longer than this are shortened in events, as Prefect does.
TRUNCATE_STATE_MESSAGES_AT = 100_000

Event = dict[str, Any]


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

    def start(self, database: Database) -> None:
        """Start the flusher for ``database`` (the app's lifespan calls this)."""
        self._database = database
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
            await persist(database, batch)
            return
        except Exception:
            if len(batch) == 1:
                logger.exception("event %s could not be recorded; skipped", batch[0].get("id"))
                return
            logger.warning("a batch of %d events failed; retrying one by one", len(batch))
        for event in batch:
            try:
                await persist(database, [event])
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
        from deputy.services.events import storage as event_storage

        watermark = dt.datetime.now(dt.UTC)
        while True:
            await asyncio.sleep(RELAY_INTERVAL_SECONDS)
            database = self._database
            if database is None or not self._subscribers:
                watermark = dt.datetime.now(dt.UTC)
                continue
            try:
                async with database.read() as conn:
                    stored = await event_storage.events_recorded_since(
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
emit = bus.emit


async def persist(database: Database, batch: Sequence[Event]) -> None:
    """Write events in one transaction; task-run events also update their task runs."""
    from deputy.services.events import storage as event_storage

    async with database.write() as conn:
        inserted = await event_storage.write_events(conn, batch)
        recorder = _task_run_recorder()
        if recorder is None or not inserted:
            return
        for event in batch:
            if event["id"] in inserted and event["event"].startswith("prefect.task-run."):
                inserted.discard(event["id"])  # a repeated id is recorded once
                await recorder(conn, event)


@functools.cache
def _task_run_recorder() -> Any:
    """``deputy.services.task_runs.crud.record_task_run_event`` (imported late: task runs build on
    this module), or None while there is none."""
    try:
        module = importlib.import_module("deputy.services.task_runs.crud")
    except ImportError:
        return None
    return getattr(module, "record_task_run_event", None)


# --- events the server itself emits -------------------------------------------------------


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def _truncated(text: str | None, length: int = TRUNCATE_STATE_MESSAGES_AT) -> str:
    """Prefect's ``truncated_to``: the middle of a long text replaced by a count."""
    if not text:
        return ""
    if len(text) <= length:
        return text
    half = length // 2
    omitted = len(text) - 2 * half
    shortened = f"{text[:half]}...{omitted} additional characters...{text[-half:]}"
    return shortened if len(shortened) < len(text) else text


def _state_payload(state: Mapping[str, Any] | None) -> dict[str, str] | None:
    if state is None:
        return None
    payload = {"type": state["type"]}
    if state.get("name"):
        payload["name"] = state["name"]
    if state.get("message"):
        payload["message"] = _truncated(state["message"])
    if state["type"] == "PAUSED":
        details = state.get("state_details") or {}
        payload["pause_reschedule"] = str(bool(details.get("pause_reschedule"))).lower()
    return payload


_TIGHT_TIMING = dt.timedelta(minutes=5)


def flow_run_related(
    *,
    run_tags: Sequence[str] | None,
    flow_id: Any,
    flow_name: str | None,
    flow_tags: Sequence[str] | None = None,
    deployment_id: Any = None,
    deployment_name: str | None = None,
    deployment_tags: Sequence[str] | None = None,
    queue_id: Any = None,
    queue_name: str | None = None,
    pool_id: Any = None,
    pool_name: str | None = None,
    pool_type: str | None = None,
    parent_task_run_id: Any = None,
    parent_task_run_name: str | None = None,
    parent_task_run_tags: Sequence[str] | None = None,
    created_by: Mapping[str, Any] | None = None,
) -> list[dict[str, str]]:
    """A flow run's related resources, as Prefect lists them: flow, deployment, work queue,
    work pool (with its type), parent task run, every tag (sorted), then the creator."""
    related: list[dict[str, str]] = []
    if flow_id is not None:
        related.append(_related("flow", flow_id, flow_name))
    if deployment_id is not None:
        related.append(_related("deployment", deployment_id, deployment_name))
    if queue_id is not None:
        related.append(_related("work-queue", queue_id, queue_name))
    if pool_id is not None:
        pool = _related("work-pool", pool_id, pool_name)
        if pool_type is not None:
            pool["prefect.work-pool.type"] = pool_type
        related.append(pool)
    if parent_task_run_id is not None:
        related.append(_related("task-run", parent_task_run_id, parent_task_run_name))
    tags: set[str] = set()
    for group in (run_tags, flow_tags, deployment_tags, parent_task_run_tags):
        if group:
            tags.update(group)
    related.extend(
        {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
        for tag in sorted(tags)
    )
    if created_by and created_by.get("type") in ("DEPLOYMENT", "AUTOMATION"):
        kind = "deployment" if created_by["type"] == "DEPLOYMENT" else "automation"
        creator = {
            "prefect.resource.id": f"prefect.{kind}.{created_by.get('id')}",
            "prefect.resource.role": "creator",
        }
        if created_by.get("display_value"):
            creator["prefect.resource.name"] = str(created_by["display_value"])
        related.append(creator)
    return related


def _related(kind: str, object_id: Any, name: str | None) -> dict[str, str]:
    resource = {"prefect.resource.id": f"prefect.{kind}.{object_id}", "prefect.resource.role": kind}
    if name is not None:
        resource["prefect.resource.name"] = name
    return resource


def flow_run_state_event(
    *,
    run_id: Any,
    run_name: str | None,
    run_count: int,
    state: Mapping[str, Any],
    initial: Mapping[str, Any] | None,
    related: list[dict[str, str]],
) -> Event:
    """Prefect's ``prefect.flow-run.<state name>`` event for a written state; its id is the
    state's id, so events follow state order."""
    timestamp: dt.datetime = state["timestamp"]
    initial_timestamp = initial.get("timestamp") if initial is not None else None
    tight = initial_timestamp is not None and abs(timestamp - initial_timestamp) < _TIGHT_TIMING
    resource = {"prefect.resource.id": f"prefect.flow-run.{run_id}"}
    if run_name is not None:
        resource["prefect.resource.name"] = run_name
    resource |= {
        "prefect.run-count": str(run_count),
        "prefect.state-message": _truncated(state.get("message")),
        "prefect.state-name": state.get("name") or "",
        "prefect.state-timestamp": _iso(timestamp),
        "prefect.state-type": state["type"],
    }
    return {
        "occurred": timestamp,
        "event": f"prefect.flow-run.{state.get('name')}",
        "resource": resource,
        "related": related,
        "payload": {
            "intended": {"from": initial["type"] if initial else None, "to": state["type"]},
            "initial_state": _state_payload(initial),
            "validated_state": _state_payload(state),
        },
        "id": state["id"],
        "follows": initial.get("id") if initial is not None and tight else None,
        "received": timestamp,
    }


def flow_run_state_written(row: Any, state: Mapping[str, Any], run_count: int) -> None:
    """Emit the event for a state set_state wrote; ``row`` is the run as set_state read it
    (with its current state and the names of its flow, deployment, queue, pool, parent).
    The event is built by the flusher, off the request's path."""
    if bus.active:
        bus.emit_later(_event_for_written_state, row, dict(state), run_count)


def _event_for_written_state(row: Any, state: Mapping[str, Any], run_count: int) -> Event:
    initial = (
        {
            "id": row.state__id,
            "type": row.state__type,
            "name": row.state__name,
            "message": row.state__message,
            "timestamp": row.state__timestamp,
            "state_details": row.state__state_details,
        }
        if row.state__id is not None
        else None
    )
    related = flow_run_related(
        run_tags=row.tags,
        flow_id=row.flow_id,
        flow_name=row.flow__name,
        flow_tags=row.flow__tags,
        deployment_id=row.deployment__id,
        deployment_name=row.deployment__name,
        deployment_tags=row.deployment__tags,
        queue_id=row.work_queue_id,
        queue_name=row.queue__name,
        pool_id=row.pool__id,
        pool_name=row.pool__name,
        pool_type=row.pool__type,
        parent_task_run_id=row.parent_task_run_id,
        parent_task_run_name=row.parent__name,
        parent_task_run_tags=row.parent__tags,
        created_by=row.created_by,
    )
    return flow_run_state_event(
        run_id=row.id,
        run_name=row.name,
        run_count=run_count,
        state=state,
        initial=initial,
        related=related,
    )


def flow_run_created(
    run: Mapping[str, Any],
    state: Mapping[str, Any],
    *,
    queue_name: str | None,
    pool_id: Any,
    pool_name: str | None,
    names: Mapping[str, Any] | None,
) -> None:
    """Emit the event for a new run's first state (``names``: what the caller read of the
    flow, deployment and pool: ``flow_name``, ``flow_tags``, ``deployment_name``,
    ``deployment_tags``, ``pool_type``). The event is built by the flusher."""
    if bus.active:
        bus.emit_later(
            _event_for_new_run,
            dict(run),
            dict(state),
            queue_name,
            pool_id,
            pool_name,
            dict(names or {}),
        )


def _event_for_new_run(
    run: Mapping[str, Any],
    state: Mapping[str, Any],
    queue_name: str | None,
    pool_id: Any,
    pool_name: str | None,
    names: Mapping[str, Any],
) -> Event:
    related = flow_run_related(
        run_tags=run["tags"],
        flow_id=run["flow_id"],
        flow_name=names.get("flow_name"),
        flow_tags=names.get("flow_tags"),
        deployment_id=run["deployment_id"],
        deployment_name=names.get("deployment_name"),
        deployment_tags=names.get("deployment_tags"),
        queue_id=run["work_queue_id"],
        queue_name=queue_name,
        pool_id=pool_id,
        pool_name=pool_name,
        pool_type=names.get("pool_type"),
        parent_task_run_id=run["parent_task_run_id"],
        created_by=run["created_by"],
    )
    return flow_run_state_event(
        run_id=run["id"],
        run_name=run["name"],
        run_count=run["run_count"],
        state=state,
        initial=None,
        related=related,
    )


# --- matching events against a filter, in memory (live subscribers) -----------------------


def _glob(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    if pattern.startswith("!"):
        return not fnmatch.fnmatchcase(value, pattern[1:])
    return fnmatch.fnmatchcase(value, pattern)


def _labels_match(spec: Mapping[str, str | list[str]], resource: Mapping[str, str]) -> bool:
    for label, expected in spec.items():
        patterns = [expected] if isinstance(expected, str) else expected
        value = resource.get(label)
        if not any(_glob(pattern, value) for pattern in patterns):
            return False
    return True


def _any_resource_matches(flt: EventAnyResourceFilter, resource: Mapping[str, str]) -> bool:
    resource_id = resource.get("prefect.resource.id", "")
    if flt.id and resource_id not in flt.id:
        return False
    if flt.id_prefix and not any(resource_id.startswith(p) for p in flt.id_prefix):
        return False
    return not flt.labels or _labels_match(flt.labels, resource)


def _related_matches(flt: EventRelatedFilter, resource: Mapping[str, str]) -> bool:
    resource_id = resource.get("prefect.resource.id", "")
    role = resource.get("prefect.resource.role", "")
    if flt.id and resource_id not in flt.id:
        return False
    if flt.role and role not in flt.role:
        return False
    if flt.resources_in_roles and (resource_id, role) not in {
        tuple(pair) for pair in flt.resources_in_roles
    }:
        return False
    return not flt.labels or _labels_match(flt.labels, resource)


def _searchable_text(event: Event) -> str:
    parts = [event["event"], *event["resource"].values()]
    for related in event["related"]:
        parts.extend(related.values())
    parts.append(json.dumps(event["payload"], default=str))
    return " ".join(parts)


def matches(flt: EventFilter, event: Event, text: ParsedQuery | None = None) -> bool:
    """Whether ``event`` passes ``flt`` (the same meaning as the SQL in ``event_filter_sql``)."""
    occurred = event["occurred"]
    if not flt.occurred.since <= occurred <= flt.occurred.until:
        return False
    name = flt.event
    if name is not None:
        event_name: str = event["event"]
        if name.prefix and not any(event_name.startswith(p) for p in name.prefix):
            return False
        if name.exclude_prefix and any(event_name.startswith(p) for p in name.exclude_prefix):
            return False
        if name.name and event_name not in name.name:
            return False
        if name.exclude_name and event_name in name.exclude_name:
            return False
    resource: Mapping[str, str] = event["resource"]
    if flt.resource is not None:
        own = flt.resource
        resource_id = resource.get("prefect.resource.id", "")
        if own.id and resource_id not in own.id:
            return False
        if own.id_prefix and not any(resource_id.startswith(p) for p in own.id_prefix):
            return False
        if own.labels and not _labels_match(own.labels, resource):
            return False
    related: Sequence[Mapping[str, str]] = event["related"]
    for related_filter in flt.related_filters():
        if _is_empty_related(related_filter):
            continue
        if not any(_related_matches(related_filter, r) for r in related):
            return False
    for any_filter in flt.any_resource_filters():
        if not any(_any_resource_matches(any_filter, r) for r in (resource, *related)):
            return False
    if flt.id.id and event["id"] not in flt.id.id:
        return False
    if flt.text is not None and flt.text.query.strip():
        query = text if text is not None else parse(flt.text.query)
        if not query.matches(_searchable_text(event)):
            return False
    return True


def _is_empty_related(flt: EventRelatedFilter) -> bool:
    return not (flt.id or flt.role or flt.resources_in_roles or flt.labels)
