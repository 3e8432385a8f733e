"""Database errors answered by kind: 409 for a constraint, 503 (with Retry-After) for a held
lock or an unreachable server, 422 for text the database cannot store or a query with too
many values, 500 for the rest."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)

from deputy.app import TOO_MANY_VALUES, UNSTORABLE_TEXT, create_api_app
from deputy.db.engine import Database
from deputy.db.errors import Fault, classify, connection_error_classes, is_busy
from deputy.errors import INTEGRITY_CONFLICT
from deputy.settings import Settings


class CannotConnectNowError(Exception):
    """Stands for asyncpg's error of the same name (matched by module and class name)."""


CannotConnectNowError.__module__ = "asyncpg.exceptions"


class InterfaceError(Exception):
    """Stands for asyncpg's InterfaceError (one of its "unreachable" errors by name)."""


InterfaceError.__module__ = "asyncpg.exceptions"


def _wrapped(error_class: type[DBAPIError], orig: BaseException) -> DBAPIError:
    try:
        raise error_class("SELECT 1", {}, orig) from orig
    except DBAPIError as error:
        return error


def _locked() -> DBAPIError:
    return _wrapped(OperationalError, sqlite3.OperationalError("database is locked"))


def _nul() -> DBAPIError:
    return _wrapped(DataError, ValueError('invalid byte sequence for encoding "UTF8": 0x00'))


def _lone_surrogate() -> UnicodeEncodeError:
    """What sqlite3 raises, unwrapped, binding a str that holds a lone surrogate."""
    return UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")


def _too_many_arguments() -> DBAPIError:
    message = "the number of query arguments cannot exceed 32767"
    return _wrapped(DBAPIError, InterfaceError(message))


def _lost_connection() -> DBAPIError:
    return _wrapped(DBAPIError, CannotConnectNowError("the database system is starting up"))


def _invalidated() -> DBAPIError:
    error = _wrapped(DBAPIError, RuntimeError("connection reset"))
    error.connection_invalidated = True
    return error


def _unreachable_cause() -> Exception:
    try:
        raise RuntimeError("gave up") from ConnectionRefusedError()
    except RuntimeError as error:
        return error


CASES: list[tuple[Callable[[], BaseException], Fault]] = [
    (lambda: _wrapped(IntegrityError, sqlite3.IntegrityError("UNIQUE failed")), Fault.CONFLICT),
    (_locked, Fault.BUSY),
    (lambda: _wrapped(OperationalError, sqlite3.OperationalError("database busy")), Fault.BUSY),
    (lambda: _wrapped(OperationalError, OSError("could not connect")), Fault.BUSY),
    (_invalidated, Fault.BUSY),
    (_lost_connection, Fault.BUSY),
    (_nul, Fault.UNSTORABLE_TEXT),
    (
        lambda: _wrapped(DataError, ValueError("invalid input syntax for type json")),
        Fault.UNSTORABLE_TEXT,
    ),
    (_lone_surrogate, Fault.UNSTORABLE_TEXT),
    (_too_many_arguments, Fault.TOO_MANY_VALUES),
    (ConnectionRefusedError, Fault.UNREACHABLE),
    (lambda: CannotConnectNowError("starting up"), Fault.UNREACHABLE),
    (_unreachable_cause, Fault.UNREACHABLE),
    (
        lambda: _wrapped(ProgrammingError, sqlite3.OperationalError("no such table")),
        Fault.UNEXPECTED,
    ),
    (lambda: KeyError("bug"), Fault.UNEXPECTED),
]


@pytest.mark.parametrize(("make", "fault"), CASES)
def test_classify_names_each_kind_of_failure(
    make: Callable[[], BaseException], fault: Fault
) -> None:
    assert classify(make()) is fault


def test_busy_means_a_held_sqlite_lock_only() -> None:
    assert is_busy(_locked())  # type: ignore[arg-type]
    assert not is_busy(_wrapped(OperationalError, OSError("could not connect")))  # type: ignore[arg-type]


def test_sqlite_registers_only_os_connection_errors() -> None:
    assert connection_error_classes(is_sqlite=True) == [OSError]


ANSWERS: list[tuple[Callable[[], BaseException], int, Any, str | None]] = [
    (
        lambda: _wrapped(IntegrityError, sqlite3.IntegrityError("UNIQUE failed")),
        409,
        {"detail": INTEGRITY_CONFLICT},
        None,
    ),
    (_locked, 503, {"exception_message": "Service Unavailable"}, "1"),
    (_lost_connection, 503, {"exception_message": "Service Unavailable"}, "1"),
    (ConnectionRefusedError, 503, {"exception_message": "Service Unavailable"}, "1"),
    (_unreachable_cause, 503, {"exception_message": "Service Unavailable"}, "1"),
    (_nul, 422, {"detail": UNSTORABLE_TEXT}, None),
    (_lone_surrogate, 422, {"detail": UNSTORABLE_TEXT}, None),
    (_too_many_arguments, 422, {"detail": TOO_MANY_VALUES}, None),
    (
        lambda: _wrapped(ProgrammingError, sqlite3.OperationalError("no such table")),
        500,
        {"exception_message": "Internal Server Error"},
        None,
    ),
    (lambda: KeyError("bug"), 500, {"exception_message": "Internal Server Error"}, None),
]


@pytest.mark.parametrize(("make", "status", "body", "retry_after"), ANSWERS)
async def test_the_app_answers_each_kind_of_failure(
    settings: Settings,
    database: Database,
    make: Callable[[], BaseException],
    status: int,
    body: Any,
    retry_after: str | None,
) -> None:
    api = create_api_app(settings, database)

    async def fail() -> None:
        raise make()

    api.add_api_route("/fail", fail)
    transport = httpx.ASGITransport(app=api, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://deputy.test") as client:
        response = await client.get("/fail")
    assert response.status_code == status
    assert response.json() == body
    assert response.headers.get("retry-after") == retry_after
