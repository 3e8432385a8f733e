"""Routes for /v2/concurrency_limits (lease renewal, which clients holding slots call)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Body, Path, Response, status

from deputy.api.deps import DatabaseDep
from deputy.api.responses import FastRouter
from deputy.orchestration.policy import DEFAULT_LEASE_SECONDS
from deputy.services import leases
from deputy.services.common import now

router = FastRouter(prefix="/v2/concurrency_limits", tags=["Concurrency Limits V2"])


@router.post("/leases/{lease_id}/renew", status_code=status.HTTP_204_NO_CONTENT)
async def renew_concurrency_lease(
    lease_id: Annotated[uuid.UUID, Path(description="The ID of the lease to renew")],
    database: DatabaseDep,
    lease_duration: Annotated[
        float | None,
        Body(ge=60, le=86400, embed=True, description="The duration of the lease in seconds."),
    ] = 300,
) -> Response:
    """Keep a concurrency lease alive; 410 once it expired or was revoked."""
    duration = lease_duration if lease_duration is not None else DEFAULT_LEASE_SECONDS
    async with database.write() as conn:
        await leases.renew_lease(conn, lease_id, duration, now())
    return Response(status_code=204)
