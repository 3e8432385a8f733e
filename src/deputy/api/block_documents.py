"""Routes for /block_documents, and a block type's documents under /block_types/slug/{slug}."""

from __future__ import annotations

from deputy.api.responses import FastRouter

router = FastRouter(prefix="/block_documents", tags=["Block documents"])
type_documents_router = FastRouter(prefix="/block_types", tags=["Block types"])
