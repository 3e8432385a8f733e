"""Routes for /block_schemas and /block_capabilities."""

from __future__ import annotations

from deputy.api.responses import FastRouter

router = FastRouter(prefix="/block_schemas", tags=["Block schemas"])
capabilities_router = FastRouter(prefix="/block_capabilities", tags=["Block capabilities"])
