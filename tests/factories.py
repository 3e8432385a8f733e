"""Typed async helpers that create objects through the API and return their JSON."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_flow(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("flow"), **fields}
    response = await client.post("/flows/", json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def create_work_pool(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": unique("pool"), "type": "process", **fields}
    response = await client.post("/work_pools/", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def create_deployment(
    client: httpx.AsyncClient, flow: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    flow = flow or await create_flow(client)
    body = {"name": unique("deployment"), "flow_id": flow["id"], **fields}
    response = await client.post("/deployments/", json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result
