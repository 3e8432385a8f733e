"""Building the ASGI application: the API under ``/api``, its database, and its error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from deputy import __version__
from deputy.api import ROUTERS
from deputy.api.fast_path import CreateFlowRunFastPath
from deputy.api.middleware import PrefectHeadersMiddleware
from deputy.api.responses import JSONResponse
from deputy.api.validation import request_validation_handler
from deputy.db import migrate
from deputy.db.engine import Database
from deputy.errors import DeputyError, ServiceUnavailable, Unprocessable, integrity_conflict
from deputy.services import background
from deputy.services.events import bus as events
from deputy.settings import Settings

logger = logging.getLogger("deputy")


def create_app(settings: Settings, *, migrate_on_start: bool = True) -> FastAPI:
    """The root app: lifespan opens (and migrates) the database; the API is mounted at /api."""
    database = Database(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if migrate_on_start:
            await migrate.upgrade(database)
        events.bus.start(database)
        tasks = background.start(settings, database)
        try:
            yield
        finally:
            await background.stop(tasks)
            await events.bus.stop()  # writes the events still queued
            await database.dispose()

    api = create_api_app(settings, database)
    root = FastAPI(title="deputy", version=__version__, lifespan=lifespan, openapi_url=None)
    root.state.settings = settings
    root.state.database = database
    root.mount("/api", api)
    return root


def create_api_app(settings: Settings, database: Database) -> FastAPI:
    """The Prefect-compatible REST API, with paths as Prefect lists them (no ``/api``)."""
    api = FastAPI(
        title="deputy",
        version=__version__,
        description="A fast, lean server for the Prefect 3 REST API.",
        default_response_class=JSONResponse,
    )
    api.state.settings = settings
    api.state.database = database
    for router in ROUTERS:
        api.include_router(router)
    # Added first, so it runs after the header checks (Starlette runs the last added first).
    api.add_middleware(CreateFlowRunFastPath)
    api.add_middleware(PrefectHeadersMiddleware)
    _add_error_handlers(api, database)
    return api


def _add_error_handlers(api: FastAPI, database: Database) -> None:
    api.add_exception_handler(RequestValidationError, request_validation_handler)
    api.add_exception_handler(DeputyError, _deputy_error_handler)
    api.add_exception_handler(IntegrityError, _integrity_error_handler)
    api.add_exception_handler(DBAPIError, _database_error_handler)
    # Connection failures come straight from the driver (not wrapped by SQLAlchemy); handled
    # here, not by the catch-all, so the client's keep-alive connection stays usable.
    for error_class in _driver_connection_errors(database):
        api.add_exception_handler(error_class, _unexpected_error_handler)
    api.add_exception_handler(Exception, _unexpected_error_handler)


async def _deputy_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DeputyError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


async def _integrity_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    logger.info("integrity conflict: %s", exc)
    return await _deputy_error_handler(_request, integrity_conflict())


def _is_transient(exc: DBAPIError) -> bool:
    """Lock timeouts and lost connections are worth a client retry; bad SQL is not."""
    if exc.connection_invalidated or _is_database_unreachable(exc.orig):
        return True
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        return "locked" in message or "busy" in message or "connect" in message
    return False


UNSTORABLE_TEXT = (
    "The request contains text PostgreSQL cannot store (a NUL character, \\u0000, or a lone "
    "surrogate escape such as \\ud800)."
)


def _is_unstorable_text(exc: DBAPIError) -> bool:
    """PostgreSQL refuses NUL characters in text and JSONB, and lone surrogate escapes in
    JSONB (the JSON deputy writes is otherwise always valid); that is the client's input."""
    message = str(exc.orig).lower()
    return (
        "0x00" in message or "\\u0000" in message or "invalid input syntax for type json" in message
    )


async def _database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if _is_transient(exc):
        logger.warning("transient database error, answering 503: %s", exc)
        return await _deputy_error_handler(request, ServiceUnavailable())
    if _is_unstorable_text(exc):
        return await _deputy_error_handler(request, Unprocessable(UNSTORABLE_TEXT))
    return await _unexpected_error_handler(request, exc)


def _is_database_unreachable(exc: BaseException | None) -> bool:
    """The database server cannot be reached right now (restarting, failing over, network).

    Connecting raises the driver's own errors, not SQLAlchemy's: OS-level connection errors,
    or asyncpg's "cannot connect now" / connection-lost errors.
    """
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


def _driver_connection_errors(database: Database) -> list[type[Exception]]:
    classes: list[type[Exception]] = [OSError]
    if database.is_sqlite:
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


async def _unexpected_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if _is_database_unreachable(exc):
        logger.warning("database unreachable, answering 503: %r", exc)
        return await _deputy_error_handler(request, ServiceUnavailable())
    logger.exception("unexpected error", exc_info=exc)
    return JSONResponse({"exception_message": "Internal Server Error"}, status_code=500)
