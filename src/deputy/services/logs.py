"""Logs: stored in batches, read with Prefect's filters, and streamed live to ``/logs/out``.

A batch from the client's API log handler is one executemany INSERT (SQLAlchemy sends it as
multi-row statements where the driver benefits). Live subscribers get each stored log that
matches their filter; like Prefect's, the live stream has no backfill and drops logs for a
subscriber that falls more than ``SUBSCRIPTION_BACKLOG`` behind.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from deputy.db import tables as t
from deputy.db.filters.logs import log_filter_clause, log_order
from deputy.schemas.logs import LogCreate, LogFilter, LogSort
from deputy.services.common import uuid7
from deputy.text_search import parse

if TYPE_CHECKING:
    from deputy.db.connection import Connection

logger = logging.getLogger("deputy.services.logs")

_INSERT_LOG = t.log.insert()
_LOG_COLUMNS = (
    t.log.c.id,
    t.log.c.created,
    t.log.c.updated,
    t.log.c.name,
    t.log.c.level,
    t.log.c.message,
    t.log.c.timestamp,
    t.log.c.flow_run_id,
    t.log.c.task_run_id,
)

#: Most logs waiting for one live subscriber; beyond it new logs are dropped for it.
SUBSCRIPTION_BACKLOG = 256


async def create_logs(
    conn: Connection, logs: Sequence[LogCreate], *, now: dt.datetime
) -> list[dict[str, Any]]:
    """Store a batch of logs; returns them as answered (and as streamed)."""
    if not logs:
        return []
    rows = [
        {
            "id": uuid7(),
            "created": now,
            "updated": now,
            # NUL characters are removed, as Prefect does (PostgreSQL refuses them in text).
            "name": log.name.replace("\x00", ""),
            "level": log.level,
            "message": log.message.replace("\x00", ""),
            "timestamp": log.timestamp,
            "flow_run_id": log.flow_run_id,
            "task_run_id": log.task_run_id,
        }
        for log in logs
    ]
    await conn.execute(_INSERT_LOG, rows)
    return rows


async def read_logs(
    conn: Connection,
    flt: LogFilter | None,
    *,
    sort: LogSort,
    offset: int,
    limit: int,
) -> list[dict[str, Any]]:
    query = (
        select(*_LOG_COLUMNS)
        .where(log_filter_clause(flt))
        .order_by(*log_order(sort))
        .offset(offset)
        .limit(limit)
    )
    return [dict(row._mapping) for row in await conn.execute(query)]


# --- the live stream --------------------------------------------------------------------


class _Subscriber:
    __slots__ = ("filter", "queue", "text")

    def __init__(self, flt: LogFilter) -> None:
        self.filter = flt
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SUBSCRIPTION_BACKLOG)
        self.text = parse(flt.text.query) if flt.text is not None else None


_subscribers: set[_Subscriber] = set()


@asynccontextmanager
async def subscribe(flt: LogFilter) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """A queue receiving every log stored from now on that matches ``flt``."""
    subscriber = _Subscriber(flt)
    _subscribers.add(subscriber)
    try:
        yield subscriber.queue
    finally:
        _subscribers.discard(subscriber)


def publish(rows: Sequence[dict[str, Any]]) -> None:
    """Hand stored logs to the live subscribers whose filter they match."""
    for subscriber in _subscribers:
        for row in rows:
            if _matches(subscriber, row):
                try:
                    subscriber.queue.put_nowait(row)
                except asyncio.QueueFull:
                    break  # a subscriber this far behind loses logs, as in Prefect


def _matches(subscriber: _Subscriber, log: dict[str, Any]) -> bool:
    """The filter's conditions, ANDed (Prefect's live stream ignores ``operator``)."""
    flt = subscriber.filter
    if flt.level is not None:
        if flt.level.ge_ is not None and log["level"] < flt.level.ge_:
            return False
        if flt.level.le_ is not None and log["level"] > flt.level.le_:
            return False
    if flt.timestamp is not None:
        if flt.timestamp.before_ is not None and log["timestamp"] > flt.timestamp.before_:
            return False
        if flt.timestamp.after_ is not None and log["timestamp"] < flt.timestamp.after_:
            return False
    runs = flt.flow_run_id.any_ if flt.flow_run_id is not None else None
    if runs is not None and log["flow_run_id"] not in runs:
        return False
    if flt.task_run_id is not None:
        task_run_id: uuid.UUID | None = log["task_run_id"]
        if flt.task_run_id.any_ is not None and task_run_id not in flt.task_run_id.any_:
            return False
        if flt.task_run_id.is_null_ is not None and flt.task_run_id.is_null_ != (
            task_run_id is None
        ):
            return False
    return subscriber.text is None or subscriber.text.matches(f"{log['message']} {log['name']}")
