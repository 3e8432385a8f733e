"""Automations are not stored: the one route served says so, the others stay 404 on purpose."""

from __future__ import annotations

import uuid

import httpx


async def test_no_automation_relates_to_any_resource(client: httpx.AsyncClient) -> None:
    """``prefect deployment inspect`` reads this for every deployment."""
    response = await client.get(f"/automations/related-to/prefect.deployment.{uuid.uuid4()}")
    assert (response.status_code, response.json()) == (200, [])


async def test_deleting_owned_automations_stays_404(client: httpx.AsyncClient) -> None:
    """The Prefect client reads this 404 as "no automations here" and skips a deployment's
    triggers; any other answer would make it create automations deputy cannot store."""
    response = await client.delete(f"/automations/owned-by/prefect.deployment.{uuid.uuid4()}")
    assert response.status_code == 404
    assert (await client.post("/automations/", json={})).status_code == 404
