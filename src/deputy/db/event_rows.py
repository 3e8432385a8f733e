"""Writing a batch of events: one ``event`` row each, and one ``event_resource`` row per
resource it names (its own, with role ``""``, then the related ones).

The hot path of ``/events/in`` and of every written flow-run state. On SQLite the values are
converted to their stored text here rather than by SQLAlchemy's per-value bind processing,
which is most of the cost of a batch (a batch of 200 state events is ~1,400 rows), and sent
straight to the driver. The formats are those SQLAlchemy writes and reads back: UUIDs as 32
hex digits, timestamps as naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``, JSON as text. PostgreSQL
takes the same rows through SQLAlchemy Core.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from deputy.db import tables as t
from deputy.db.dialect import insert_unless_exists

if TYPE_CHECKING:
    from deputy.db.connection import Connection

Events = Mapping[Any, Mapping[str, Any]]

#: Labels kept in their own columns, not in ``event_resource.resource``.
_OWN_COLUMNS = ("prefect.resource.id", "prefect.resource.role")


async def insert_events(conn: Connection, events: Events, recorded: dt.datetime) -> set[Any]:
    """Insert ``events`` (keyed by their unique ids) except the ids already stored, with their
    resource rows, all stamped ``recorded``; returns the ids inserted."""
    if conn.dialect.name == "sqlite":
        return _insert_sqlite(conn, events, recorded)
    return await _insert_postgres(conn, events, recorded)


# --- SQLite: pre-encoded, straight to the driver (on the event loop, like every statement) ---

_EVENT_FIELDS = (
    "id, created, updated, occurred, event, resource_id, resource, related_resource_ids, "
    "related, payload, received, recorded, follows"
)
_EVENT_VALUES = f"({', '.join('?' * 13)})"
_SQLITE_INSERT_RESOURCES = (
    "INSERT INTO event_resource (id, created, updated, occurred, resource_id, resource_role, "
    "resource, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _insert_sqlite(conn: Connection, events: Events, recorded: dt.datetime) -> set[Any]:
    stamp = _sqlite_time(recorded)
    stored: dict[str, tuple[Any, str]] = {}  # id as stored -> (event id, occurred as stored)
    parameters: list[Any] = []
    for event_id, event in events.items():
        key, occurred = _sqlite_uuid(event_id), _sqlite_time(event["occurred"])
        assert key is not None
        stored[key] = (event_id, occurred)
        parameters += _event_row(key, occurred, event, stamp)
    sync = conn.sync_connection
    returned = sync.exec_driver_sql(_sqlite_insert_events(len(events)), tuple(parameters))
    inserted: set[Any] = set()
    resources: list[tuple[Any, ...]] = []
    for (key,) in returned:
        event_id, occurred = stored[key]
        inserted.add(event_id)
        resources += _resource_rows(key, occurred, events[event_id], stamp)
    if resources:
        sync.exec_driver_sql(_SQLITE_INSERT_RESOURCES, resources)
    return inserted


def _sqlite_insert_events(count: int) -> str:
    """One INSERT of ``count`` events that skips ids already stored and returns the others
    (every statement the event bus sends starts with ``INSERT INTO event``)."""
    values = ", ".join([_EVENT_VALUES] * count)
    return (
        f"INSERT INTO event ({_EVENT_FIELDS}) VALUES {values} "
        "ON CONFLICT (id) DO NOTHING RETURNING id"
    )


def _event_row(key: str, occurred: str, event: Mapping[str, Any], stamp: str) -> tuple[Any, ...]:
    return (
        key,
        stamp,
        stamp,
        occurred,
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


def _resource_rows(
    key: str, occurred: str, event: Mapping[str, Any], stamp: str
) -> list[tuple[Any, ...]]:
    return [
        (
            f"{random.getrandbits(128):032x}",  # a row id only; uuid4 is 10x slower
            stamp,
            stamp,
            occurred,
            resource["prefect.resource.id"],
            role,
            _json_text({k: v for k, v in resource.items() if k not in _OWN_COLUMNS}),
            key,
        )
        for resource, role in _named_resources(event)
    ]


def _named_resources(event: Mapping[str, Any]) -> list[tuple[Mapping[str, str], str]]:
    """Every resource the event names, with its role (``""`` for the event's own)."""
    return [(event["resource"], ""), *((r, r["prefect.resource.role"]) for r in event["related"])]


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


# --- PostgreSQL: the same rows through SQLAlchemy Core --------------------------------------

_INSERT_RESOURCES = t.event_resource.insert()


async def _insert_postgres(conn: Connection, events: Events, recorded: dt.datetime) -> set[Any]:
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
        for event in events.values()
    ]
    result = await conn.execute(insert_unless_exists(conn.dialect.name, t.event, ("id",)), rows)
    inserted = {row[0] for row in result}
    resources = [
        {
            "id": uuid.uuid4(),
            "created": recorded,
            "updated": recorded,
            "occurred": event["occurred"],
            "resource_id": resource["prefect.resource.id"],
            "resource_role": role,
            "resource": {k: v for k, v in resource.items() if k not in _OWN_COLUMNS},
            "event_id": event_id,
        }
        for event_id, event in events.items()
        if event_id in inserted
        for resource, role in _named_resources(event)
    ]
    if resources:
        await conn.execute(_INSERT_RESOURCES, resources)
    return inserted
