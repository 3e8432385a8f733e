"""Building the ASGI application: the API under ``/api``, its database, and its error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError

from deputy import __version__
from deputy.api import ROUTERS
from deputy.api.deps import CipherSlot
from deputy.api.fast_path import CreateFlowRunFastPath
from deputy.api.middleware import PrefectHeadersMiddleware
from deputy.api.responses import JSONResponse
from deputy.api.validation import request_validation_handler
from deputy.blocks.crypto import (
    KEY_FILE_NAME,
    Cipher,
    InvalidKey,
    KeySource,
    read_or_create_key_file,
)
from deputy.catalog.cache import CatalogSource
from deputy.db import migrate
from deputy.db.engine import Database
from deputy.db.errors import Fault, classify, connection_error_classes
from deputy.errors import DeputyError, ServiceUnavailable, Unprocessable, integrity_conflict
from deputy.services import background, common
from deputy.services.blocks import catalog as block_catalog
from deputy.services.blocks.encryption import EncryptionKeyError, open_cipher, read_cipher
from deputy.services.common import Clock
from deputy.services.events.bus import bus
from deputy.services.task_runs.recorder import record_task_run_event
from deputy.settings import Settings

logger = logging.getLogger("deputy")

#: Stored events that update a domain's tables, by event-name prefix (the bus knows no
#: domain): task-run events are how clients report task runs, as in Prefect.
EVENT_RECORDERS = {"prefect.task-run.": record_task_run_event}


def create_app(
    settings: Settings, *, migrate_on_start: bool = True, clock: Clock = common.now
) -> FastAPI:
    """The root app: lifespan opens (and migrates) the database; the API is mounted at /api.
    ``clock`` is the one every request, background loop and the event bus read (tests fix it)."""
    database = Database(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if migrate_on_start:
            await migrate.upgrade(database)
        await api.state.cipher.get()  # refuses to start with a key that is not the database's
        bus.start(database, recorders=EVENT_RECORDERS, clock=clock)
        tasks = background.start(settings, database, clock)
        catalog_task = block_catalog.start(api.state.catalog, database, clock)
        try:
            yield
        finally:
            await block_catalog.stop(catalog_task, api.state.catalog)
            await background.stop(tasks)
            await bus.stop()  # writes the events still queued
            await database.dispose()

    api = create_api_app(settings, database, clock=clock)
    root = FastAPI(title="deputy", version=__version__, lifespan=lifespan, openapi_url=None)
    root.state.settings = settings
    root.state.database = database
    root.state.cipher = api.state.cipher
    root.mount("/api", api)
    return root


def create_api_app(
    settings: Settings,
    database: Database,
    *,
    fast_path: bool = True,
    clock: Clock = common.now,
) -> FastAPI:
    """The Prefect-compatible REST API, with paths as Prefect lists them (no ``/api``);
    ``fast_path=False`` leaves create_flow_run to its FastAPI route (for the tests). Routes
    read ``clock`` once per request (``api.deps.request_now``)."""
    api = FastAPI(
        title="deputy",
        version=__version__,
        description="A fast, lean server for the Prefect 3 REST API.",
        default_response_class=JSONResponse,
    )
    api.state.settings = settings
    api.state.database = database
    api.state.clock = clock
    api.state.cipher = CipherSlot(lambda: open_block_cipher(settings, database, clock))
    api.state.catalog = CatalogSource(
        home=settings.home, folder=settings.prefect_path, block_catalog=settings.block_catalog
    )
    for router in ROUTERS:
        api.include_router(router)
    # Added first, so it runs after the header checks (Starlette runs the last added first).
    api.add_middleware(CreateFlowRunFastPath, enabled=fast_path)
    api.add_middleware(PrefectHeadersMiddleware)
    _add_error_handlers(api, database)
    return api


async def open_block_cipher(settings: Settings, database: Database, clock: Clock) -> Cipher:
    """The key block documents are encrypted with, checked against the database (which is
    written only on the first start)."""
    try:
        source = block_key_source(settings, database)
        async with database.read() as conn:
            cipher = await read_cipher(conn, source)
        if cipher is not None:
            return cipher
        async with database.write() as conn:
            return await open_cipher(conn, source, now=clock())
    except EncryptionKeyError as error:
        logger.error("%s", error)
        raise


def block_key_source(settings: Settings, database: Database) -> KeySource:
    """Where the key comes from: the setting, else the key file on SQLite, else (PostgreSQL)
    the database itself."""
    secret = settings.encryption_key
    configured = secret.get_secret_value().strip() if secret is not None else ""
    if configured:
        return KeySource(
            configured,
            "DEPUTY_ENCRYPTION_KEY",
            "Set DEPUTY_ENCRYPTION_KEY to the key this database was first used with (every "
            "replica needs the same one).",
        )
    if database.is_sqlite:
        path = settings.home / KEY_FILE_NAME
        try:
            key = read_or_create_key_file(path)
        except InvalidKey as error:
            raise EncryptionKeyError(f"Unusable block encryption key: {error}.") from None
        return KeySource(
            key,
            f"the key file {path}",
            f"Put back the key file {path} this database was first used with, or set "
            "DEPUTY_ENCRYPTION_KEY to that key.",
        )
    return KeySource(
        None,
        "the database",
        "Set DEPUTY_ENCRYPTION_KEY to the key this database's block documents were encrypted with.",
    )


def _add_error_handlers(api: FastAPI, database: Database) -> None:
    api.add_exception_handler(RequestValidationError, request_validation_handler)
    api.add_exception_handler(DeputyError, _deputy_error_handler)
    api.add_exception_handler(DBAPIError, _error_handler)
    # sqlite3 raises this unwrapped when a value holds a lone surrogate (the client's text).
    api.add_exception_handler(UnicodeEncodeError, _error_handler)
    # Connection failures come straight from the driver (not wrapped by SQLAlchemy); handled
    # here, not by the catch-all, so the client's keep-alive connection stays usable.
    for error_class in connection_error_classes(database.is_sqlite):
        api.add_exception_handler(error_class, _error_handler)
    api.add_exception_handler(Exception, _error_handler)


async def _deputy_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DeputyError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


UNSTORABLE_TEXT = (
    "The request contains text the database cannot store (a NUL character, \\u0000, or a lone "
    "surrogate escape such as \\ud800)."
)
TOO_MANY_VALUES = (
    "The request asks about more values than one query can carry (at most 32767); "
    "split it into smaller requests."
)

#: How each kind of database failure is answered, and how loudly it is logged.
_FAULT_ANSWERS: dict[Fault, tuple[Callable[[], DeputyError], int]] = {
    Fault.CONFLICT: (integrity_conflict, logging.INFO),
    Fault.BUSY: (ServiceUnavailable, logging.WARNING),
    Fault.UNREACHABLE: (ServiceUnavailable, logging.WARNING),
    Fault.UNSTORABLE_TEXT: (lambda: Unprocessable(UNSTORABLE_TEXT), logging.INFO),
    Fault.TOO_MANY_VALUES: (lambda: Unprocessable(TOO_MANY_VALUES), logging.INFO),
}


async def _error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Database failures answered by kind (``db/errors.py``); anything else is a bug: 500."""
    fault = classify(exc)
    if fault is Fault.UNEXPECTED:
        logger.exception("unexpected error", exc_info=exc)
        return JSONResponse({"exception_message": "Internal Server Error"}, status_code=500)
    make_error, level = _FAULT_ANSWERS[fault]
    error = make_error()
    logger.log(level, "database error (%s), answering %d: %r", fault.value, error.status_code, exc)
    return await _deputy_error_handler(request, error)
