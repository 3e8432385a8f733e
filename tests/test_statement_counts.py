"""SQL statements per hot request, counted so that a regression shows up as a failing test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from deputy.db.engine import Database
from factories import create_deployment, create_work_pool


@contextmanager
def counted_statements(database: Database) -> Iterator[list[str]]:
    """Every SQL statement sent while the block runs, except transaction control."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    event.listen(database.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(database.sync_engine, "before_cursor_execute", record)


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
