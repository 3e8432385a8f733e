"""Fast JSON in and out: orjson for bodies, shaped like pydantic's JSON (UTC as ``Z``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import starlette.responses
from fastapi import Request, Response
from fastapi.routing import APIRoute, APIRouter

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    """Types orjson does not know: driver UUIDs (asyncpg), sets, and anything with a str."""
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def dumps(content: Any) -> bytes:
    try:
        return orjson.dumps(content, option=_OPTIONS, default=_default)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits, nesting beyond orjson's depth or strings with lone
        # surrogates, all from documents clients sent: the standard library writes those
        # values (it writes whatever it parsed, so every body a client may send can be echoed
        # back) and orjson the rest, so times keep their form and fragments their text.
        return orjson.dumps(_refused_as_fragments(content), option=_OPTIONS, default=_default)


#: The integers orjson writes.
_ORJSON_INTEGERS = range(-(2**63), 2**64)
#: Containers nested deeper than this are written by the standard library (orjson stops at
#: 254 levels).
_ORJSON_DEPTH = 200


def _refused_as_fragments(value: Any, depth: int = 0) -> Any:
    """``value`` with what orjson refuses replaced by fragments the standard library wrote."""
    if isinstance(value, dict):
        if depth >= _ORJSON_DEPTH:
            return _standard_fragment(value)
        return {key: _refused_as_fragments(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if depth >= _ORJSON_DEPTH:
            return _standard_fragment(value)
        return [_refused_as_fragments(item, depth + 1) for item in value]
    if isinstance(value, int) and value not in _ORJSON_INTEGERS:
        return orjson.Fragment(str(value))
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return _standard_fragment(value)
    return value


def _standard_fragment(value: Any) -> orjson.Fragment:
    return orjson.Fragment(json.dumps(value, default=_default, separators=(",", ":")))


class JSONResponse(starlette.responses.JSONResponse):
    """A JSON response rendered by orjson; routes return it with a pre-shaped dict.

    It subclasses Starlette's JSONResponse so FastAPI documents each route's
    ``response_model`` in the OpenAPI schema.
    """

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(content: Any, status_code: int = 200) -> JSONResponse:
    return JSONResponse(content=content, status_code=status_code)


class _OrjsonRequest(Request):
    async def body(self) -> bytes:
        body = await super().body()
        # A JSON ``null`` body reads as no body, so it gets the same "missing" error Prefect
        # answers (FastAPI would otherwise validate None against the model).
        return b"" if body.strip() == b"null" else body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = parse_json(body)
            refuse_deep_nesting(body, self._json)
        return self._json


#: 19 digits in a row may be an integer beyond 64 bits, which orjson would turn into a float.
_LONG_NUMBER = re.compile(rb"\d{19}")


def parse_json(body: bytes) -> Any:
    """orjson when it reads the body exactly; the standard library otherwise.

    orjson refuses very deep nesting and reads integers beyond 64 bits as floats; for those
    bodies (and for invalid ones, so errors read like Python's) the standard library decides.
    """
    if _LONG_NUMBER.search(body) is None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


#: Deepest JSON nesting accepted in a request body. Prefect stores parameters nested 255
#: levels deep and fails with a 500 a little beyond; deputy refuses deeper bodies cleanly.
MAX_BODY_DEPTH = 300


def refuse_deep_nesting(body: bytes, document: Any) -> None:
    """Raise a JSON decode error (422 ``json_invalid``) for bodies nested too deeply.

    Counting brackets in C first keeps this free for ordinary bodies.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_BODY_DEPTH:
        return
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_BODY_DEPTH:
            raise json.JSONDecodeError(
                f"JSON nested deeper than {MAX_BODY_DEPTH} levels", body.decode(errors="replace"), 0
            )
        if isinstance(value, dict):
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)


class FastRoute(APIRoute):
    """An APIRoute that parses request bodies with orjson."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(_OrjsonRequest(request.scope, request.receive))

        return route_handler


class FastRouter(APIRouter):
    """An APIRouter whose routes parse bodies with orjson (``FastRoute``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(route_class=FastRoute, **kwargs)
