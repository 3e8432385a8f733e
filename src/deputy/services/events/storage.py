"""Events in the database: writing batches, reading pages, counting.

Reads follow Prefect's paging: ``/events/filter`` answers the first page, the total, and a
``next_page`` link whose token carries the (resolved) filter, total, page size and offset.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import math
import random
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Integer, case, cast, distinct, func, literal, select

from deputy.db import tables as t
from deputy.db.dialect import upsert_base
from deputy.db.filters.events import event_where
from deputy.errors import Unprocessable
from deputy.schemas.events import Countable, EventFilter, EventOrder, TimeUnit
from deputy.services.common import now

if TYPE_CHECKING:
    from deputy.db.connection import Connection

_event = t.event.c
_INSERT_RESOURCES = t.event_resource.insert()
_EVENT_COLUMNS = (
    _event.occurred,
    _event.event,
    _event.resource,
    _event.related,
    _event.payload,
    _event.id,
    _event.follows,
    _event.received,
)

#: Events sent per backfill page on ``/events/out`` (Prefect's websocket backfill page size).
BACKFILL_PAGE_SIZE = 250
#: How far back ``/events/out`` backfills at most (Prefect's maximum websocket backfill).
MAXIMUM_BACKFILL = dt.timedelta(minutes=15)


class InvalidPageToken(ValueError):
    pass


@functools.cache
def _insert_events(dialect: str) -> Any:
    return (
        upsert_base(dialect, t.event)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(_event.id)
    )


async def write_events(conn: Connection, batch: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert events (an id already stored is skipped) with one resource row per resource
    they name; returns the ids inserted."""
    if not batch:
        return set()
    recorded = now()
    unique: dict[Any, dict[str, Any]] = {}
    for event in batch:
        unique.setdefault(event["id"], event)
    if conn.dialect.name == "sqlite":
        return await _write_sqlite(conn, unique, recorded)
    rows = [
        {
            "id": event["id"],
            "created": recorded,
            "updated": recorded,
            "occurred": event["occurred"],
            "event": event["event"],
            "resource_id": event["resource"]["prefect.resource.id"],
            "resource": event["resource"],
            "related_resource_ids": [r["prefect.resource.id"] for r in event["related"]],
            "related": event["related"],
            "payload": event["payload"],
            "received": event["received"],
            "recorded": recorded,
            "follows": event["follows"],
        }
        for event in unique.values()
    ]
    result = await conn.execute(_insert_events(conn.dialect.name), rows)
    inserted = {row[0] for row in result}
    resources = [
        {
            "id": uuid.uuid4(),
            "created": recorded,
            "updated": recorded,
            "occurred": event["occurred"],
            "resource_id": resource["prefect.resource.id"],
            "resource_role": role,
            "resource": {
                key: value
                for key, value in resource.items()
                if key not in ("prefect.resource.id", "prefect.resource.role")
            },
            "event_id": event_id,
        }
        for event_id, event in unique.items()
        if event_id in inserted
        for resource, role in [
            (event["resource"], ""),
            *((r, r["prefect.resource.role"]) for r in event["related"]),
        ]
    ]
    if resources:
        await conn.execute(_INSERT_RESOURCES, resources)
    return inserted


# SQLite: the same rows, with values converted to their stored text here rather than by
# SQLAlchemy's per-value bind processing, which is most of the cost of a batch (a batch of
# 200 state events is ~1,400 rows). The formats are those SQLAlchemy writes and reads back:
# UUIDs as 32 hex digits, timestamps as naive UTC "YYYY-MM-DD HH:MM:SS.ffffff", JSON text.

_EVENT_FIELDS = (
    "id, created, updated, occurred, event, resource_id, resource, related_resource_ids, "
    "related, payload, received, recorded, follows"
)
_EVENT_VALUES = f"({', '.join('?' * 13)})"
_SQLITE_INSERT_RESOURCES = (
    "INSERT INTO event_resource (id, created, updated, occurred, resource_id, resource_role, "
    "resource, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _sqlite_time(moment: dt.datetime) -> str:
    if moment.tzinfo is not None and moment.utcoffset():
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_uuid(value: Any) -> str | None:
    if value is None:
        return None
    return value.hex if isinstance(value, uuid.UUID) else uuid.UUID(str(value)).hex


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value)  # integers beyond 64 bits, very deep nesting


def _sqlite_insert_events(count: int) -> str:
    """One INSERT of ``count`` events that skips ids already stored and returns the others
    (every statement the event bus sends starts with ``INSERT INTO event``)."""
    values = ", ".join([_EVENT_VALUES] * count)
    return (
        f"INSERT INTO event ({_EVENT_FIELDS}) VALUES {values} "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )


async def _write_sqlite(
    conn: Connection, unique: dict[Any, dict[str, Any]], recorded: dt.datetime
) -> set[uuid.UUID]:
    stamp = _sqlite_time(recorded)
    keys: dict[str, Any] = {}
    parameters: list[Any] = []
    for event_id, event in unique.items():
        key = _sqlite_uuid(event_id)
        assert key is not None
        keys[key] = event_id
        parameters += (
            key,
            stamp,
            stamp,
            _sqlite_time(event["occurred"]),
            event["event"],
            event["resource"]["prefect.resource.id"],
            _json_text(event["resource"]),
            _json_text([r["prefect.resource.id"] for r in event["related"]]),
            _json_text(event["related"]),
            _json_text(event["payload"]),
            _sqlite_time(event["received"]),
            stamp,
            _sqlite_uuid(event["follows"]),
        )
    sync = conn.sync_connection
    assert sync is not None
    returned = sync.exec_driver_sql(_sqlite_insert_events(len(unique)), tuple(parameters))
    inserted = {keys[row[0]] for row in returned}
    resources = []
    for event_id in inserted:
        event = unique[event_id]
        key = _sqlite_uuid(event_id)
        occurred = _sqlite_time(event["occurred"])
        for resource, role in [
            (event["resource"], ""),
            *((r, r["prefect.resource.role"]) for r in event["related"]),
        ]:
            labels = {
                label: value
                for label, value in resource.items()
                if label not in ("prefect.resource.id", "prefect.resource.role")
            }
            resources.append(
                (
                    f"{random.getrandbits(128):032x}",  # a row id only; uuid4 is 10x slower
                    stamp,
                    stamp,
                    occurred,
                    resource["prefect.resource.id"],
                    role,
                    _json_text(labels),
                    key,
                )
            )
    if resources:
        sync.exec_driver_sql(_SQLITE_INSERT_RESOURCES, resources)
    return inserted


def _event_from_row(row: Any) -> dict[str, Any]:
    return {
        "occurred": row.occurred,
        "event": row.event,
        "resource": row.resource,
        "related": row.related,
        "payload": row.payload,
        "id": row.id,
        "follows": row.follows,
        "received": row.received,
    }


async def _count(conn: Connection, flt: EventFilter) -> int:
    counted = (
        func.count(distinct(_event.resource_id))
        if flt.resource is not None and flt.resource.distinct
        else func.count()
    )
    query = select(counted).select_from(t.event).where(*event_where(flt))
    return int((await conn.execute(query)).scalar_one() or 0)


async def read_events(
    conn: Connection, flt: EventFilter, *, limit: int, offset: int
) -> list[dict[str, Any]]:
    """Events matching ``flt`` in its order (by ``occurred``, then id); with
    ``resource.distinct`` only the first event of each resource."""
    direction = "desc" if flt.order == EventOrder.DESC else "asc"
    if flt.resource is not None and flt.resource.distinct:
        first = (
            func.row_number()
            .over(
                partition_by=_event.resource_id,
                order_by=getattr(_event.occurred, direction)(),
            )
            .label("row_number")
        )
        ranked = select(*_EVENT_COLUMNS, first).where(*event_where(flt)).subquery()
        query = select(*(ranked.c[c.name] for c in _EVENT_COLUMNS)).where(ranked.c.row_number == 1)
        order = [getattr(ranked.c.occurred, direction)(), getattr(ranked.c.id, direction)()]
    else:
        query = select(*_EVENT_COLUMNS).where(*event_where(flt))
        order = [getattr(_event.occurred, direction)(), getattr(_event.id, direction)()]
    if flt.id.id:
        limit = min(limit, len(flt.id.id))
    rows = await conn.execute(query.order_by(*order).limit(limit).offset(offset))
    return [_event_from_row(row) for row in rows]


def _page_token(flt: EventFilter, total: int, page_size: int, offset: int) -> str | None:
    """The token for the page after the one at ``offset``, if there is one."""
    if offset + page_size >= total:
        return None
    document = {
        "filter": flt.model_dump(mode="json"),
        "count": total,
        "page_size": page_size,
        "offset": offset + page_size,
    }
    return base64.urlsafe_b64encode(orjson.dumps(document)).decode()


def _from_page_token(token: str) -> tuple[EventFilter, int, int, int]:
    try:
        document = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        return (
            EventFilter.model_validate(document["filter"]),
            int(document["count"]),
            int(document["page_size"]),
            int(document["offset"]),
        )
    except (binascii.Error, ValueError, KeyError, TypeError, ValidationError) as error:
        raise InvalidPageToken(str(error)) from error


async def query_events(
    conn: Connection, flt: EventFilter, page_size: int
) -> tuple[list[dict[str, Any]], int, str | None]:
    """The first page: (events, total, token for the next page)."""
    total = await _count(conn, flt)
    events = await read_events(conn, flt, limit=page_size, offset=0)
    return events, total, _page_token(flt, total, page_size, 0)


async def query_next_page(
    conn: Connection, token: str
) -> tuple[list[dict[str, Any]], int, str | None]:
    """The page a token names (raises ``InvalidPageToken``)."""
    flt, total, page_size, offset = _from_page_token(token)
    events = await read_events(conn, flt, limit=page_size, offset=offset)
    return events, total, _page_token(flt, total, page_size, offset)


# --- counting ---------------------------------------------------------------------------

#: Time buckets are counted from this Monday, as in Prefect.
PIVOT = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)
MAX_BUCKETS = 1000

_UNIT_SECONDS = {
    TimeUnit.week: 7 * 86400,
    TimeUnit.day: 86400,
    TimeUnit.hour: 3600,
    TimeUnit.minute: 60,
    TimeUnit.second: 1,
}


def _bucket_width(unit: TimeUnit, interval: float) -> dt.timedelta:
    return dt.timedelta(seconds=_UNIT_SECONDS[unit] * interval)


def _end_of_period(moment: dt.datetime, unit: TimeUnit) -> dt.datetime:
    """The last microsecond of the unit of time ``moment`` is in (weeks end on Sunday)."""
    end = moment.replace(microsecond=999_999)
    if unit == TimeUnit.second:
        return end
    end = end.replace(second=59)
    if unit == TimeUnit.minute:
        return end
    end = end.replace(minute=59)
    if unit == TimeUnit.hour:
        return end
    end = end.replace(hour=23)
    if unit == TimeUnit.day:
        return end
    return end + dt.timedelta(days=6 - end.weekday())


def _bucket_index(conn: Connection, width: dt.timedelta) -> Any:
    """SQL for the number of ``width`` buckets between the pivot and the event."""
    seconds = width.total_seconds()
    if conn.dialect.name == "postgresql":
        since_epoch = func.extract("epoch", _event.occurred)
        return cast(func.floor((since_epoch - PIVOT.timestamp()) / seconds), Integer)
    unix_seconds = cast(func.strftime("%s", _event.occurred), Integer)
    ratio = (unix_seconds - int(PIVOT.timestamp())) / literal(seconds)
    truncated = cast(ratio, Integer)
    return case((ratio < truncated, truncated - 1), else_=truncated)  # floor, also below zero


async def count_events(
    conn: Connection,
    flt: EventFilter,
    countable: Countable,
    unit: TimeUnit,
    interval: float,
) -> list[dict[str, Any]]:
    if countable in (Countable.day, Countable.time):
        if countable == Countable.day:
            unit, interval = TimeUnit.day, 1.0
        return await _count_by_time(conn, flt, unit, interval)
    if countable == Countable.event:
        value: Any = _event.event
        label: Any = _event.event
    else:
        value = _event.resource_id
        label = func.coalesce(
            _event.resource["prefect.resource.name"].as_string(),
            _event.resource["prefect.name"].as_string(),
            _event.resource_id,
        )
    query = (
        select(
            value.label("value"),
            label.label("label"),
            func.count().label("events"),
            func.min(_event.occurred).label("start_time"),
            func.max(_event.occurred).label("end_time"),
        )
        .where(*event_where(flt))
        .group_by(value, label)
    )
    grouped: dict[str, dict[str, Any]] = {}
    for row in await conn.execute(query):
        start, end = row.start_time, row.end_time
        entry = grouped.get(row.value)
        if entry is None:
            grouped[row.value] = {
                "value": row.value,
                "label": row.label,
                "count": row.events,
                "start_time": start,
                "end_time": end,
            }
            continue
        entry["count"] += row.events
        if end > entry["end_time"]:  # the label of the most recent event names the value
            entry["label"], entry["end_time"] = row.label, end
        entry["start_time"] = min(entry["start_time"], start)
    return sorted(grouped.values(), key=lambda entry: (-entry["count"], entry["label"]))


async def _count_by_time(
    conn: Connection, flt: EventFilter, unit: TimeUnit, interval: float
) -> list[dict[str, Any]]:
    width = _bucket_width(unit, interval)
    since, until = flt.occurred.since, flt.occurred.until
    buckets = math.ceil((until - since) / width)
    if buckets > MAX_BUCKETS:
        raise Unprocessable(
            f"The given interval would create {buckets} buckets, which is too many. Please "
            "increase the interval or reduce the time range to produce "
            f"{MAX_BUCKETS} buckets or fewer."
        )
    index = _bucket_index(conn, width).label("bucket")
    query = select(index, func.count().label("events")).where(*event_where(flt)).group_by(index)
    counts = {int(row.bucket): int(row.events) for row in await conn.execute(query)}

    moment = now()
    end = _end_of_period(moment, unit) if until > moment else until
    first = math.floor((since - PIVOT) / width)
    out: list[dict[str, Any]] = []
    start = PIVOT + width * first
    position = 0
    while start < end:
        following = start + width
        out.append(
            {
                "value": str(position),
                "label": start.isoformat(),
                "count": counts.get(first + position, 0),
                "start_time": start,
                "end_time": following - dt.timedelta(microseconds=1),
            }
        )
        start, position = following, position + 1
    return out


async def events_recorded_since(
    conn: Connection, since: dt.datetime, limit: int
) -> list[tuple[dt.datetime, dict[str, Any]]]:
    """Events stored at or after ``since`` (by any server process), oldest first, with the
    time each was stored: what another replica's live subscribers have not seen yet."""
    query = (
        select(*_EVENT_COLUMNS, _event.recorded.label("stored_at"))
        .where(_event.recorded >= since)
        .order_by(_event.recorded, _event.id)
        .limit(limit)
    )
    return [(row.stored_at, _event_from_row(row)) for row in await conn.execute(query)]
