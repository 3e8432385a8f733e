"""Offsets and page numbers beyond what the databases take are a 422, never a 500.

A page past the largest 64-bit OFFSET could only be empty; Prefect 3.9.1 answers 500 there.
"""

from __future__ import annotations

import httpx
import pytest

from deputy.schemas.core import MAX_OFFSET, MAX_PAGE

OFFSET_ROUTES = [
    "/flows/filter",
    "/flow_runs/filter",
    "/deployments/filter",
    "/task_runs/filter",
    "/logs/filter",
    "/variables/filter",
    "/artifacts/filter",
    "/artifacts/latest/filter",
    "/work_pools/filter",
    "/work_queues/filter",
    "/v2/concurrency_limits/filter",
    "/concurrency_limits/filter",
]
PAGE_ROUTES = ["/flows/paginate", "/deployments/paginate", "/task_runs/paginate"]


@pytest.mark.parametrize("route", OFFSET_ROUTES)
async def test_the_largest_offset_is_an_empty_page_and_beyond_it_a_422(
    client: httpx.AsyncClient, route: str
) -> None:
    largest = await client.post(route, json={"offset": MAX_OFFSET})
    assert (largest.status_code, largest.json()) == (200, [])
    beyond = await client.post(route, json={"offset": MAX_OFFSET + 1})
    assert beyond.status_code == 422
    assert beyond.json()["exception_detail"][0]["type"] == "less_than_equal"


@pytest.mark.parametrize("route", PAGE_ROUTES)
async def test_the_largest_page_is_empty_and_beyond_it_a_422(
    client: httpx.AsyncClient, route: str
) -> None:
    largest = await client.post(route, json={"page": MAX_PAGE, "limit": 200})
    assert largest.status_code == 200
    assert largest.json()["results"] == []
    beyond = await client.post(route, json={"page": MAX_PAGE + 1})
    assert beyond.status_code == 422
