"""Plain ASGI middleware for the checks every API request gets (cheaper than dependencies)."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from deputy.api.responses import dumps

MINIMUM_API_VERSION = (0, 8, 0)
_MINIMUM_TEXT = ".".join(map(str, MINIMUM_API_VERSION))


class PrefectHeadersMiddleware:
    """Refuse too-old ``X-PREFECT-API-VERSION`` headers; default a missing JSON content type.

    Prefect clients older than 3.6.19 send JSON bodies without a Content-Type header; FastAPI
    would not parse them, so ``application/json`` is assumed, as Prefect's server does.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        version: bytes | None = None
        has_content_type = False
        has_body = False
        for name, value in scope["headers"]:
            if name == b"x-prefect-api-version":
                version = value
            elif name == b"content-type":
                has_content_type = True
            elif name == b"content-length":
                has_body = value not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = True
        if version:
            problem = _version_problem(version.decode("latin-1"))
            if problem is not None:
                await _send_json(send, 400, {"detail": problem})
                return
        if has_body and not has_content_type and scope["method"] in ("POST", "PUT", "PATCH"):
            scope = {
                **scope,
                "headers": [*scope["headers"], (b"content-type", b"application/json")],
            }
        await self.app(scope, receive, send)


def _version_problem(version: str) -> str | None:
    try:
        major, minor, patch = (int(part) for part in version.split("."))
    except ValueError:
        return (
            "Invalid X-PREFECT-API-VERSION header format."
            f"Expected header in format 'x.y.z' but received {version}"
        )
    if (major, minor, patch) < MINIMUM_API_VERSION:
        return (
            f"The request specified API version {version} but this "
            f"server requires version {_MINIMUM_TEXT} or higher."
        )
    return None


async def _send_json(send: Send, status: int, content: Any) -> None:
    body = dumps(content)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
