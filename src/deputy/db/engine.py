"""Opening the database and handing out transactions.

One request, one transaction, opened by the API layer with ``read()`` or ``write()``; services
receive the connection and never commit.

SQLite runs on the event loop itself. Its statements take microseconds and never wait on the
network, so calling sqlite3 directly is far cheaper than the thread hop per call that an async
driver makes (several per statement). A transaction's statements run back to back without
yielding; the only waiting is for the write lock, and that waiting is asynchronous:

- In one process, writers queue on an ``asyncio.Lock``, in order.
- Across processes, ``BEGIN IMMEDIATE`` takes SQLite's write lock up front (so a transaction
  never fails half way to upgrade its lock); while another process holds it, we sleep
  asynchronously and retry until ``sqlite_busy_timeout_ms``, then answer 503.

Pragmas: WAL (readers never block the writer), ``synchronous=NORMAL``, foreign keys on.

PostgreSQL uses asyncpg through SQLAlchemy's async engine, READ COMMITTED; rows that decide a
race are locked with ``FOR UPDATE`` by the service that needs them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from deputy.settings import Settings

T = TypeVar("T")

_WRITE_OPTION = "deputy_write"
#: How long one statement may block the loop waiting for another process's lock; the
#: waiting for a transaction's first lock is done asynchronously instead (see write()).
_STATEMENT_BUSY_TIMEOUT_MS = 20


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


class SqliteConnection:
    """A synchronous SQLAlchemy connection offered with the AsyncConnection calls services use.

    ``execute`` runs the statement immediately on the calling (event loop) thread.
    """

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection
        self.dialect = connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync_connection.execute(statement, parameters)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        with self.sync_connection.begin_nested():
            yield


class Database:
    """The engine plus the transaction helpers every request uses."""

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.resolved_database_url())
        self.url = url
        self.dialect = url.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self._busy_timeout_s = settings.sqlite_busy_timeout_ms / 1000
        self._write_lock = asyncio.Lock()
        engine_options: dict[str, Any] = {
            "json_serializer": _json_serializer,
            "json_deserializer": _json_deserializer,
        }
        self._async_engine: AsyncEngine | None = None
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.sync_engine: Engine = create_engine(
                url.set(drivername="sqlite+pysqlite"),
                pool_size=8,
                max_overflow=8,
                connect_args={"check_same_thread": False},
                **engine_options,
            )
            _configure_sqlite(self.sync_engine)
        else:
            self._async_engine = create_async_engine(
                url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_pre_ping=True,
                **engine_options,
            )
            self.sync_engine = self._async_engine.sync_engine

    def describe(self) -> str:
        """The URL with any password hidden, for the start-up banner."""
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot in WAL mode)."""
        if self._async_engine is not None:
            async with self._async_engine.connect() as conn, conn.begin():
                yield conn
            return
        with self.sync_engine.connect() as sync_conn:
            sync_conn.begin()
            try:
                yield cast(AsyncConnection, SqliteConnection(sync_conn))
            finally:
                sync_conn.rollback()  # nothing to keep; ends the snapshot

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends without error."""
        if self._async_engine is not None:
            async with self._async_engine.connect() as conn, conn.begin():
                yield conn
            return
        async with self._write_lock:
            sync_conn = await self._begin_immediate()
            try:
                yield cast(AsyncConnection, SqliteConnection(sync_conn))
                sync_conn.commit()
            except BaseException:
                sync_conn.rollback()
                raise
            finally:
                sync_conn.close()

    async def _begin_immediate(self) -> Connection:
        """A connection holding SQLite's write lock, waited for without blocking the loop."""
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.001
        while True:
            conn = self.sync_engine.connect().execution_options(**{_WRITE_OPTION: True})
            try:
                conn.begin()
                return conn
            except OperationalError as error:
                conn.close()
                if not _is_busy(error) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` with a plain connection and commit (migrations, maintenance)."""
        if self._async_engine is not None:
            async with self._async_engine.connect() as conn:
                result = await conn.run_sync(fn)
                await conn.commit()
                return result
        with self.sync_engine.connect() as sync_conn:
            result = fn(sync_conn)
            sync_conn.commit()
            return result

    async def dispose(self) -> None:
        if self._async_engine is not None:
            await self._async_engine.dispose()
        else:
            self.sync_engine.dispose()


def _is_busy(error: OperationalError) -> bool:
    message = str(error.orig).lower()
    return "locked" in message or "busy" in message


def _configure_sqlite(engine: Engine) -> None:
    """Pragmas on every new connection, and explicit BEGIN / BEGIN IMMEDIATE."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_STATEMENT_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA cache_size=-32000")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
