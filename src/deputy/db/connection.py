"""The connection services are handed: the few calls both databases' wrappers offer.

``Database.read()`` and ``Database.write()`` yield a ``SqliteConnection`` (statements run on
the event loop) or a ``PostgresConnection`` (asyncpg through greenlets), not SQLAlchemy's
``Connection``. Typing services against this Protocol makes mypy refuse a call neither
wrapper has, instead of letting it type-check and fail at run time.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import sqlalchemy
    from sqlalchemy.engine import CursorResult, Dialect
    from sqlalchemy.sql.base import Executable


class Connection(Protocol):
    """A connection inside one transaction, opened and committed by ``Database``."""

    #: The dialect, for the few statements written differently on each database.
    dialect: Dialect
    #: The synchronous connection underneath, for db/ code that drives the driver itself.
    sync_connection: sqlalchemy.Connection

    async def execute(
        self, statement: Executable, parameters: Any = None
    ) -> CursorResult[*tuple[Any, ...]]:
        """Run one statement (with one parameter set, or a list for executemany)."""
        ...

    def begin_nested(self) -> AbstractAsyncContextManager[None]:
        """A savepoint: released when the block ends, rolled back if it raises."""
        ...
