"""Prefect's small websocket protocol, shared by ``/events/in``, ``/events/out``, ``/logs/out``.

A client offering the ``prefect`` subprotocol is accepted with it and must first send
``{"type": "auth", "token": ...}``; deputy has no API auth, so any token is answered with
``{"type": "auth_success"}``. Any other first message closes the socket with 1008 "Expected
'auth' message". A client without the subprotocol (older clients) is accepted without the
handshake, as Prefect does when no auth is configured.

Streams that send (``/events/out``, ``/logs/out``) then expect ``{"type": "filter", "filter":
{...}}``: anything else closes with 1002 "Expected 'filter' message", an invalid filter with
1002 "Invalid filter: ...". While streaming, a reader task watches for the client leaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect

from deputy.api.responses import dumps

logger = logging.getLogger("deputy.api.sockets")

WS_1002_PROTOCOL_ERROR = 1002
WS_1008_POLICY_VIOLATION = 1008
#: A close frame's reason is at most 123 bytes.
_MAX_REASON_BYTES = 123

_AUTH_SUCCESS = dumps({"type": "auth_success"}).decode()


class Disconnected(Exception):
    """The client went away."""


@functools.cache
def _gone() -> tuple[type[BaseException], ...]:
    """What sending to a client that has gone raises (Starlette, uvicorn, websockets).

    Built when first needed, so that ``websockets`` loads with the first socket (as the
    server's websocket protocol does, see ``deputy.lean``), not at start-up.
    """
    from websockets.exceptions import ConnectionClosed

    return (Disconnected, WebSocketDisconnect, RuntimeError, OSError, ConnectionClosed)


async def receive_text(websocket: WebSocket) -> str | bytes:
    """The next text (or binary) frame; raises ``Disconnected`` when the client leaves."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise Disconnected()
    text: str | None = message.get("text")
    if text is not None:
        return text
    data: bytes | None = message.get("bytes")
    return data if data is not None else b""


async def receive_json(websocket: WebSocket) -> Any:
    """The next frame as JSON, or ``None`` when it is not JSON."""
    raw = await receive_text(websocket)
    try:
        return json.loads(raw)
    except ValueError:
        return None


def close_reason(text: str) -> str:
    """``text`` cut to fit a close frame."""
    encoded = text.encode()
    if len(encoded) <= _MAX_REASON_BYTES:
        return text
    return encoded[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


async def close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):  # already gone: nothing to tell
        await websocket.close(code, reason=close_reason(reason))


async def accept_prefect_socket(websocket: WebSocket) -> bool:
    """Accept the socket and run the auth handshake; False when the client is not usable."""
    offered = [
        protocol.strip()
        for header in websocket.headers.getlist("sec-websocket-protocol")
        for protocol in header.split(",")
    ]
    if "prefect" not in offered:
        await websocket.accept()
        return True
    await websocket.accept(subprotocol="prefect")
    try:
        message = await receive_json(websocket)
    except Disconnected:
        return False
    if not isinstance(message, dict) or message.get("type") != "auth":
        await close(websocket, WS_1008_POLICY_VIOLATION, "Expected 'auth' message")
        return False
    try:
        await websocket.send_text(_AUTH_SUCCESS)
    except Exception:
        return False
    return True


async def receive_filter(websocket: WebSocket) -> dict[str, Any] | None:
    """The filter message (``type`` must be ``filter``); None after closing the socket."""
    try:
        message = await receive_json(websocket)
    except Disconnected:
        return None
    if not isinstance(message, dict) or message.get("type") != "filter":
        await close(websocket, WS_1002_PROTOCOL_ERROR, "Expected 'filter' message")
        return None
    return message


async def _until_disconnected(websocket: WebSocket) -> None:
    """Read (and ignore) frames until the client leaves."""
    with contextlib.suppress(*_gone()):
        while True:
            await receive_text(websocket)


async def stream_until_disconnected(
    websocket: WebSocket, send_all: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Run ``send_all`` until it returns, fails, or the client leaves, whichever is first."""
    sender = asyncio.create_task(send_all())
    reader = asyncio.create_task(_until_disconnected(websocket))
    try:
        done, _ = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, reader):
            task.cancel()
        await asyncio.gather(sender, reader, return_exceptions=True)
    if sender in done and not sender.cancelled():
        error = sender.exception()
        if error is not None and not isinstance(error, _gone()):
            logger.warning("stream to a websocket client failed", exc_info=error)
