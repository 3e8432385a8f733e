"""Fast JSON in and out: orjson for bodies, shaped like pydantic's JSON (UTC as ``Z``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """Types orjson does not know: driver UUIDs (asyncpg), sets, and anything with a str."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def dumps(content: Any) -> bytes:
    try:
        return orjson.dumps(content, option=_OPTIONS, default=_default)
    except (TypeError, orjson.JSONEncodeError):
        # Integers beyond 64 bits or nesting beyond orjson's depth: the standard library
        # writes what it can parse, so every body a client may send can be echoed back.
        return json.dumps(content, default=_default, separators=(",", ":")).encode()


class JSONResponse(Response):
    """A JSON response rendered by orjson; routes return it with a pre-shaped dict."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content=content, status_code=status_code)


class _OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                # orjson is stricter (64-bit integers, nesting depth); the standard library
                # decides, so a valid document is never refused and errors read like Python's.
                self._json = json.loads(body)
        return self._json


class FastRoute(APIRoute):
    """An APIRoute that parses request bodies with orjson."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(_OrjsonRequest(request.scope, request.receive))

        return route_handler
