"""``POST /deployments/{id}/create_flow_run`` served without FastAPI's per-request machinery.

create_flow_run is the product's heart and its most frequent write. FastAPI spends about a
fifth of its time on routing through ~100 routes, solving dependencies and validating the body
through its own layers. This ASGI middleware serves the ordinary request itself: the path
matched by one regex, the body parsed and validated exactly as the route does it, the same
service in the same kind of transaction, the same response.

Anything unusual is left to the FastAPI route, which stays the reference: a content type other
than JSON, a body that does not parse or validate (the route writes the 422), a malformed id.
Those are decided before any side effect, so the request is simply handed on with its body.
Errors raised once the transaction has begun are answered by the app's own exception handlers,
as the route's would be; they are never retried. ``tests/api/test_fast_path.py`` compares both
ways' answers.

Route and router dependencies do not run here: a check every request must pass (such as
authentication) belongs in a middleware outside this one, as the API-version check is.
"""

from __future__ import annotations

import inspect
import re
import uuid
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.convertors import UUIDConvertor
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deputy.api.deps import created_by_from
from deputy.api.responses import JSONResponse, parse_json, refuse_deep_nesting
from deputy.schemas.deployments import DeploymentFlowRunCreate
from deputy.services.flow_runs import create as runs

#: The route's path, its id matched by Starlette's own ``uuid`` convertor.
_PATH = re.compile(rf"/deployments/({UUIDConvertor.regex})/create_flow_run\Z")


class CreateFlowRunFastPath:
    """The middleware: see the module's documentation. ``enabled=False`` hands every
    request to FastAPI (the tests compare both ways)."""

    def __init__(self, app: ASGIApp, *, enabled: bool = True) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _route_match(scope) if self.enabled else None
        if match is None:
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        if disconnected:  # the client left before sending its body: nobody to answer
            return
        request = _valid_request(body)
        if request is None:
            await self.app(scope, _replaying(body, receive), send)
            return
        app = scope["app"]
        try:
            async with app.state.database.write() as conn:
                result = await runs.create_flow_run_from_deployment(
                    conn,
                    uuid.UUID(match.group(1)),
                    request,
                    created_by=created_by_from(Headers(scope=scope)),
                    now=app.state.clock(),  # as the route's request_now
                )
        except Exception as exc:
            handler = _handler_for(app, exc)
            if handler is None:  # left to the server-error middleware, as the route's are
                raise
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
        else:
            response = JSONResponse(result.body, status_code=result.status_code)
        await response(scope, receive, send)


def _route_match(scope: Scope) -> re.Match[str] | None:
    if scope["type"] != "http" or scope["method"] != "POST" or not _is_json(scope):
        return None
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):  # mounted at /api
        path = path[len(root) :]
    return _PATH.match(path)


def _is_json(scope: Scope) -> bool:
    """A JSON content type, as FastAPI reads bodies (``application/json``, any parameters)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.partition(b";")[0].strip().lower() == b"application/json")
    return False


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _valid_request(body: bytes) -> DeploymentFlowRunCreate | None:
    """The body as the route would validate it, or ``None`` for the route to answer."""
    if body.strip() in (b"", b"null"):
        return None
    try:
        document = parse_json(body)
        refuse_deep_nesting(body, document)
        return DeploymentFlowRunCreate.model_validate(document)
    except (ValueError, ValidationError, RecursionError):  # JSON errors are ValueErrors
        return None


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the body already read to the app, then defers to ``receive``."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def _handler_for(app: Starlette, exc: Exception) -> Any:
    """The app's handler for ``exc`` as Starlette's exception middleware picks it; ``None``
    for the catch-all (``Exception``), which the server-error middleware applies."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
