"""Text no database can take (a lone surrogate escape, valid JSON but not valid Unicode) in
fields the request models do not check: a clear 422 in Prefect's shape, never a 500, and
nothing written."""

from __future__ import annotations

import httpx
import pytest

from databases import DatabaseBackends
from deputy.app import TOO_MANY_VALUES, UNSTORABLE_TEXT

LONE = "\\ud800"
HEADERS = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/artifacts/", '{"key": "k", "description": "%s"}'),
        ("/flows/filter", '{"flows": {"name": {"any_": ["%s"]}}}'),
        ("/flows/filter", '{"flows": {"tags": {"all_": ["%s"]}}}'),
        ("/variables/filter", '{"variables": {"name": {"any_": ["%s"]}}}'),
        ("/variables/filter", '{"variables": {"tags": {"all_": ["%s"]}}}'),
    ],
)
async def test_a_lone_surrogate_is_a_422_never_a_500(
    client: httpx.AsyncClient, path: str, body: str
) -> None:
    response = await client.post(path, content=body % LONE, headers=HEADERS)
    assert response.status_code == 422, response.text
    if response.json().get("detail") != UNSTORABLE_TEXT:  # pydantic refused it first
        assert response.json()["exception_detail"][0]["type"] == "string_unicode"
    listed = await client.post("/artifacts/filter", json={})
    assert listed.json() == []


async def test_a_filter_list_beyond_one_query_is_a_422_not_a_retry(
    client: httpx.AsyncClient, test_databases: DatabaseBackends
) -> None:
    """More ids than asyncpg can bind in one statement (32767): a clear 422 on PostgreSQL, not
    the 503 that would make clients retry the same request for ever. SQLite binds them."""
    ids = [f"00000000-0000-4000-8000-{index:012d}" for index in range(40_000)]
    response = await client.post("/flows/filter", json={"flows": {"id": {"any_": ids}}})
    if test_databases.is_postgres:
        assert (response.status_code, response.json()) == (422, {"detail": TOO_MANY_VALUES})
    else:
        assert (response.status_code, response.json()) == (200, [])
