"""Work queues, in pools and by id: Prefect 3.9.1's bodies, codes, priorities and statuses."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx

from deputy.db.engine import Database
from deputy.services.common import now
from deputy.services.work_pools import queues as work_queues
from deputy.services.work_pools.pools import get_or_create_default_agent_pool
from deputy.services.work_pools.queues import spread_priorities
from factories import create_deployment, create_queue, create_work_pool, queues_of


def priorities(queues: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(q["name"], q["priority"]) for q in queues]


# --- queues -------------------------------------------------------------------------------


async def test_create_queue_takes_the_next_priority(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    response = await client.post(f"/work_pools/{pool['name']}/queues", json={"name": "q1"})
    assert response.status_code == 201
    queue = response.json()
    assert {k: v for k, v in queue.items() if k not in {"id", "created", "updated"}} == {
        "name": "q1",
        "description": "",
        "is_paused": False,
        "concurrency_limit": None,
        "priority": 2,
        "work_pool_id": pool["id"],
        "filter": None,
        "last_polled": None,
        "work_pool_name": pool["name"],
        "status": "NOT_READY",
        "active_slots": None,
    }


async def test_taken_priority_pushes_the_holder_and_followers_down(
    client: httpx.AsyncClient,
) -> None:
    name = (await create_work_pool(client))["name"]
    await create_queue(client, name, name="q1")
    before = {q["name"]: q for q in await queues_of(client, name)}
    q2 = await create_queue(client, name, name="q2", priority=1)
    assert q2["priority"] == 1
    after = await queues_of(client, name)
    assert priorities(after) == [("q2", 1), ("default", 2), ("q1", 3)]
    assert all(q["updated"] > before[q["name"]]["updated"] for q in after if q["name"] != "q2")
    q3 = await create_queue(
        client, name, name="q3", description="dd", is_paused=True, concurrency_limit=2, priority=50
    )
    assert (q3["priority"], q3["status"], q3["active_slots"]) == (50, "NOT_READY", 0)
    patch = await client.patch(
        f"/work_pools/{name}/queues/q1", json={"description": "qd", "priority": 1}
    )
    assert patch.status_code == 204
    assert priorities(await queues_of(client, name)) == [
        ("q1", 1),
        ("q2", 2),
        ("default", 3),
        ("q3", 50),
    ]


async def test_queue_without_priority_fills_the_first_gap(client: httpx.AsyncClient) -> None:
    name = (await create_work_pool(client))["name"]
    await create_queue(client, name, name="q10", priority=10)
    assert (await create_queue(client, name, name="qa"))["priority"] == 2
    assert (await create_queue(client, name, name="q10b", priority=10))["priority"] == 10
    assert priorities(await queues_of(client, name)) == [
        ("default", 1),
        ("qa", 2),
        ("q10b", 10),
        ("q10", 11),
    ]


def test_spread_priorities_keeps_later_gaps() -> None:
    a, b, c, d, new = (uuid.uuid4() for _ in range(5))
    current = [(a, 1), (b, 2), (c, 3), (d, 7), (new, 2)]
    assert spread_priorities(current, {new: 2}) == {a: 1, new: 2, b: 3, c: 4, d: 7}
    assert spread_priorities([(a, 1), (b, 3)], {a: 9}) == {a: 9, b: 3}


async def test_duplicate_queue_is_409_with_prefect_literal_message(
    client: httpx.AsyncClient,
) -> None:
    name = (await create_work_pool(client))["name"]
    await create_queue(client, name, name="q1")
    response = await client.post(f"/work_pools/{name}/queues", json={"name": "q1"})
    assert (response.status_code, response.json()) == (
        409,
        {"detail": "A work queue with this name already exists in work pool {work_pool_name!r}."},
    )


async def test_queue_with_a_null_description_is_created_with_an_empty_one(
    client: httpx.AsyncClient,
) -> None:
    """What ``prefect work-queue create NAME --pool POOL`` sends (Prefect answers 201)."""
    name = (await create_work_pool(client))["name"]
    body = {"name": "q1", "description": None, "is_paused": False, "concurrency_limit": None,
            "priority": None, "filter": None}  # fmt: skip
    response = await client.post(f"/work_pools/{name}/queues", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["description"] == ""
    assert (await client.get(f"/work_pools/{name}/queues/q1")).json()["description"] == ""


async def test_queue_body_validation(client: httpx.AsyncClient) -> None:
    name = (await create_work_pool(client))["name"]
    zero = await client.post(f"/work_pools/{name}/queues", json={"name": "z", "priority": 0})
    assert zero.status_code == 422
    assert zero.json()["exception_detail"][0]["type"] == "greater_than"
    empty = await client.post(f"/work_pools/{name}/queues", json={"name": ""})
    assert empty.json()["exception_detail"][0]["type"] == "string_pattern_mismatch"
    null_pause = await client.patch(f"/work_pools/{name}/queues/default", json={"is_paused": None})
    assert null_pause.json()["exception_detail"][0]["type"] == "bool_type"


async def test_unknown_pool_or_queue_404_texts(client: httpx.AsyncClient) -> None:
    name = (await create_work_pool(client))["name"]
    create = await client.post("/work_pools/nope-pool/queues", json={"name": "q"})
    assert (create.status_code, create.json()) == (
        404,
        {"detail": 'Work pool "nope-pool" not found.'},
    )
    unknown_queue = await client.get(f"/work_pools/{name}/queues/nope")
    assert (unknown_queue.status_code, unknown_queue.json()) == (
        404,
        {"detail": f"Work pool queue '{name}/nope' not found."},
    )
    # Reading looks the queue up by both names, so an unknown pool gets the queue's text...
    unknown_pool = await client.get("/work_pools/nope-pool/queues/q1")
    assert unknown_pool.json() == {"detail": "Work pool queue 'nope-pool/q1' not found."}
    # ...while update, delete and filter check the pool first.
    for response in (
        await client.patch("/work_pools/nope-pool/queues/q1", json={"description": "x"}),
        await client.delete("/work_pools/nope-pool/queues/q1"),
        await client.post("/work_pools/nope-pool/queues/filter", json={}),
    ):
        assert (response.status_code, response.json()) == (
            404,
            {"detail": 'Work pool "nope-pool" not found.'},
        )
    patch = await client.patch(f"/work_pools/{name}/queues/nope", json={"description": "x"})
    assert patch.json() == {"detail": f"Work pool queue '{name}/nope' not found."}


async def test_queue_pause_moves_status(client: httpx.AsyncClient) -> None:
    name = (await create_work_pool(client))["name"]
    url = f"/work_pools/{name}/queues/default"
    assert (await client.patch(url, json={"is_paused": True})).status_code == 204
    paused = (await client.get(url)).json()
    assert (paused["is_paused"], paused["status"]) == (True, "PAUSED")
    await client.patch(url, json={"is_paused": False})
    assert (await client.get(url)).json()["status"] == "NOT_READY"
    await client.patch(url, json={"is_paused": True})
    recent = dt.datetime.now(dt.UTC).isoformat()
    await client.patch(url, json={"is_paused": False, "last_polled": recent})
    assert (await client.get(url)).json()["status"] == "READY"


async def test_queue_update_fields_filter_and_rename(client: httpx.AsyncClient) -> None:
    name = (await create_work_pool(client))["name"]
    await create_queue(client, name, name="q1", filter={"tags": ["a"], "ignored": 1})
    assert (await client.get(f"/work_pools/{name}/queues/q1")).json()["filter"] == {
        "tags": ["a"],
        "deployment_ids": None,
    }
    response = await client.patch(
        f"/work_pools/{name}/queues/q1",
        json={"name": "renamed", "concurrency_limit": 4, "description": "new"},
    )
    assert response.status_code == 204
    renamed = (await client.get(f"/work_pools/{name}/queues/renamed")).json()
    assert (renamed["concurrency_limit"], renamed["description"]) == (4, "new")
    clash = await client.patch(f"/work_pools/{name}/queues/renamed", json={"name": "default"})
    assert clash.status_code == 409
    assert clash.json()["detail"].startswith("Data integrity conflict.")


async def test_delete_queue_then_404(client: httpx.AsyncClient) -> None:
    name = (await create_work_pool(client))["name"]
    await create_queue(client, name, name="q3")
    response = await client.delete(f"/work_pools/{name}/queues/q3")
    assert (response.status_code, response.content) == (204, b"")
    again = await client.delete(f"/work_pools/{name}/queues/q3")
    assert (again.status_code, again.json()) == (
        404,
        {"detail": f"Work pool queue '{name}/q3' not found."},
    )


async def test_the_default_queue_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    name = (await create_work_pool(client))["name"]
    response = await client.delete(f"/work_pools/{name}/queues/default")
    assert (response.status_code, response.json()) == (
        409,
        {"detail": "Can't delete a pool's default queue."},
    )
    assert [q["name"] for q in await queues_of(client, name)] == ["default"]


async def test_filter_pool_queues(client: httpx.AsyncClient) -> None:
    name = (await create_work_pool(client))["name"]
    for queue in ("alpha", "beta", "gamma"):
        await create_queue(client, name, name=queue)
    by_name = await client.post(
        f"/work_pools/{name}/queues/filter",
        json={"work_queues": {"name": {"any_": ["beta", "default"]}}},
    )
    assert [q["name"] for q in by_name.json()] == ["default", "beta"]
    starts = await client.post(
        f"/work_pools/{name}/queues/filter",
        json={"work_queues": {"name": {"startswith_": ["ALP", "gam"]}}},
    )
    assert [q["name"] for q in starts.json()] == ["alpha", "gamma"]
    paged = await client.post(f"/work_pools/{name}/queues/filter", json={"offset": 1, "limit": 2})
    assert [q["name"] for q in paged.json()] == ["alpha", "beta"]
    too_many = await client.post(f"/work_pools/{name}/queues/filter", json={"limit": 201})
    assert too_many.json() == {"detail": "Invalid limit: must be less than or equal to 200."}


# --- /work_queues ---------------------------------------------------------------------------


async def test_read_work_queue_by_id_includes_pool_name(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    queue = await create_queue(client, pool["name"], name="q1")
    response = await client.get(f"/work_queues/{queue['id']}")
    assert (response.status_code, response.json()) == (200, queue)
    missing = await client.get(f"/work_queues/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()) == (404, {"detail": "work queue not found"})
    malformed = await client.get("/work_queues/xyz")
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})


async def test_work_queue_by_name_reads_the_default_agent_pool(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    await create_queue(client, pool["name"], name="legacy")
    # Without default-agent-pool, any queue of that name answers (as Prefect).
    found = await client.get("/work_queues/name/legacy")
    assert found.json()["work_pool_name"] == pool["name"]
    async with database.write() as conn:
        agent = await get_or_create_default_agent_pool(conn, now=now())
    assert (await client.get("/work_queues/name/legacy")).json() == {
        "detail": "work queue not found"
    }
    default = (await client.get("/work_queues/name/default")).json()
    assert (default["id"], default["work_pool_name"]) == (
        str(agent.default_queue_id),
        "default-agent-pool",
    )


async def test_work_queues_filter_lists_every_pool_by_name(client: httpx.AsyncClient) -> None:
    first = await create_work_pool(client)
    second = await create_work_pool(client)
    await create_queue(client, second["name"], name="aaa")
    listed = (await client.post("/work_queues/filter", json={"limit": 2})).json()
    assert [q["name"] for q in listed] == ["aaa", "default"]
    named = await client.post(
        "/work_queues/filter", json={"work_queues": {"name": {"any_": ["default"]}}}
    )
    assert {q["work_pool_name"] for q in named.json()} == {first["name"], second["name"]}


# --- /work_queues by id, and legacy queues -------------------------------------------------


async def test_legacy_create_puts_queues_in_the_default_agent_pool(
    client: httpx.AsyncClient,
) -> None:
    """What ``create_work_queue(name)`` without a pool sends (``null`` for what is unset)."""
    unset = {"description": None, "is_paused": False, "concurrency_limit": None,
             "priority": None, "filter": None}  # fmt: skip
    default = await client.post("/work_queues/", json={"name": "default", **unset})
    assert default.status_code == 201, default.text
    pool = (await client.get("/work_pools/default-agent-pool")).json()
    # The pool is created with its default queue, which "default" then is (as in Prefect).
    assert default.json()["id"] == pool["default_queue_id"]
    created = await client.post("/work_queues/", json={"name": "legacy", **unset})
    assert created.status_code == 201
    assert {k: created.json()[k] for k in ("description", "priority", "work_pool_name")} == {
        "description": "",
        "priority": 2,
        "work_pool_name": "default-agent-pool",
    }
    limited = await client.post("/work_queues/", json={"name": "limited", "concurrency_limit": 3})
    assert limited.json()["active_slots"] == 0
    for name in ("legacy", "default"):
        again = await client.post("/work_queues/", json={"name": name})
        assert (again.status_code, again.json()) == (
            409,
            {"detail": "A work queue with this name already exists."},
        )
    bad = await client.post("/work_queues/", json={"name": "a/b"})
    assert bad.status_code == 422


async def test_update_and_delete_a_queue_by_id(client: httpx.AsyncClient) -> None:
    """What ``prefect work-queue pause/resume/set-concurrency-limit/delete`` send."""
    pool = await create_work_pool(client)
    queue = await create_queue(client, pool["name"], name="q")
    url = f"/work_queues/{queue['id']}"
    assert (await client.patch(url, json={"is_paused": True})).status_code == 204
    paused = (await client.get(url)).json()
    assert (paused["is_paused"], paused["status"]) == (True, "PAUSED")
    changed = await client.patch(url, json={"concurrency_limit": 4, "priority": 1})
    assert changed.status_code == 204
    assert [q["name"] for q in await queues_of(client, pool["name"])] == ["q", "default"]
    resumed = await client.patch(url, json={"is_paused": False, "concurrency_limit": None})
    assert resumed.status_code == 204
    read = (await client.get(url)).json()
    assert (read["is_paused"], read["status"], read["concurrency_limit"]) == (
        False, "NOT_READY", None
    )  # fmt: skip

    assert (await client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert [q["name"] for q in await queues_of(client, pool["name"])] == ["default"]
    refused = await client.delete(f"/work_queues/{pool['default_queue_id']}")
    assert (refused.status_code, refused.json()) == (
        409,
        {"detail": "Can't delete a pool's default queue."},
    )

    missing = uuid.uuid4()
    patch = await client.patch(f"/work_queues/{missing}", json={})
    assert (patch.status_code, patch.json()) == (
        404,
        {"detail": f"Work Queue {missing} not found"},
    )
    gone = await client.delete(f"/work_queues/{missing}")
    assert (gone.status_code, gone.json()) == (404, {"detail": "work queue not found"})


async def test_queue_status_counts_late_runs_and_the_last_poll(
    client: httpx.AsyncClient,
) -> None:
    """What ``prefect work-queue inspect`` reads: healthy when polled within a minute and
    without late runs."""
    pool = await create_work_pool(client)
    queue = await create_queue(client, pool["name"], name="watched")
    url = f"/work_queues/{queue['id']}/status"
    policy = {"maximum_late_runs": 0, "maximum_seconds_since_last_polled": 60}
    assert (await client.get(url)).json() == {
        "healthy": False,
        "late_runs_count": 0,
        "last_polled": None,
        "health_check_policy": policy,
    }
    poll = await client.post(
        f"/work_pools/{pool['name']}/get_scheduled_flow_runs",
        json={"work_queue_names": ["watched"]},
    )
    assert poll.status_code == 200
    polled = (await client.get(url)).json()
    assert (polled["healthy"], polled["late_runs_count"]) == (True, 0)
    assert polled["last_polled"] is not None

    deployment = await create_deployment(client, work_pool_name=pool["name"])
    late = {"type": "SCHEDULED", "name": "Late"}
    for queue_name, state in (("watched", late), ("watched", None), ("default", late)):
        body: dict[str, Any] = {"work_queue_name": queue_name}
        if state:
            body["state"] = state
        created = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json=body)
        assert created.status_code == 201, created.text
    unhealthy = (await client.get(url)).json()
    assert (unhealthy["healthy"], unhealthy["late_runs_count"]) == (False, 1)

    missing = uuid.uuid4()
    unknown = await client.get(f"/work_queues/{missing}/status")
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"exception_message": f"Work queue with id {missing} not found"},
    )


# --- service functions used by deployments and create_flow_run ------------------------------


async def test_get_or_create_work_queue_is_idempotent_and_fills_the_first_gap(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    await create_queue(client, pool["name"], name="far", priority=5)
    async with database.write() as conn:
        first = await work_queues.get_or_create_work_queue(
            conn, uuid.UUID(pool["id"]), "auto", now=now()
        )
    async with database.write() as conn:
        again = await work_queues.get_or_create_work_queue(
            conn, uuid.UUID(pool["id"]), "auto", now=now()
        )
        found = await work_queues.read_work_queue_in_pool(conn, uuid.UUID(pool["id"]), "auto")
        missing = await work_queues.read_work_queue_in_pool(conn, uuid.UUID(pool["id"]), "nope")
    assert first.id == again.id == (found.id if found else None)
    assert missing is None
    assert (first.priority, first.is_paused, first.status, first.description) == (
        2,
        False,
        "NOT_READY",
        "",
    )
