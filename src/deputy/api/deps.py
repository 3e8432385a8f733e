"""Typed dependencies shared by the routers.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool,
one thread hop per dependency per request. The clock is no dependency: a route calls
:func:`request_now` itself (free on the hot paths).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Body, Depends, Path, Request
from pydantic import BeforeValidator
from starlette.requests import HTTPConnection

from deputy.blocks.crypto import Cipher
from deputy.db.engine import Database
from deputy.services.common import Clock
from deputy.services.scheduler import Horizon


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_horizon(request: Request) -> Horizon:
    """How far ahead schedules keep runs, from the app's settings."""
    return Horizon.from_settings(request.app.state.settings)


def app_clock(connection: HTTPConnection) -> Clock:
    """The app's clock (``create_api_app``'s ``clock``)."""
    clock: Clock = connection.app.state.clock
    return clock


def request_now(connection: HTTPConnection) -> dt.datetime:
    """The request's one reading of the app's clock, handed to the service as ``now``.
    Routes read it once their transaction has begun, where services used to."""
    clock: Clock = connection.app.state.clock
    return clock()


class CipherSlot:
    """The block documents' cipher, opened once: at start by the app's lifespan, or on first
    use by an app built without it (as some tests build theirs)."""

    def __init__(self, opener: Callable[[], Awaitable[Cipher]]) -> None:
        self._opener = opener
        self._cipher: Cipher | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> Cipher:
        if self._cipher is None:
            async with self._lock:
                if self._cipher is None:
                    self._cipher = await self._opener()
        return self._cipher


async def get_cipher(request: Request) -> Cipher:
    slot: CipherSlot = request.app.state.cipher
    return await slot.get()


DatabaseDep = Annotated[Database, Depends(get_database)]
HorizonDep = Annotated[Horizon, Depends(get_horizon)]
CipherDep = Annotated[Cipher, Depends(get_cipher)]

#: A ``{id:uuid}`` path segment: a malformed id does not match the route (404, as Prefect).
IdPath = Annotated[uuid.UUID, Path(alias="id")]


def _null_is_false(value: Any) -> Any:
    return False if value is None else value


#: set_state's ``force``: ``null`` counts as not sent (false), as Prefect's server takes it.
ForceBody = Annotated[bool, BeforeValidator(_null_is_false), Body()]


_CLIENT_VERSION = re.compile(r"prefect/(\d+)\.(\d+)\.(\d+)")


async def get_client_version(request: Request) -> tuple[int, ...] | None:
    """The Prefect client's version from ``User-Agent: prefect/3.9.1 (API 0.8.4)``, if any."""
    user_agent = request.headers.get("user-agent")
    if not user_agent:
        return None
    match = _CLIENT_VERSION.search(user_agent)
    return tuple(int(part) for part in match.groups()) if match else None


ClientVersionDep = Annotated[tuple[int, ...] | None, Depends(get_client_version)]


async def get_created_by(request: Request) -> dict[str, Any] | None:
    """``created_by`` from the ``Prefect-Automation-ID`` / ``-Name`` (base64) headers that
    automations send; nothing unless both are present and valid."""
    return created_by_from(request.headers)


def created_by_from(headers: Mapping[str, str]) -> dict[str, Any] | None:
    """:func:`get_created_by` for headers at hand."""
    automation_id = headers.get("prefect-automation-id")
    name = headers.get("prefect-automation-name")
    if not automation_id or not name:
        return None
    try:
        parsed_id = uuid.UUID(automation_id)
        display_value = base64.b64decode(name, validate=True).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return {"id": str(parsed_id), "type": "AUTOMATION", "display_value": display_value}


CreatedByDep = Annotated[dict[str, Any] | None, Depends(get_created_by)]
