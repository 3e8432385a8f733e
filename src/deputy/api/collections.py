"""Routes for /collections/views: the worker and block catalogs Prefect ships."""

from __future__ import annotations

from deputy.api.responses import FastRouter

router = FastRouter(prefix="/collections", tags=["Collections"])
