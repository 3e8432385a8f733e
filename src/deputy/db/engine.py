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

Pragmas: WAL (readers never block the writer), ``synchronous=NORMAL``, foreign keys on. The
WAL is copied back into the database file by a thread of its own (``checkpoint.py``), not by
the commit that happens to cross SQLite's threshold on the event loop.

PostgreSQL uses asyncpg through SQLAlchemy (``postgres_connection.py``), READ COMMITTED; rows
that decide a race are locked with ``FOR UPDATE`` by the service that needs them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from deputy.db import postgres_connection
from deputy.db.checkpoint import SAFETY_NET_PAGES, Checkpointer
from deputy.db.errors import is_busy
from deputy.db.tables import use_postgresql_options
from deputy.db.types import read_json
from deputy.settings import Settings

if TYPE_CHECKING:
    from deputy.db.connection import Connection as ServiceConnection

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
    return read_json(value)


class SqliteConnection:
    """A synchronous SQLAlchemy connection with the calls services use (``Connection``).

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


#: Most writers sharing one SQLite commit (bounds how long the first of them waits).
_MAX_COMMIT_GROUP = 64


class _CommitGroup:
    """One SQLite write transaction shared by writers that queued up behind each other.

    Group commit: a finished writer leaves the transaction open for one loop iteration, and
    writers arriving meanwhile (under load, the requests already read off the sockets) join
    it; then it is committed for everybody (at the latest by the 64th writer). Each writer's
    request is answered only after that commit, so nothing is acknowledged before it is
    stored, but a burst of N writes costs one commit, not N.
    """

    def __init__(self, connection: Connection, on_commit: Callable[[], None]) -> None:
        self.connection = connection
        self.members: list[asyncio.Future[None]] = []
        self.commit_scheduled = False
        self._on_commit = on_commit

    def commit(self) -> None:
        try:
            self.connection.commit()
        except Exception as error:
            self.abandon(error)
            return
        self.connection.close()
        self._on_commit()
        for member in self.members:
            if not member.done():
                member.set_result(None)

    def abandon(self, error: BaseException | None = None) -> None:
        """Roll back; members waiting for the commit get ``error`` (nothing was stored)."""
        try:
            self.connection.rollback()
        except Exception:
            pass  # the connection is unusable anyway; closing it returns it to the pool
        finally:
            self.connection.close()
        for member in self.members:
            if not member.done():
                member.set_exception(error or RuntimeError("write transaction rolled back"))


class _Savepoint:
    """A group member's savepoint, sent straight to the driver: SQLAlchemy's ``begin_nested``
    compiles and executes a statement for each SAVEPOINT and RELEASE, a measurable share of a
    create under load. SQLAlchemy's transaction bookkeeping is unaffected (balanced here)."""

    _NAME = "deputy_member"

    def __init__(self, connection: Connection) -> None:
        self._cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        self._cursor.execute(f"SAVEPOINT {self._NAME}")

    def release(self) -> None:
        self._cursor.execute(f"RELEASE {self._NAME}")

    def rollback(self) -> bool:
        """Undo this member's work; False if the transaction itself is gone (SQLite rolls
        everything back on some errors), in which case the whole group must be abandoned."""
        try:
            self._cursor.execute(f"ROLLBACK TO {self._NAME}")
            self._cursor.execute(f"RELEASE {self._NAME}")
        except Exception:
            return False
        return True


class Database:
    """The engine plus the transaction helpers every request uses."""

    def __init__(self, settings: Settings) -> None:
        url = make_url(settings.resolved_database_url())
        self.url = url
        self.dialect = url.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self._busy_timeout_s = settings.sqlite_busy_timeout_ms / 1000
        self._write_lock = asyncio.Lock()
        self._queued_writers = 0
        self._open_group: _CommitGroup | None = None
        engine_options: dict[str, Any] = {
            "json_serializer": _json_serializer,
            "json_deserializer": _json_deserializer,
        }
        self.is_postgres = not self.is_sqlite
        self._checkpointer: Checkpointer | None = None
        if self.is_sqlite:
            if url.database and url.database != ":memory:":
                path = Path(url.database).expanduser()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._checkpointer = Checkpointer(str(path), settings.sqlite_busy_timeout_ms)
            self.sync_engine: Engine = create_engine(
                url.set(drivername="sqlite+pysqlite"),
                pool_size=8,
                max_overflow=8,
                connect_args={"check_same_thread": False},
                **engine_options,
            )
            _configure_sqlite(self.sync_engine)
        else:
            use_postgresql_options()
            # The asyncpg dialect pools asyncio connections; postgres_connection.py drives it.
            self.sync_engine = create_engine(
                url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                pool_pre_ping=True,
                **engine_options,
            )

    def describe(self) -> str:
        """The URL with any password hidden, for the start-up banner."""
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[ServiceConnection]:
        """A read-only transaction (a consistent snapshot in WAL mode)."""
        if self.is_postgres:
            async with postgres_connection.transaction(self.sync_engine) as conn:
                yield conn
            return
        with self.sync_engine.connect() as sync_conn:
            sync_conn.begin()
            try:
                yield SqliteConnection(sync_conn)
            finally:
                sync_conn.rollback()  # nothing to keep; ends the snapshot

    @asynccontextmanager
    async def write(self) -> AsyncIterator[ServiceConnection]:
        """A write transaction, committed when the block ends without error."""
        if self.is_postgres:
            async with postgres_connection.transaction(self.sync_engine) as conn:
                yield conn
            return
        self._queued_writers += 1
        try:
            await self._write_lock.acquire()
        finally:
            self._queued_writers -= 1
        group = self._open_group
        joined = group is not None
        committed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            if group is None:
                group = _CommitGroup(await self._begin_immediate(), self._committed)
                self._open_group = group
            # A writer joining an open group gets a savepoint, so its failure undoes only
            # its own work; the first writer of a group has the transaction to itself.
            savepoint = _Savepoint(group.connection) if joined else None
            try:
                yield SqliteConnection(group.connection)
            except BaseException:
                if savepoint is None or not savepoint.rollback():
                    self._open_group = None
                    group.abandon()
                    group = None
                raise
            else:
                if savepoint is not None:
                    savepoint.release()
                group.members.append(committed)
        finally:
            if group is not None:
                if len(group.members) >= _MAX_COMMIT_GROUP:
                    self._commit(group)
                elif not group.commit_scheduled:
                    # Linger: writers already runnable may join this commit; the callback
                    # commits as soon as no writer holds or waits for the lock.
                    group.commit_scheduled = True
                    asyncio.get_running_loop().call_soon(self._commit_if_idle, group)
            self._write_lock.release()
        await committed  # acknowledged only once it is committed, by us or a later writer

    def _committed(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.committed()

    def _commit(self, group: _CommitGroup) -> None:
        if self._open_group is group:
            self._open_group = None
        group.commit()

    def _commit_if_idle(self, group: _CommitGroup) -> None:
        if self._open_group is not group:
            return  # already committed (a full group commits at once)
        if self._write_lock.locked() or self._queued_writers:
            asyncio.get_running_loop().call_soon(self._commit_if_idle, group)
            return
        self._commit(group)

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
                if not is_busy(error) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` with a plain connection and commit (migrations, maintenance)."""
        if self.is_postgres:
            return await postgres_connection.run_sync(self.sync_engine, fn)
        with self.sync_engine.connect() as sync_conn:
            result = fn(sync_conn)
            sync_conn.commit()
            return result

    async def dispose(self) -> None:
        if self.is_postgres:
            await postgres_connection.dispose(self.sync_engine)
        else:
            if self._checkpointer is not None:
                await asyncio.to_thread(self._checkpointer.stop)
            self.sync_engine.dispose()


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
        cursor.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
