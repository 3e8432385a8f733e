"""Who holds a pool's and a queue's concurrency slots (``prefect work-pool slots`` and
``prefect work-queue slots``); expected bodies as Prefect 3.9.1 answers them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from factories import create_deployment, create_work_pool


async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    """A limited pool with queues qb (priority 1), default, qa (limit 2), and runs in them."""
    pool = await create_work_pool(client, concurrency_limit=3)
    name = pool["name"]
    queues: dict[str, Any] = {}
    specs: list[dict[str, Any]] = [
        {"name": "qa", "concurrency_limit": 2},
        {"name": "qb", "priority": 1},
    ]
    for queue in specs:
        created = await client.post(f"/work_pools/{name}/queues", json=queue)
        queues[queue["name"]] = created.json()
    deployment = await create_deployment(client, work_pool_name=name)
    runs = {}
    for run_name, queue_name, state in (
        ("r0", "qa", "PENDING"), ("r1", "qa", "RUNNING"), ("r2", "qb", "RUNNING"),
        ("r3", "qa", "SCHEDULED"), ("r4", "qa", "CANCELLING"),
    ):  # fmt: skip
        response = await client.post(
            f"/deployments/{deployment['id']}/create_flow_run",
            json={"name": run_name, "work_queue_name": queue_name, "state": {"type": state}},
        )
        assert response.status_code == 201, response.text
        runs[run_name] = response.json()
    return {"pool": pool, **queues, "runs": runs}


def names(summaries: list[dict[str, Any]]) -> set[str]:
    return {summary["name"] for summary in summaries}


async def test_pool_slots_are_its_queues_pending_and_running_runs(
    client: httpx.AsyncClient,
) -> None:
    made = await world(client)
    url = f"/work_pools/{made['pool']['name']}/concurrency_status"
    status = (await client.post(url, json={})).json()
    assert (status["active_slots"], status["concurrency_limit"]) == (3, 3)
    assert (status["count"], status["limit"], status["pages"], status["page"]) == (3, 200, 1, 1)
    assert [q["queue_name"] for q in status["queues"]] == ["qb", "default", "qa"]
    by_name = {q["queue_name"]: q for q in status["queues"]}
    assert (by_name["qa"]["active_slots"], by_name["qa"]["flow_run_count"]) == (2, 2)
    assert by_name["qa"]["concurrency_limit"] == 2
    assert names(by_name["qa"]["flow_runs"]) == {"r0", "r1"}  # CANCELLING is not counted here
    assert names(by_name["qb"]["flow_runs"]) == {"r2"}
    assert by_name["default"]["flow_runs"] == []
    r1 = next(s for s in by_name["qa"]["flow_runs"] if s["name"] == "r1")
    assert set(r1) == {
        "id", "name", "state_type", "state_name", "start_time", "state_timestamp",
        "time_in_current_state",
    }  # fmt: skip
    assert (r1["id"], r1["state_type"], r1["state_name"]) == (
        made["runs"]["r1"]["id"], "RUNNING", "Running"
    )  # fmt: skip
    assert r1["time_in_current_state"] >= 0

    page = (await client.post(url, json={"page": 3, "limit": 1, "flow_run_limit": 1})).json()
    assert [q["queue_name"] for q in page["queues"]] == ["qa"]
    assert (len(page["queues"][0]["flow_runs"]), page["queues"][0]["flow_run_count"]) == (1, 2)
    assert (page["pages"], page["page"]) == (3, 3)


async def test_queue_slots_count_cancelling_runs_too(client: httpx.AsyncClient) -> None:
    made = await world(client)
    url = f"/work_queues/{made['qa']['id']}/concurrency_status"
    status = (await client.post(url, json={})).json()
    assert (status["active_slots"], status["count"], status["concurrency_limit"]) == (3, 3, 2)
    assert names(status["flow_runs"]) == {"r0", "r1", "r4"}
    pages = [
        (await client.post(url, json={"page": page, "limit": 1})).json()["flow_runs"]
        for page in (1, 2, 3)
    ]
    assert [len(p) for p in pages] == [1, 1, 1]
    assert set().union(*(names(p) for p in pages)) == {"r0", "r1", "r4"}


async def test_unknown_pool_or_queue_and_bad_bodies(client: httpx.AsyncClient) -> None:
    missing_pool = await client.post("/work_pools/nope/concurrency_status", json={})
    assert (missing_pool.status_code, missing_pool.json()) == (
        404,
        {"detail": "Work pool 'nope' not found."},
    )
    missing_queue = await client.post(f"/work_queues/{uuid.uuid4()}/concurrency_status")
    assert (missing_queue.status_code, missing_queue.json()) == (
        404,
        {"detail": "Work queue not found."},
    )
    pool = await create_work_pool(client)
    url = f"/work_pools/{pool['name']}/concurrency_status"
    for body in ({"flow_run_limit": 201}, {"page": 0}, {"limit": 201}):
        assert (await client.post(url, json=body)).status_code == 422, body
