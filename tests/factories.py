"""Typed async helpers that create objects through the API and return their JSON."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx

from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.services.events.bus import bus


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


async def create_queue(client: httpx.AsyncClient, pool: str, **fields: Any) -> dict[str, Any]:
    response = await client.post(f"/work_pools/{pool}/queues", json=fields)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def queues_of(client: httpx.AsyncClient, pool: str) -> list[dict[str, Any]]:
    response = await client.post(f"/work_pools/{pool}/queues/filter", json={})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
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


STRICT_TEMPLATE = {
    "job_configuration": {"image": "{{ image }}"},
    "variables": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string"},
            "stream_output": {"type": "boolean", "default": True},
        },
    },
}


CLIENT = {"User-Agent": "prefect/3.9.1 (API 0.8.4)"}


async def new_run(
    client: httpx.AsyncClient, deployment: dict[str, Any] | None = None, **body: Any
) -> dict[str, Any]:
    if deployment is None:
        pool = await create_work_pool(client)
        deployment = await create_deployment(client, work_pool_name=pool["name"])
    response = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json=body)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def propose(
    client: httpx.AsyncClient, run_id: str, state_type: str, *, force: bool = False, **state: Any
) -> httpx.Response:
    body = {"state": {"type": state_type, **state}, "force": force}
    return await client.post(f"/flow_runs/{run_id}/set_state", json=body, headers=CLIENT)


async def read_events(
    client: httpx.AsyncClient, flt: dict[str, Any], limit: int = 50
) -> dict[str, Any]:
    await bus.flush()  # events are written in batches; see them before reading
    response = await client.post("/events/filter", json={"filter": flt, "limit": limit})
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


# --- block types and schemas, written straight to the database ------------------------------


async def insert_block_type(database: Database, **fields: Any) -> dict[str, Any]:
    """A ``block_type`` row (no route involved); returns its values."""
    now = dt.datetime.now(dt.UTC)
    slug = unique("type")
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created": now,
        "updated": now,
        "name": slug.replace("-", " ").title(),
        "slug": slug,
        "logo_url": None,
        "documentation_url": None,
        "description": None,
        "code_example": None,
        "is_protected": False,
        **fields,
    }
    async with database.write() as conn:
        await conn.execute(t.block_type.insert().values(**values))
    return values


async def insert_block_schema(
    database: Database, block_type_id: uuid.UUID, **fields: Any
) -> dict[str, Any]:
    """A ``block_schema`` row of the type (no route involved); returns its values."""
    now = dt.datetime.now(dt.UTC)
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created": now,
        "updated": now,
        "checksum": f"sha256:{uuid.uuid4().hex}",
        "fields": {"title": "Block", "type": "object", "properties": {}, "secret_fields": []},
        "capabilities": [],
        "version": "non-versioned",
        "block_type_id": block_type_id,
        **fields,
    }
    async with database.write() as conn:
        await conn.execute(t.block_schema.insert().values(**values))
    return values
