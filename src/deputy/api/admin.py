"""Health, version and the other endpoints clients probe before real work."""

from __future__ import annotations

from sqlalchemy import text

from deputy import API_VERSION, PREFECT_COMPATIBLE_VERSION
from deputy.api.deps import DatabaseDep
from deputy.api.responses import FastRouter, JSONResponse, json_response
from deputy.errors import Unprocessable

router = FastRouter(tags=["Root"])


@router.get("/health")
async def health_check() -> bool:
    return True


@router.get("/version")
async def server_version() -> str:
    return API_VERSION


@router.get("/hello")
async def hello() -> str:
    """Say hello!"""
    return "👋"


@router.get("/ready")
async def perform_readiness_check(database: DatabaseDep) -> JSONResponse:
    """Ready when the database answers a trivial query."""
    try:
        async with database.read() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:
        return json_response({"message": "Database is not available"}, status_code=503)
    return json_response({"message": "OK"})


@router.get("/admin/version", tags=["Admin"])
async def read_version() -> str:
    """The Prefect server version deputy is compatible with (clients compare major versions)."""
    return PREFECT_COMPATIBLE_VERSION


@router.get("/csrf-token", tags=["Root"])
async def create_csrf_token(client: str) -> None:
    """CSRF protection is off, as on a default Prefect server; clients then stop asking."""
    raise Unprocessable("CSRF protection is disabled.")
