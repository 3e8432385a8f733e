"""Events in the database: writing batches, reading pages, counting.

Reads follow Prefect's paging: ``/events/filter`` answers the first page, the total, and a
``next_page`` link whose token carries the (resolved) filter, total, page size and offset.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from sqlalchemy import Integer, case, cast, distinct, func, literal, select

from deputy.db import tables as t
from deputy.db.event_rows import insert_events
from deputy.db.filters.events import event_where
from deputy.errors import Unprocessable
from deputy.schemas.events import Countable, EventFilter, EventOrder, TimeUnit

if TYPE_CHECKING:
    from deputy.db.connection import Connection

_event = t.event.c
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


class InvalidPageToken(ValueError):
    pass


async def write_events(
    conn: Connection, batch: Sequence[dict[str, Any]], *, now: dt.datetime
) -> set[uuid.UUID]:
    """Insert events (an id already stored is skipped) with one resource row per resource
    they name; returns the ids inserted."""
    if not batch:
        return set()
    unique: dict[Any, dict[str, Any]] = {}
    for event in batch:
        unique.setdefault(event["id"], event)
    return await insert_events(conn, unique, now)


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
    *,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    if countable in (Countable.day, Countable.time):
        if countable == Countable.day:
            unit, interval = TimeUnit.day, 1.0
        return await _count_by_time(conn, flt, unit, interval, now=now)
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
    conn: Connection, flt: EventFilter, unit: TimeUnit, interval: float, *, now: dt.datetime
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

    end = _end_of_period(now, unit) if until > now else until
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
