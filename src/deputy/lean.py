"""What the serving process leaves out, or loads only when first needed, so that it starts
sooner and stays smaller. Only ``deputy server start`` applies these; an app built in
another process (the test suite's, for one) is unaffected.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any


def leave_out_pydantic_v1() -> None:
    """Keep ``pydantic.v1`` unloaded.

    While it registers routes, FastAPI imports ``pydantic.v1`` (23 modules, about 1.5 MiB and
    20 ms here) only to check that no route uses a pydantic-v1 model. deputy has none. A
    ``None`` entry in ``sys.modules`` makes the import fail (Python's documented way to mark a
    module absent), and FastAPI then answers "not a v1 model" without loading it.
    """
    if "pydantic.v1" not in sys.modules:
        sys.modules["pydantic.v1"] = None  # type: ignore[assignment]


def websocket_protocol(*args: Any, **kwargs: Any) -> asyncio.Protocol:
    """uvicorn's websocket protocol, imported at the first websocket upgrade.

    Passed to uvicorn in place of the protocol class: uvicorn only calls it, once per
    upgraded connection. Importing the protocol and ``websockets`` at start-up would cost
    0.7 MiB and 8 ms for a feature many deployments never use (the events streams).
    """
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    return WebSocketsSansIOProtocol(*args, **kwargs)
