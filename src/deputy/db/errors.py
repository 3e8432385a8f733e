"""What kind of failure a database error is, so the app can answer it (``classify``).

The drivers say little in their exception types: SQLite reports a held lock as an
``OperationalError`` whose message says "locked" or "busy", PostgreSQL's refusal of a NUL
character is a ``DataError`` like any other, and a database that cannot be reached raises the
driver's own errors (OS connection errors, asyncpg's), often not wrapped by SQLAlchemy. So the
tests below read messages and class names; they live here, in one place.
"""

from __future__ import annotations

import enum

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError


class Fault(enum.Enum):
    """A database failure, by what the client should make of it."""

    #: A unique or foreign-key constraint refused the write: the request conflicts (409).
    CONFLICT = "conflict"
    #: A lock timeout or a lost connection mid-statement: worth a retry (503).
    BUSY = "busy"
    #: The database server cannot be reached now (restarting, failing over, network) (503).
    UNREACHABLE = "unreachable"
    #: The database refused text in the request: a NUL character or a lone surrogate (422).
    UNSTORABLE_TEXT = "unstorable_text"
    #: A query with more values than the driver can send (PostgreSQL: 32767) (422).
    TOO_MANY_VALUES = "too_many_values"
    #: Anything else (bad SQL, a bug; or not a database error at all) (500).
    UNEXPECTED = "unexpected"


#: asyncpg's errors for a server that cannot be reached or a connection that was lost.
_ASYNCPG_UNREACHABLE = frozenset(
    {
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "AdminShutdownError",
        "CrashShutdownError",
        "TooManyConnectionsError",
        "InterfaceError",
    }
)


#: asyncpg's refusal of a statement with more than 32767 parameters (a huge filter list).
_TOO_MANY_ARGUMENTS = "number of query arguments cannot exceed"


def classify(exc: BaseException) -> Fault:
    """The kind of failure ``exc`` is; ``Fault.UNEXPECTED`` for anything not recognised."""
    if isinstance(exc, IntegrityError):
        return Fault.CONFLICT
    if isinstance(exc, UnicodeEncodeError) and "surrogates not allowed" in str(exc):
        return Fault.UNSTORABLE_TEXT  # sqlite3 binding a str with a lone surrogate
    if _TOO_MANY_ARGUMENTS in str(getattr(exc, "orig", None) or exc):
        return Fault.TOO_MANY_VALUES  # before UNREACHABLE: asyncpg calls it an InterfaceError
    if isinstance(exc, DBAPIError):
        if _is_transient(exc):
            return Fault.BUSY
        if _is_unstorable_text(exc):
            return Fault.UNSTORABLE_TEXT
    if _is_unreachable(exc):
        return Fault.UNREACHABLE
    return Fault.UNEXPECTED


def is_busy(error: OperationalError) -> bool:
    """SQLite could not take a lock in time (another writer holds it)."""
    message = str(error.orig).lower()
    return "locked" in message or "busy" in message


def connection_error_classes(is_sqlite: bool) -> list[type[Exception]]:
    """The driver's own connection errors, which reach the app unwrapped by SQLAlchemy."""
    classes: list[type[Exception]] = [OSError]
    if is_sqlite:
        return classes  # no asyncpg errors here; importing it costs ~20 ms and ~3 MiB
    try:
        import asyncpg
    except ImportError:  # the postgres extra is not installed: SQLite only
        return classes
    exceptions = asyncpg.exceptions
    return [
        *classes,
        exceptions.PostgresConnectionError,
        exceptions.OperatorInterventionError,
        exceptions.InterfaceError,
    ]


def _is_transient(exc: DBAPIError) -> bool:
    """Lock timeouts and lost connections are worth a client retry; bad SQL is not."""
    if exc.connection_invalidated or _is_unreachable(exc.orig):
        return True
    if isinstance(exc, OperationalError):
        return is_busy(exc) or "connect" in str(exc.orig).lower()
    return False


def _is_unstorable_text(exc: DBAPIError) -> bool:
    """PostgreSQL refuses NUL characters in text and JSONB, and lone surrogate escapes in
    JSONB (the JSON deputy writes is otherwise always valid); that is the client's input."""
    message = str(exc.orig).lower()
    return (
        "0x00" in message
        or "\\u0000" in message
        or "invalid input syntax for type json" in message
        # A NUL escape inside JSONB (asyncpg's UntranslatableCharacterError).
        or "unsupported unicode escape sequence" in message
        # A lone surrogate in a text parameter (asyncpg cannot encode it).
        or "surrogates not allowed" in message
    )


def _is_unreachable(exc: BaseException | None) -> bool:
    """The database server cannot be reached: an OS-level connection error, or one of
    asyncpg's, found on ``exc`` or its causes."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, ConnectionError | TimeoutError):
            return True
        name = type(seen).__name__
        if type(seen).__module__.startswith("asyncpg") and name in _ASYNCPG_UNREACHABLE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
