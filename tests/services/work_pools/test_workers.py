"""Workers: heartbeats, reading and deleting them, and the READY / NOT_READY / ONLINE /
OFFLINE statuses Prefect 3.9.1 reports for workers, pools, queues and deployments."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
from sqlalchemy import update

from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.services.work_pools import workers
from factories import create_deployment, create_work_pool


async def heartbeat(client: httpx.AsyncClient, pool: str, **body: Any) -> httpx.Response:
    return await client.post(f"/work_pools/{pool}/workers/heartbeat", json=body)


async def read_workers(client: httpx.AsyncClient, pool: str, **body: Any) -> list[dict[str, Any]]:
    response = await client.post(f"/work_pools/{pool}/workers/filter", json=body)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


async def pool_status(client: httpx.AsyncClient, pool: str) -> str | None:
    status: str | None = (await client.get(f"/work_pools/{pool}")).json()["status"]
    return status


async def age_heartbeats(database: Database, pool_id: str, seconds: float) -> None:
    """Move the pool's workers' last heartbeats ``seconds`` into the past."""
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)
    async with database.write() as conn:
        await conn.execute(
            update(t.worker)
            .where(t.worker.c.work_pool_id == uuid.UUID(pool_id))
            .values(last_heartbeat_time=moment)
        )


async def sweep(database: Database, now: dt.datetime | None = None) -> int:
    async with database.write() as conn:
        return await workers.mark_offline_workers(conn, now or dt.datetime.now(dt.UTC))


# --- heartbeat -----------------------------------------------------------------------------


async def test_heartbeat_answers_204_and_creates_an_online_worker(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client)
    start = dt.datetime.now(dt.UTC)
    response = await heartbeat(client, pool["name"], name="w1", heartbeat_interval_seconds=30)
    assert (response.status_code, response.content) == (204, b"")
    [worker] = await read_workers(client, pool["name"])
    assert list(worker) == [
        "id",
        "created",
        "updated",
        "name",
        "work_pool_id",
        "last_heartbeat_time",
        "heartbeat_interval_seconds",
        "status",
    ]
    assert worker["name"] == "w1"
    assert worker["work_pool_id"] == pool["id"]
    assert worker["heartbeat_interval_seconds"] == 30
    assert worker["status"] == "ONLINE"
    assert dt.datetime.fromisoformat(worker["last_heartbeat_time"]) >= start


async def test_a_missing_body_key_is_reported_as_a_missing_body_parameter(
    client: httpx.AsyncClient,
) -> None:
    """Prefect declares these keys as separate body parameters: a missing one has ``input``
    null in the 422, where a model body (``POST /flows/``) reports the body it got."""
    pool = await create_work_pool(client)
    for path, body in (
        (f"/work_pools/{pool['name']}/workers/heartbeat", {}),
        (f"/work_pools/{pool['name']}/workers/heartbeat", {"name": None}),
        ("/deployments/get_scheduled_flow_runs", {}),
    ):
        response = await client.post(path, json=body)
        assert response.status_code == 422
        [error] = response.json()["exception_detail"]
        assert (error["type"], error["input"]) == ("missing", None), (path, error)
    model = await client.post("/flows/", json={"tags": []})
    assert model.json()["exception_detail"][0]["input"] == {"tags": []}


async def test_heartbeat_upserts_by_pool_and_name(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    await heartbeat(client, pool["name"], name="w1", heartbeat_interval_seconds=30)
    [first] = await read_workers(client, pool["name"])
    await heartbeat(client, pool["name"], name="w1")
    [second] = await read_workers(client, pool["name"])
    assert second["id"] == first["id"]
    assert second["created"] == first["created"]
    # As Prefect's upsert: the heartbeat moves, ``updated`` does not, and an omitted interval
    # keeps the one stored.
    assert second["updated"] == first["updated"]
    assert second["last_heartbeat_time"] > first["last_heartbeat_time"]
    assert second["heartbeat_interval_seconds"] == 30


async def test_same_worker_name_in_two_pools_is_two_workers(client: httpx.AsyncClient) -> None:
    one, two = await create_work_pool(client), await create_work_pool(client)
    await heartbeat(client, one["name"], name="w")
    await heartbeat(client, two["name"], name="w")
    [a] = await read_workers(client, one["name"])
    [b] = await read_workers(client, two["name"])
    assert a["id"] != b["id"]


async def test_heartbeat_accepts_a_whole_float_and_ignores_cloud_keys(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client)
    response = await heartbeat(
        client, pool["name"], name="w", heartbeat_interval_seconds=30.0, return_id=True, metadata={}
    )
    assert response.status_code == 204
    [worker] = await read_workers(client, pool["name"])
    assert worker["heartbeat_interval_seconds"] == 30


async def test_heartbeat_validation_errors(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    fractional = await heartbeat(client, pool["name"], name="w", heartbeat_interval_seconds=30.5)
    assert fractional.status_code == 422
    [error] = fractional.json()["exception_detail"]
    assert (error["type"], error["loc"]) == (
        "int_from_float",
        ["body", "heartbeat_interval_seconds"],
    )
    nameless = await heartbeat(client, pool["name"])
    assert nameless.status_code == 422
    [error] = nameless.json()["exception_detail"]
    assert (error["type"], error["loc"]) == ("missing", ["body", "name"])


async def test_heartbeat_to_unknown_pool_is_404(client: httpx.AsyncClient) -> None:
    response = await heartbeat(client, "no-such-pool", name="w")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": 'Work pool "no-such-pool" not found.'},
    )


# --- reading and deleting workers ------------------------------------------------------------


async def test_workers_are_read_most_recent_heartbeat_first(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    for name in ("a", "b", "c"):
        await heartbeat(client, pool["name"], name=name)
    await heartbeat(client, pool["name"], name="a")
    assert [w["name"] for w in await read_workers(client, pool["name"])] == ["a", "c", "b"]
    page = await read_workers(client, pool["name"], offset=1, limit=1)
    assert [w["name"] for w in page] == ["c"]


async def test_worker_filter_by_status_and_heartbeat_time(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    await heartbeat(client, pool["name"], name="old", heartbeat_interval_seconds=10)
    await age_heartbeats(database, pool["id"], 3600)
    await sweep(database)
    await heartbeat(client, pool["name"], name="new")
    name = pool["name"]
    online = await read_workers(client, name, workers={"status": {"any_": ["ONLINE"]}})
    assert [w["name"] for w in online] == ["new"]
    offline = await read_workers(client, name, workers={"status": {"not_any_": ["ONLINE"]}})
    assert [w["name"] for w in offline] == ["old"]
    cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)).isoformat()
    recent = await read_workers(client, name, workers={"last_heartbeat_time": {"after_": cutoff}})
    assert [w["name"] for w in recent] == ["new"]
    stale = await read_workers(client, name, workers={"last_heartbeat_time": {"before_": cutoff}})
    assert [w["name"] for w in stale] == ["old"]
    either = await read_workers(
        client,
        name,
        workers={
            "operator": "or_",
            "status": {"any_": ["ONLINE"]},
            "last_heartbeat_time": {"before_": cutoff},
        },
    )
    assert {w["name"] for w in either} == {"old", "new"}


async def test_worker_filter_errors(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    bad_status = await client.post(
        f"/work_pools/{pool['name']}/workers/filter",
        json={"workers": {"status": {"any_": ["BAD"]}}},
    )
    assert bad_status.status_code == 422
    assert bad_status.json()["exception_detail"][0]["loc"] == [
        "body",
        "workers",
        "status",
        "any_",
        0,
    ]
    extra = await client.post(
        f"/work_pools/{pool['name']}/workers/filter", json={"workers": {"bogus": 1}}
    )
    assert extra.json()["exception_detail"][0]["type"] == "extra_forbidden"
    limit = await client.post(f"/work_pools/{pool['name']}/workers/filter", json={"limit": 201})
    assert (limit.status_code, limit.json()) == (
        422,
        {"detail": "Invalid limit: must be less than or equal to 200."},
    )
    unknown = await client.post("/work_pools/no-such-pool/workers/filter", json={})
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"detail": 'Work pool "no-such-pool" not found.'},
    )


async def test_delete_worker(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    await heartbeat(client, pool["name"], name="w1")
    await heartbeat(client, pool["name"], name="w2")
    response = await client.delete(f"/work_pools/{pool['name']}/workers/w1")
    assert (response.status_code, response.content) == (204, b"")
    assert [w["name"] for w in await read_workers(client, pool["name"])] == ["w2"]
    again = await client.delete(f"/work_pools/{pool['name']}/workers/w1")
    assert (again.status_code, again.json()) == (404, {"detail": "Worker not found."})
    unknown = await client.delete("/work_pools/no-such-pool/workers/w2")
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"detail": 'Work pool "no-such-pool" not found.'},
    )


# --- statuses ------------------------------------------------------------------------------


async def test_pool_turns_ready_with_its_first_heartbeat(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    assert pool["status"] == "NOT_READY"
    await heartbeat(client, pool["name"], name="w")
    after = (await client.get(f"/work_pools/{pool['name']}")).json()
    assert after["status"] == "READY"
    assert after["updated"] > pool["updated"]


async def test_paused_pool_stays_paused_on_heartbeat(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client, is_paused=True)
    await heartbeat(client, pool["name"], name="w")
    assert await pool_status(client, pool["name"]) == "PAUSED"


async def test_unpausing_a_pool_with_an_online_worker_makes_it_ready(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client, is_paused=True)
    await heartbeat(client, pool["name"], name="w")
    await client.patch(f"/work_pools/{pool['name']}", json={"is_paused": False})
    assert await pool_status(client, pool["name"]) == "READY"


async def test_unpausing_a_pool_without_online_worker_makes_it_not_ready(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client, is_paused=True)
    await client.patch(f"/work_pools/{pool['name']}", json={"is_paused": False})
    assert await pool_status(client, pool["name"]) == "NOT_READY"


async def test_agent_pool_reports_no_status_even_with_workers(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client, type="prefect-agent")
    await heartbeat(client, pool["name"], name="w")
    assert await pool_status(client, pool["name"]) is None


async def test_worker_goes_offline_after_three_missed_intervals(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    await heartbeat(client, pool["name"], name="w", heartbeat_interval_seconds=10)
    [worker] = await read_workers(client, pool["name"])
    last = dt.datetime.fromisoformat(worker["last_heartbeat_time"])
    assert await sweep(database, last + dt.timedelta(seconds=29)) == 0
    assert (await read_workers(client, pool["name"]))[0]["status"] == "ONLINE"
    assert await sweep(database, last + dt.timedelta(seconds=31)) == 1
    assert (await read_workers(client, pool["name"]))[0]["status"] == "OFFLINE"
    assert await sweep(database, last + dt.timedelta(seconds=60)) == 0  # already OFFLINE


async def test_worker_without_interval_is_given_thirty_seconds(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    await heartbeat(client, pool["name"], name="w")
    [worker] = await read_workers(client, pool["name"])
    assert worker["heartbeat_interval_seconds"] is None
    last = dt.datetime.fromisoformat(worker["last_heartbeat_time"])
    assert await sweep(database, last + dt.timedelta(seconds=89)) == 0
    assert await sweep(database, last + dt.timedelta(seconds=91)) == 1


async def test_pool_turns_not_ready_when_its_last_worker_goes_offline(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    await heartbeat(client, pool["name"], name="quiet", heartbeat_interval_seconds=10)
    await heartbeat(client, pool["name"], name="chatty", heartbeat_interval_seconds=3600)
    await age_heartbeats(database, pool["id"], 60)
    assert await sweep(database) == 1  # "chatty" may wait an hour
    assert await pool_status(client, pool["name"]) == "READY"
    await age_heartbeats(database, pool["id"], 3 * 3600 + 1)
    assert await sweep(database) == 1
    assert await pool_status(client, pool["name"]) == "NOT_READY"
    await heartbeat(client, pool["name"], name="quiet")
    assert await pool_status(client, pool["name"]) == "READY"


async def test_pool_whose_workers_were_deleted_turns_not_ready_at_the_sweep(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    await heartbeat(client, pool["name"], name="w")
    await client.delete(f"/work_pools/{pool['name']}/workers/w")
    assert await pool_status(client, pool["name"]) == "READY"  # as Prefect, until the sweep
    assert await sweep(database) == 0
    assert await pool_status(client, pool["name"]) == "NOT_READY"


async def test_sweep_leaves_paused_pools_paused(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client, is_paused=True)
    await heartbeat(client, pool["name"], name="w")
    await age_heartbeats(database, pool["id"], 3600)
    assert await sweep(database) == 1
    assert await pool_status(client, pool["name"]) == "PAUSED"


async def test_unpolled_queues_and_deployments_turn_not_ready_after_a_minute(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"])
    await client.post(f"/work_pools/{pool['name']}/get_scheduled_flow_runs", json={})
    queue_url = f"/work_pools/{pool['name']}/queues/default"
    polled = dt.datetime.fromisoformat((await client.get(queue_url)).json()["last_polled"])
    async with database.write() as conn:
        assert await workers.mark_unpolled_not_ready(conn, polled + dt.timedelta(seconds=59)) == 0
    assert (await client.get(queue_url)).json()["status"] == "READY"
    async with database.write() as conn:
        assert await workers.mark_unpolled_not_ready(conn, polled + dt.timedelta(seconds=61)) == 2
    assert (await client.get(queue_url)).json()["status"] == "NOT_READY"
    after = (await client.get(f"/deployments/{deployment['id']}")).json()
    assert after["status"] == "NOT_READY"
    assert after["last_polled"] is not None


async def test_deployment_stays_ready_while_its_queue_is_polled(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"])
    await client.post(f"/work_pools/{pool['name']}/get_scheduled_flow_runs", json={})
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    async with database.write() as conn:
        await conn.execute(
            update(t.deployment)
            .where(t.deployment.c.id == uuid.UUID(deployment["id"]))
            .values(last_polled=old)
        )
        await workers.mark_unpolled_not_ready(conn, dt.datetime.now(dt.UTC))
    assert (await client.get(f"/deployments/{deployment['id']}")).json()["status"] == "READY"
