"""SQL statements per hot request, counted so that a regression shows up as a failing test."""

from __future__ import annotations

from typing import Any

import httpx

from databases import counted_statements
from deputy.db.engine import Database
from factories import create_deployment, create_work_pool


async def _deployment(client: httpx.AsyncClient) -> dict[str, Any]:
    pool = await create_work_pool(client)
    return await create_deployment(client, work_pool_name=pool["name"], parameters={"x": 1})


async def test_create_flow_run_takes_three_statements(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _deployment(client)
    url = f"/deployments/{deployment['id']}/create_flow_run"
    with counted_statements(database) as statements:
        response = await client.post(url, json={"parameters": {"y": 2}, "tags": ["t"]})
    assert response.status_code == 201
    assert len(statements) == 3, statements  # read deployment, insert run, insert state


async def test_create_flow_run_with_idempotency_key_takes_three_statements_new_or_replayed(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _deployment(client)
    url = f"/deployments/{deployment['id']}/create_flow_run"
    with counted_statements(database) as first:
        assert (await client.post(url, json={"idempotency_key": "k"})).status_code == 201
    with counted_statements(database) as replay:
        assert (await client.post(url, json={"idempotency_key": "k"})).status_code == 200
    assert len(first) == 3, first  # read deployment, insert-or-ignore run, insert state
    assert len(replay) == 3, replay  # read deployment, insert-or-ignore run, read existing


async def test_workspace_variable_hydration_adds_one_query(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _deployment(client)
    await client.post("/variables/", json={"name": "region", "value": "eu"})
    placeholder = {"__prefect_kind": "workspace_variable", "variable_name": "region"}
    url = f"/deployments/{deployment['id']}/create_flow_run"
    with counted_statements(database) as statements:
        response = await client.post(url, json={"parameters": {"r": placeholder}})
    assert response.json()["parameters"] == {"x": 1, "r": "eu"}
    assert len(statements) == 4, statements


async def test_reading_a_flow_run_takes_one_statement(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _deployment(client)
    run = (await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})).json()
    with counted_statements(database) as statements:
        assert (await client.get(f"/flow_runs/{run['id']}")).status_code == 200
    assert len(statements) == 1, statements


async def test_filtering_flow_runs_takes_one_statement(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _deployment(client)
    for _ in range(3):
        await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
    with counted_statements(database) as statements:
        response = await client.post(
            "/flow_runs/filter", json={"deployments": {"id": {"any_": [deployment["id"]]}}}
        )
    assert len(response.json()) == 3
    assert len(statements) == 1, statements


# --- worker polling and heartbeats ---------------------------------------------------------


def _updates(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("UPDATE")]


async def test_first_poll_takes_four_statements_then_a_repeat_takes_two(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _deployment(client)
    pool = deployment["work_pool_name"]
    await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
    url = f"/work_pools/{pool}/get_scheduled_flow_runs"
    with counted_statements(database) as first:
        assert len((await client.post(url, json={})).json()) == 1
    # pool with queues, runs, then the due marks: queues, deployments
    assert len(first) == 4, first
    assert len(_updates(first)) == 2, first
    with counted_statements(database) as repeat:
        assert len((await client.post(url, json={"work_queue_names": ["default"]})).json()) == 1
    assert len(repeat) == 2, repeat  # pool with queues, runs: no row rewritten
    assert _updates(repeat) == [], repeat


async def test_poll_with_concurrency_limits_adds_one_grouped_count(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client, concurrency_limit=5)
    await client.post(
        f"/work_pools/{pool['name']}/queues", json={"name": "limited", "concurrency_limit": 2}
    )
    url = f"/work_pools/{pool['name']}/get_scheduled_flow_runs"
    await client.post(url, json={})
    with counted_statements(database) as statements:
        assert (await client.post(url, json={})).status_code == 200
    assert len(statements) == 3, statements  # pool with queues, grouped count, runs


async def test_poll_of_a_paused_pool_reads_only_the_pool(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client, is_paused=True)
    url = f"/work_pools/{pool['name']}/get_scheduled_flow_runs"
    await client.post(url, json={})
    with counted_statements(database) as statements:
        assert (await client.post(url, json={})).json() == []
    assert len(statements) == 1, statements


async def test_heartbeat_takes_two_statements_three_when_the_pool_turns_ready(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    url = f"/work_pools/{pool['name']}/workers/heartbeat"
    with counted_statements(database) as first:
        assert (await client.post(url, json={"name": "w"})).status_code == 204
    assert len(first) == 3, first  # read pool, upsert worker, pool NOT_READY -> READY
    with counted_statements(database) as repeat:
        assert (await client.post(url, json={"name": "w"})).status_code == 204
    assert len(repeat) == 2, repeat  # read pool, upsert worker


async def test_runner_poll_takes_two_statements(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _deployment(client)
    await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
    body = {"deployment_ids": [deployment["id"]]}
    with counted_statements(database) as statements:
        response = await client.post("/deployments/get_scheduled_flow_runs", json=body)
    assert len(response.json()) == 1
    assert len(statements) == 2, statements  # runs, mark the deployments that need it


async def test_artifact_writes_from_a_running_flow(
    client: httpx.AsyncClient, database: Database
) -> None:
    """What ``create_*_artifact`` and ``update_progress_artifact`` send while a flow runs."""
    with counted_statements(database) as keyless:
        created = await client.post("/artifacts/", json={"type": "progress", "data": 0.0})
    assert created.status_code == 201
    with counted_statements(database) as keyed:
        assert (await client.post("/artifacts/", json={"key": "report"})).status_code == 201
    with counted_statements(database) as progress:
        response = await client.patch(f"/artifacts/{created.json()['id']}", json={"data": 50.0})
    assert response.status_code == 204
    assert len(keyless) == 1, keyless  # insert the version
    assert len(keyed) == 2, keyed  # upsert the key's latest, insert the version
    assert len(progress) == 2, progress  # update the version, and the key's latest if it is
