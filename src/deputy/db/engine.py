"""Opening the database and handing out transactions.

One request, one transaction, opened by the API layer with ``read()`` or ``write()``; services
receive the connection and never commit.

SQLite: WAL, ``synchronous=NORMAL``, foreign keys on, a busy timeout, and an explicit ``BEGIN``
(the sqlite3 driver would otherwise begin lazily). Write transactions begin with
``BEGIN IMMEDIATE`` so they take the write lock first, and inside one process they also queue
on an ``asyncio.Lock``: writers wait their turn in order instead of polling the busy handler,
which is what gives Prefect's server its "database is locked" errors.

PostgreSQL: READ COMMITTED; rows that decide a race are locked with ``FOR UPDATE`` by the
service that needs them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from deputy.settings import Settings

_WRITE_OPTION = "deputy_write"


def _json_serializer(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value)  # integers beyond 64 bits, very deep nesting


def _json_deserializer(value: Any) -> Any:
    """SQLite hands back bare numbers already converted (its JSON columns have NUMERIC
    affinity); everything else is JSON text."""
    if isinstance(value, (int, float)):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


class Database:
    """The engine plus the transaction helpers every request uses."""

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.resolved_database_url())
        self.url = url
        self.dialect = url.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        engine_options: dict[str, Any] = {
            "json_serializer": _json_serializer,
            "json_deserializer": _json_deserializer,
        }
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                from pathlib import Path

                Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine_options["pool_size"] = 8
            engine_options["max_overflow"] = 8
        else:
            engine_options["pool_size"] = settings.db_pool_size
            engine_options["max_overflow"] = settings.db_max_overflow
            engine_options["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **engine_options)
        if self.is_sqlite:
            _configure_sqlite(self.engine, settings.sqlite_busy_timeout_ms)

    def describe(self) -> str:
        """The URL with any password hidden, for the start-up banner."""
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot in WAL mode)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends without error."""
        if self._write_lock is None:
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        async with self.engine.connect() as conn:
            await conn.execution_options(**{_WRITE_OPTION: True})
            async with self._write_lock, conn.begin():
                yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """Pragmas on every new connection, and explicit BEGIN / BEGIN IMMEDIATE."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA cache_size=-32000")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
