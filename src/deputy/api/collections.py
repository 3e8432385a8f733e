"""Routes for /collections/views: the worker and block catalogs Prefect ships, answered from
its distribution's files (``deputy.catalog.views``), never fetched from the network."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from deputy.api.responses import FastRouter
from deputy.catalog.cache import CatalogSource
from deputy.catalog.views import (
    MissingView,
    UnknownView,
    missing_view_message,
    unknown_view_message,
    view_content,
)
from deputy.errors import NotFound

router = FastRouter(prefix="/collections", tags=["Collections"])


def catalog_source(request: Request) -> CatalogSource:
    """The app's source of Prefect's catalogs (``create_api_app`` sets it)."""
    source: CatalogSource = request.app.state.catalog
    return source


@router.get("/views/{view}", response_model=dict[str, Any])
async def read_view_content(view: str, request: Request) -> Response:
    """A view of the collection registry: 404 for a view the registry does not have."""
    files = await catalog_source(request).files()
    try:
        content = view_content(files, view)
    except UnknownView:
        raise NotFound(unknown_view_message(view)) from None
    except MissingView:
        raise NotFound(missing_view_message(view)) from None
    return Response(content, media_type="application/json")
