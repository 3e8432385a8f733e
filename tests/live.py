"""The test's app served over real sockets (uvicorn in the test's own event loop), for the
websocket endpoints; every wait on a socket is bounded by a deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from servers import free_port

#: Longest any single wait on a socket may take before the test fails.
DEADLINE = 5.0


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` (whose lifespan the ``app`` fixture already runs) on a free port;
    yields the websocket base URL of its API, ``ws://127.0.0.1:<port>/api``."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", ws="auto"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(DEADLINE):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield f"ws://127.0.0.1:{port}/api"
    finally:
        server.should_exit = True
        async with asyncio.timeout(DEADLINE):
            await task


@asynccontextmanager
async def prefect_socket(
    url: str, *, auth: bool = True, subprotocol: bool = True
) -> AsyncIterator[ClientConnection]:
    """A websocket as Prefect's clients open it: the ``prefect`` subprotocol, then the auth
    message, answered with ``auth_success``."""
    options: dict[str, Any] = {"subprotocols": ["prefect"]} if subprotocol else {}
    async with asyncio.timeout(DEADLINE):
        websocket = await connect(url, open_timeout=DEADLINE, **options)
    try:
        if subprotocol and auth:
            await websocket.send(json.dumps({"type": "auth", "token": None}))
            assert await receive(websocket) == {"type": "auth_success"}
        yield websocket
    finally:
        async with asyncio.timeout(DEADLINE):
            await websocket.close()


async def receive(websocket: ClientConnection) -> Any:
    """The next message as JSON, failing the test after ``DEADLINE`` seconds."""
    async with asyncio.timeout(DEADLINE):
        return json.loads(await websocket.recv())


async def nothing_within(websocket: ClientConnection, seconds: float) -> bool:
    """True when no message arrives within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await websocket.recv()
    except TimeoutError:
        return True
    return False


async def closed_with(websocket: ClientConnection) -> tuple[int | None, str | None]:
    """The close code and reason the server closed the socket with."""
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                await websocket.recv()
    except ConnectionClosed as closed:
        received = closed.rcvd
        return (received.code, received.reason) if received else (None, None)
