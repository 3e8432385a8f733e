"""Background loops: late runs, lease reaping and renewal, and the loop runner itself."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx

from deputy.db.engine import Database
from deputy.services import background
from deputy.services.common import now
from deputy.services.concurrency import leases
from deputy.services.flow_runs import late as late_runs
from deputy.settings import Settings
from factories import CLIENT, create_deployment, create_work_pool, new_run, propose


def _ago(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).isoformat()


async def _scheduled(client: httpx.AsyncClient, seconds_ago: float) -> dict[str, Any]:
    state = {"type": "SCHEDULED", "state_details": {"scheduled_time": _ago(seconds_ago)}}
    return await new_run(client, state=state)


async def test_overdue_scheduled_runs_are_marked_late_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    overdue = await _scheduled(client, 60)
    recent = await _scheduled(client, 5)
    marked = await late_runs.mark_late_runs(database, now(), after_seconds=15, batch=100)
    assert marked == 1
    late = (await client.get(f"/flow_runs/{overdue['id']}")).json()
    assert (late["state_type"], late["state_name"]) == ("SCHEDULED", "Late")
    assert late["next_scheduled_start_time"] == overdue["next_scheduled_start_time"]
    assert (await client.get(f"/flow_runs/{recent['id']}")).json()["state_name"] == "Scheduled"
    again = await late_runs.mark_late_runs(database, now(), after_seconds=15, batch=100)
    assert again == 0


async def test_a_late_run_can_still_be_claimed(
    client: httpx.AsyncClient, database: Database
) -> None:
    run = await _scheduled(client, 60)
    await late_runs.mark_late_runs(database, now(), after_seconds=15, batch=100)
    claimed = await propose(client, run["id"], "PENDING")
    assert claimed.json()["status"] == "ACCEPT"


async def test_two_late_run_passes_at_once_write_each_late_state_once(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    runs = [await _scheduled(client, 60) for _ in range(10)]
    other = Database(settings)  # a second process's view of the same database file
    try:
        counts = await asyncio.gather(
            late_runs.mark_late_runs(database, now(), after_seconds=15, batch=100),
            late_runs.mark_late_runs(other, now(), after_seconds=15, batch=100),
        )
    finally:
        await other.dispose()
    assert sum(counts) == 10
    for run in runs:
        history = (await client.get("/flow_run_states/", params={"flow_run_id": run["id"]})).json()
        assert [s["name"] for s in history] == ["Scheduled", "Late"]


async def _limited_run(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    pool = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"], concurrency_limit=1)
    return deployment, await new_run(client, deployment)


async def _active_slots(client: httpx.AsyncClient, deployment: dict[str, Any]) -> int:
    read = (await client.get(f"/deployments/{deployment['id']}")).json()
    slots: int = read["global_concurrency_limit"]["active_slots"]
    return slots


async def test_expired_leases_give_their_slot_back_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment, run = await _limited_run(client)
    await propose(client, run["id"], "PENDING")
    assert await _active_slots(client, deployment) == 1
    async with database.write() as conn:
        assert await leases.reclaim_expired_leases(conn, now(), 100) == 0  # still valid
    far_future = now() + dt.timedelta(days=2)
    async with database.write() as conn:
        assert await leases.reclaim_expired_leases(conn, far_future, 100) == 1
    async with database.write() as conn:
        assert await leases.reclaim_expired_leases(conn, far_future, 100) == 0
    assert await _active_slots(client, deployment) == 0
    # The run later finishing must not push the count below zero.
    await propose(client, run["id"], "FAILED", force=True)
    assert await _active_slots(client, deployment) == 0


async def test_lease_renewal_204_while_alive_410_once_gone(
    client: httpx.AsyncClient, database: Database
) -> None:
    _, run = await _limited_run(client)
    state = (await propose(client, run["id"], "PENDING")).json()["state"]
    lease_id = state["state_details"]["deployment_concurrency_lease_id"]
    url = f"/v2/concurrency_limits/leases/{lease_id}/renew"
    renewed = await client.post(url, json={"lease_duration": 600}, headers=CLIENT)
    assert renewed.status_code == 204
    too_short = await client.post(url, json={"lease_duration": 10})
    assert too_short.status_code == 422
    unknown = await client.post(
        f"/v2/concurrency_limits/leases/{uuid.uuid4()}/renew", json={"lease_duration": 60}
    )
    assert unknown.status_code == 410
    assert unknown.json() == {"detail": "Lease not found - it may have expired or been revoked"}


async def test_a_run_whose_lease_expired_retakes_a_free_slot_when_it_starts(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment, run = await _limited_run(client)
    await propose(client, run["id"], "PENDING")
    async with database.write() as conn:
        await leases.reclaim_expired_leases(conn, now() + dt.timedelta(days=2), 100)
    running = (await propose(client, run["id"], "RUNNING")).json()
    assert running["status"] == "ACCEPT"
    assert running["state"]["state_details"]["deployment_concurrency_lease_id"] is not None
    assert await _active_slots(client, deployment) == 1


async def test_loop_runner_survives_a_failing_pass() -> None:
    calls: list[int] = []

    async def flaky(_database: Database) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first pass fails")
        return 0

    loop = background.Loop("flaky", 0.001, flaky)
    task = asyncio.create_task(background.run_forever(loop, None))  # type: ignore[arg-type]
    for _ in range(200):
        if len(calls) >= 3:
            break
        await asyncio.sleep(0.005)
    await background.stop([task])
    assert len(calls) >= 3


async def test_two_lease_reapers_at_once_give_each_slot_back_once(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    deployment, first = await _limited_run(client)
    await client.patch(f"/deployments/{deployment['id']}", json={"concurrency_limit": 3})
    others = [await new_run(client, deployment) for _ in range(2)]
    for run in (first, *others):
        assert (await propose(client, run["id"], "PENDING")).json()["status"] == "ACCEPT"
    assert await _active_slots(client, deployment) == 3
    other = Database(settings)  # a second replica's engine on the same database
    later = now() + dt.timedelta(days=2)

    async def reap(db: Database) -> int:
        async with db.write() as conn:
            return await leases.reclaim_expired_leases(conn, later, 100)

    try:
        counts = await asyncio.gather(reap(database), reap(other), reap(database), reap(other))
    finally:
        await other.dispose()
    assert sum(counts) == 3
    assert await _active_slots(client, deployment) == 0
