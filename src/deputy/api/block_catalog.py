"""``POST /block_types/install_system_block_types``: Prefect's protected block types, from
the catalog of its distribution (``deputy.catalog``)."""

from __future__ import annotations

from fastapi import Request

from deputy.api.collections import catalog_source
from deputy.api.deps import DatabaseDep, request_now
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.services.blocks import catalog as block_catalog

router = FastRouter(prefix="/block_types", tags=["Block types"])


@router.post("/install_system_block_types")
async def install_system_block_types(request: Request, database: DatabaseDep) -> JSONResponse:
    """Create (or restore and protect) the ``secret``, ``webhook`` and ``local-file-system``
    types with their schemas; answers ``null``. Without Prefect's distribution (the ``ui``
    extra, or ``DEPUTY_BLOCK_CATALOG=false``) there is nothing to install."""
    files = await catalog_source(request).block_catalog()
    if files is not None:
        catalog = files.parse()
        async with database.write() as conn:
            await block_catalog.install_system_block_types(conn, catalog, now=request_now(request))
    return json_response(None)
