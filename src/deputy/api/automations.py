"""The one automations route deputy serves: which automations concern a resource.

deputy stores no automations (see docs/compatibility.md), so the answer is always an empty
list. ``prefect deployment inspect`` reads it for every deployment and fails on a 404.
Every other automations route stays a 404 on purpose: the Prefect client reads a 404 from
``DELETE /automations/owned-by/{id}`` as "this server has no automations" and then skips a
deployment's triggers instead of failing the deployment.
"""

from __future__ import annotations

from typing import Any

from deputy.api.responses import FastRouter

router = FastRouter(prefix="/automations", tags=["Automations"])


@router.get("/related-to/{resource_id:str}")
async def read_automations_related_to_resource(resource_id: str) -> list[Any]:
    return []
