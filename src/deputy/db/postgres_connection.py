"""PostgreSQL transactions on asyncpg without SQLAlchemy's asyncio extension.

SQLAlchemy drives asyncpg from synchronous code by running each call in a greenlet that awaits
the driver (``greenlet_spawn``); its ``AsyncEngine`` and ``AsyncConnection`` are thin wrappers
around exactly that. The ``sqlalchemy.ext.asyncio`` package also imports the ORM, though:
about 120 ms and 8 MiB of start-up for classes deputy never uses. deputy makes the same calls
itself, on a plain ``Engine`` whose asyncpg dialect already pools asyncio connections, and
offers services the few ``AsyncConnection`` calls they make (as ``SqliteConnection`` does).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.util import greenlet_spawn

T = TypeVar("T")


class PostgresConnection:
    """A connection in a transaction, with the calls services use (``db.connection.Connection``)."""

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection
        self.dialect = connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await greenlet_spawn(self.sync_connection.execute, statement, parameters)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        """A savepoint: released when the block ends, rolled back if it raises."""
        savepoint = await greenlet_spawn(self.sync_connection.begin_nested)
        try:
            yield
        except BaseException as error:
            await greenlet_spawn(savepoint.__exit__, type(error), error, error.__traceback__)
            raise
        await greenlet_spawn(savepoint.__exit__, None, None, None)


@asynccontextmanager
async def transaction(engine: Engine) -> AsyncIterator[PostgresConnection]:
    """A pooled connection in a transaction, committed when the block ends without error."""
    connection = await greenlet_spawn(engine.connect)
    try:
        begun = await greenlet_spawn(connection.begin)
        try:
            yield PostgresConnection(connection)
        except BaseException as error:
            await greenlet_spawn(begun.__exit__, type(error), error, error.__traceback__)
            raise
        await greenlet_spawn(begun.__exit__, None, None, None)
    finally:
        await _run_to_completion(greenlet_spawn(connection.close))


async def run_sync(engine: Engine, fn: Callable[[Connection], T]) -> T:
    """``fn`` with a plain connection, then commit (migrations, maintenance)."""
    connection = await greenlet_spawn(engine.connect)
    try:
        result: T = await greenlet_spawn(fn, connection)
        await greenlet_spawn(connection.commit)
        return result
    finally:
        await _run_to_completion(greenlet_spawn(connection.close))


async def dispose(engine: Engine) -> None:
    await greenlet_spawn(engine.dispose)


async def _run_to_completion(cleanup: Coroutine[Any, Any, T]) -> T:
    """Finish ``cleanup`` even if the calling task is cancelled meanwhile (a client gone),
    then pass the cancellation on: a connection is never left half returned to the pool."""
    task = asyncio.ensure_future(cleanup)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as error:
            if task.done():
                raise
            cancelled = error
        else:
            break
    if cancelled is not None:
        raise cancelled
    return result
