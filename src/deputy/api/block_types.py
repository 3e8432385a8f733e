"""Routes for /block_types: create, read, update, delete and filter block types."""

from __future__ import annotations

from deputy.api.responses import FastRouter

router = FastRouter(prefix="/block_types", tags=["Block types"])
