"""The worker poll ``POST /work_pools/{name}/get_scheduled_flow_runs`` and the Runner's poll
``POST /deployments/get_scheduled_flow_runs``, one test per rule of Prefect 3.9.1."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
from sqlalchemy import update

from deputy.db import tables as t
from deputy.db.engine import Database
from factories import create_deployment, create_work_pool

NOW = dt.datetime.now(dt.UTC)


def at(minutes: float) -> str:
    return (NOW + dt.timedelta(minutes=minutes)).isoformat()


async def pooled(client: httpx.AsyncClient, **pool_fields: Any) -> tuple[str, dict[str, Any]]:
    pool = await create_work_pool(client, **pool_fields)
    deployment = await create_deployment(client, work_pool_name=pool["name"])
    return pool["name"], deployment


async def add_queue(client: httpx.AsyncClient, pool: str, name: str, **fields: Any) -> None:
    response = await client.post(f"/work_pools/{pool}/queues", json={"name": name, **fields})
    assert response.status_code == 201, response.text


async def run(
    client: httpx.AsyncClient,
    deployment: dict[str, Any],
    *,
    minutes: float = -1,
    queue: str | None = None,
    state: str = "SCHEDULED",
    **fields: Any,
) -> str:
    body: dict[str, Any] = {
        "state": {"type": state, "state_details": {"scheduled_time": at(minutes)}},
        **fields,
    }
    if queue is not None:
        body["work_queue_name"] = queue
    response = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json=body)
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


async def poll(client: httpx.AsyncClient, pool: str, **body: Any) -> httpx.Response:
    return await client.post(f"/work_pools/{pool}/get_scheduled_flow_runs", json=body)


async def polled_ids(client: httpx.AsyncClient, pool: str, **body: Any) -> list[str]:
    response = await poll(client, pool, **body)
    assert response.status_code == 200, response.text
    return [item["flow_run"]["id"] for item in response.json()]


async def queue(client: httpx.AsyncClient, pool: str, name: str = "default") -> dict[str, Any]:
    result: dict[str, Any] = (await client.get(f"/work_pools/{pool}/queues/{name}")).json()
    return result


# --- response shape ----------------------------------------------------------------------


async def test_poll_answers_pool_queue_and_core_flow_run(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    run_id = await run(client, deployment, tags=["t"], parameters={})
    response = await poll(client, pool)
    assert response.status_code == 200
    [item] = response.json()
    pool_body = (await client.get(f"/work_pools/{pool}")).json()
    assert item["work_pool_id"] == pool_body["id"]
    assert item["work_queue_id"] == pool_body["default_queue_id"]
    flow_run = item["flow_run"]
    full = (await client.get(f"/flow_runs/{run_id}")).json()
    # The core FlowRun: FlowRunResponse without the pool's id and name.
    assert set(full) - set(flow_run) == {"work_pool_id", "work_pool_name"}
    assert set(flow_run) - set(full) == set()
    assert flow_run["id"] == run_id
    assert flow_run["work_queue_id"] == pool_body["default_queue_id"]
    assert flow_run["state_type"] == "SCHEDULED"
    # Prefect 3.9.1 loads the current state with the run, so the poll carries it.
    assert flow_run["state"]["id"] == full["state"]["id"]
    assert flow_run["state"]["type"] == "SCHEDULED"
    for key in ("name", "flow_id", "deployment_id", "tags", "labels", "empirical_policy"):
        assert flow_run[key] == full[key], key


async def test_core_flow_run_has_the_raw_work_queue_name_column(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool, deployment = await pooled(client)
    run_id = await run(client, deployment)
    async with database.write() as conn:
        await conn.execute(
            update(t.flow_run)
            .where(t.flow_run.c.id == uuid.UUID(run_id))
            .values(work_queue_name=None)
        )
    [item] = (await poll(client, pool)).json()
    assert item["flow_run"]["work_queue_name"] is None
    assert (await client.get(f"/flow_runs/{run_id}")).json()["work_queue_name"] == "default"


# --- selection ---------------------------------------------------------------------------


async def test_only_scheduled_runs_are_returned(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    scheduled = await run(client, deployment)
    await run(client, deployment, state="PENDING")
    await run(client, deployment, state="RUNNING")
    await run(client, deployment, state="COMPLETED")
    assert await polled_ids(client, pool) == [scheduled]


async def test_late_and_other_scheduled_names_are_returned(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    late = await run(client, deployment, minutes=-10)
    body = {"state": {"type": "SCHEDULED", "name": "Late"}}
    response = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json=body)
    named = response.json()["id"]
    assert set(await polled_ids(client, pool)) == {late, named}


async def test_awaiting_retry_runs_are_excluded(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    plain = await run(client, deployment)
    await run(client, deployment, empirical_policy={"retry_type": "in_process"})
    rescheduled = await run(client, deployment, empirical_policy={"retry_type": "reschedule"})
    assert set(await polled_ids(client, pool)) == {plain, rescheduled}


async def test_no_time_bound_by_default_future_runs_are_returned(
    client: httpx.AsyncClient,
) -> None:
    pool, deployment = await pooled(client)
    far = await run(client, deployment, minutes=60 * 24 * 365 * 5)
    assert await polled_ids(client, pool) == [far]


async def test_scheduled_before_and_after_are_inclusive_windows(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    early = await run(client, deployment, minutes=-30)
    middle = await run(client, deployment, minutes=0)
    late = await run(client, deployment, minutes=30)
    assert await polled_ids(client, pool, scheduled_before=at(0)) == [early, middle]
    assert await polled_ids(client, pool, scheduled_after=at(0)) == [middle, late]
    assert await polled_ids(client, pool, scheduled_after=at(-10), scheduled_before=at(10)) == [
        middle
    ]


async def test_worker_style_scheduled_before_with_a_space_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    pool, deployment = await pooled(client)
    run_id = await run(client, deployment, minutes=-1)
    when = str(NOW + dt.timedelta(seconds=10))  # "2026-01-01 12:00:10.5+00:00", as workers send
    assert " " in when
    assert await polled_ids(client, pool, work_queue_names=[], scheduled_before=when) == [run_id]


async def test_order_is_queue_priority_then_next_scheduled_start_time(
    client: httpx.AsyncClient,
) -> None:
    pool, deployment = await pooled(client)
    await add_queue(client, pool, "low", priority=10)
    overdue_low = await run(client, deployment, minutes=-60, queue="low")
    future_default_2 = await run(client, deployment, minutes=20)
    future_default_1 = await run(client, deployment, minutes=10)
    low_later = await run(client, deployment, minutes=-30, queue="low")
    # A priority-10 queue's overdue run comes after the default queue's future runs.
    assert await polled_ids(client, pool) == [
        future_default_1,
        future_default_2,
        overdue_low,
        low_later,
    ]


async def test_limit_keeps_the_first_runs_in_poll_order(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    ids = [await run(client, deployment, minutes=m) for m in (-3, -2, -1)]
    assert await polled_ids(client, pool, limit=2) == ids[:2]
    assert await polled_ids(client, pool, limit=0) == []


async def test_queue_names_filter_the_queues(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    await add_queue(client, pool, "a")
    await add_queue(client, pool, "b")
    in_a = await run(client, deployment, queue="a")
    in_b = await run(client, deployment, queue="b")
    in_default = await run(client, deployment)
    assert await polled_ids(client, pool, work_queue_names=["a"]) == [in_a]
    assert set(await polled_ids(client, pool, work_queue_names=["b", "a", "b"])) == {in_a, in_b}
    assert len(await polled_ids(client, pool, work_queue_names=[])) == 3
    assert in_default in await polled_ids(client, pool, work_queue_names=None)


async def test_runs_of_other_pools_are_not_returned(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    _, other_deployment = await pooled(client)
    mine = await run(client, deployment)
    await run(client, other_deployment)
    assert await polled_ids(client, pool) == [mine]


async def test_queue_of_another_pool_is_an_unknown_queue(client: httpx.AsyncClient) -> None:
    pool, _ = await pooled(client)
    other_pool, _ = await pooled(client)
    await add_queue(client, other_pool, "elsewhere")
    response = await poll(client, pool, work_queue_names=["elsewhere"])
    assert response.status_code == 404
    assert response.json() == {"detail": f"Work pool queue '{pool}/elsewhere' not found."}


# --- paused pools and queues ---------------------------------------------------------------


async def test_paused_pool_answers_an_empty_list(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    await run(client, deployment)
    await client.patch(f"/work_pools/{pool}", json={"is_paused": True})
    response = await poll(client, pool)
    assert (response.status_code, response.json()) == (200, [])


async def test_paused_queue_runs_are_excluded(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    await add_queue(client, pool, "paused", is_paused=True)
    await run(client, deployment, queue="paused")
    active = await run(client, deployment)
    assert await polled_ids(client, pool) == [active]
    assert await polled_ids(client, pool, work_queue_names=["paused"]) == []


async def test_paused_deployment_runs_are_still_returned(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    run_id = await run(client, deployment)
    await client.post(f"/deployments/{deployment['id']}/pause_deployment")
    assert await polled_ids(client, pool) == [run_id]


# --- concurrency limits ------------------------------------------------------------------


async def test_queue_concurrency_limit_counts_pending_and_running(
    client: httpx.AsyncClient,
) -> None:
    pool, deployment = await pooled(client)
    await add_queue(client, pool, "limited", concurrency_limit=3)
    await run(client, deployment, queue="limited", state="RUNNING")
    await run(client, deployment, queue="limited", state="PENDING")
    await run(client, deployment, queue="limited", state="COMPLETED")  # holds no slot
    first = await run(client, deployment, queue="limited", minutes=-3)
    await run(client, deployment, queue="limited", minutes=-2)
    free = await run(client, deployment, minutes=-1)
    assert await polled_ids(client, pool) == [free, first]
    assert await polled_ids(client, pool, work_queue_names=["limited"]) == [first]


async def test_full_queue_gives_nothing_other_queues_still_do(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    await add_queue(client, pool, "full", concurrency_limit=1, priority=1)
    await run(client, deployment, queue="full", state="RUNNING")
    await run(client, deployment, queue="full")
    other = await run(client, deployment)
    assert await polled_ids(client, pool) == [other]


async def test_queue_limit_of_zero_gives_nothing(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    await add_queue(client, pool, "closed", concurrency_limit=0)
    await run(client, deployment, queue="closed")
    assert await polled_ids(client, pool, work_queue_names=["closed"]) == []


async def test_pool_concurrency_limit_counts_every_queue_of_the_pool(
    client: httpx.AsyncClient,
) -> None:
    pool, deployment = await pooled(client, concurrency_limit=3)
    await add_queue(client, pool, "other")
    await run(client, deployment, queue="other", state="RUNNING")
    first = await run(client, deployment, minutes=-3)
    second = await run(client, deployment, minutes=-2)
    await run(client, deployment, minutes=-1)
    # 3 slots, 1 taken: the first two in poll order.
    assert await polled_ids(client, pool) == [first, second]
    assert await polled_ids(client, pool, limit=1) == [first]


async def test_full_pool_gives_nothing(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client, concurrency_limit=1)
    await run(client, deployment, state="PENDING")
    await run(client, deployment)
    assert await polled_ids(client, pool) == []


async def test_pool_and_queue_limits_apply_together(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client, concurrency_limit=3)
    await add_queue(client, pool, "q1", concurrency_limit=1, priority=1)
    q1_first = await run(client, deployment, queue="q1", minutes=-5)
    await run(client, deployment, queue="q1", minutes=-4)
    default_runs = [await run(client, deployment, minutes=m) for m in (-3, -2, -1)]
    # q1 (priority 1) gives one run; the pool's 3 slots take two more from "default".
    assert await polled_ids(client, pool) == [q1_first, *default_runs[:2]]


# --- errors ------------------------------------------------------------------------------


async def test_unknown_pool_is_404_with_prefect_detail(client: httpx.AsyncClient) -> None:
    response = await poll(client, "no-such-pool")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": 'Work pool "no-such-pool" not found.'},
    )


async def test_unknown_queue_is_404_naming_pool_and_queue(client: httpx.AsyncClient) -> None:
    pool, _ = await pooled(client)
    response = await poll(client, pool, work_queue_names=["default", "zzz", "yyy"])
    assert (response.status_code, response.json()) == (
        404,
        {"detail": f"Work pool queue '{pool}/zzz' not found."},
    )


async def test_limit_above_200_is_422_with_string_detail(client: httpx.AsyncClient) -> None:
    pool, _ = await pooled(client)
    response = await poll(client, pool, limit=201)
    assert (response.status_code, response.json()) == (
        422,
        {"detail": "Invalid limit: must be less than or equal to 200."},
    )
    negative = await poll(client, pool, limit=-1)
    assert negative.json() == {"detail": "Invalid limit: must be greater than or equal to 0."}


async def test_limit_is_checked_before_the_pool_lookup(client: httpx.AsyncClient) -> None:
    response = await poll(client, "no-such-pool", limit=201)
    assert response.status_code == 422


async def test_missing_body_and_unknown_keys_are_accepted(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    run_id = await run(client, deployment)
    bare = await client.post(f"/work_pools/{pool}/get_scheduled_flow_runs")
    assert [item["flow_run"]["id"] for item in bare.json()] == [run_id]
    assert await polled_ids(client, pool, bogus=1) == [run_id]


async def test_bad_scheduled_before_is_a_422_envelope(client: httpx.AsyncClient) -> None:
    pool, _ = await pooled(client)
    response = await poll(client, pool, scheduled_before="garbage")
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["loc"] == ["body", "scheduled_before"]


# --- what a poll marks -------------------------------------------------------------------


async def test_poll_marks_queue_ready_and_sets_last_polled(client: httpx.AsyncClient) -> None:
    pool, _ = await pooled(client)
    before = await queue(client, pool)
    assert (before["status"], before["last_polled"]) == ("NOT_READY", None)
    start = dt.datetime.now(dt.UTC)
    await poll(client, pool)
    after = await queue(client, pool)
    assert after["status"] == "READY"
    assert dt.datetime.fromisoformat(after["last_polled"]) >= start


async def test_poll_of_named_queues_marks_only_those(client: httpx.AsyncClient) -> None:
    pool, _ = await pooled(client)
    await add_queue(client, pool, "a")
    await add_queue(client, pool, "b")
    await poll(client, pool, work_queue_names=["a"])
    assert (await queue(client, pool, "a"))["status"] == "READY"
    assert (await queue(client, pool, "b"))["last_polled"] is None
    assert (await queue(client, pool))["last_polled"] is None


async def test_poll_without_names_marks_every_queue_of_the_pool(client: httpx.AsyncClient) -> None:
    pool, _ = await pooled(client)
    await add_queue(client, pool, "a")
    await poll(client, pool)
    assert (await queue(client, pool, "a"))["status"] == "READY"
    assert (await queue(client, pool))["status"] == "READY"


async def test_paused_queue_keeps_paused_status_but_records_the_poll(
    client: httpx.AsyncClient,
) -> None:
    pool, _ = await pooled(client)
    await add_queue(client, pool, "p")
    await client.patch(f"/work_pools/{pool}/queues/p", json={"is_paused": True})
    await poll(client, pool)
    paused = await queue(client, pool, "p")
    assert (paused["status"], paused["last_polled"] is not None) == ("PAUSED", True)


async def test_queue_created_paused_turns_ready_when_polled_as_in_prefect(
    client: httpx.AsyncClient,
) -> None:
    pool, _ = await pooled(client)
    await add_queue(client, pool, "born-paused", is_paused=True)
    assert (await queue(client, pool, "born-paused"))["status"] == "NOT_READY"
    await poll(client, pool)
    assert (await queue(client, pool, "born-paused"))["status"] == "READY"


async def test_paused_pool_poll_still_marks_queues_and_deployments(
    client: httpx.AsyncClient,
) -> None:
    pool, deployment = await pooled(client)
    await client.patch(f"/work_pools/{pool}", json={"is_paused": True})
    await poll(client, pool)
    assert (await queue(client, pool))["status"] == "READY"
    assert (await client.get(f"/deployments/{deployment['id']}")).json()["status"] == "READY"


async def test_poll_marks_deployments_of_polled_queues_ready_keeping_updated(
    client: httpx.AsyncClient,
) -> None:
    pool, deployment = await pooled(client)
    await add_queue(client, pool, "elsewhere")
    elsewhere = await create_deployment(client, work_pool_name=pool, work_queue_name="elsewhere")
    assert deployment["status"] == "NOT_READY"
    await poll(client, pool, work_queue_names=["default"])
    after = (await client.get(f"/deployments/{deployment['id']}")).json()
    assert after["status"] == "READY"
    assert after["last_polled"] is not None
    assert after["updated"] == deployment["updated"]
    untouched = (await client.get(f"/deployments/{elsewhere['id']}")).json()
    assert (untouched["status"], untouched["last_polled"]) == ("NOT_READY", None)


async def test_poll_does_not_change_run_state(client: httpx.AsyncClient) -> None:
    pool, deployment = await pooled(client)
    run_id = await run(client, deployment)
    before = (await client.get(f"/flow_runs/{run_id}")).json()
    await poll(client, pool)
    after = (await client.get(f"/flow_runs/{run_id}")).json()
    assert (after["state_type"], after["state_id"], after["updated"]) == (
        before["state_type"],
        before["state_id"],
        before["updated"],
    )


async def test_repeated_poll_does_not_rewrite_queue_or_deployment(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool, deployment = await pooled(client)
    await poll(client, pool)
    first_queue = await queue(client, pool)
    first_deployment = (await client.get(f"/deployments/{deployment['id']}")).json()
    await poll(client, pool)
    assert await queue(client, pool) == first_queue
    assert (await client.get(f"/deployments/{deployment['id']}")).json() == first_deployment


async def test_poll_after_the_write_interval_refreshes_last_polled(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool, deployment = await pooled(client)
    await poll(client, pool)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    async with database.write() as conn:
        await conn.execute(update(t.work_queue).values(last_polled=old))
        await conn.execute(
            update(t.deployment)
            .where(t.deployment.c.id == uuid.UUID(deployment["id"]))
            .values(last_polled=old)
        )
    await poll(client, pool)
    assert dt.datetime.fromisoformat((await queue(client, pool))["last_polled"]) > old
    refreshed = (await client.get(f"/deployments/{deployment['id']}")).json()
    assert dt.datetime.fromisoformat(refreshed["last_polled"]) > old


async def test_deployment_created_after_a_poll_turns_ready_with_the_next_due_mark(
    client: httpx.AsyncClient, database: Database
) -> None:
    pool, _ = await pooled(client)
    await poll(client, pool)
    newcomer = await create_deployment(client, work_pool_name=pool)
    async with database.write() as conn:
        old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
        await conn.execute(update(t.work_queue).values(last_polled=old))
    await poll(client, pool)
    assert (await client.get(f"/deployments/{newcomer['id']}")).json()["status"] == "READY"


# --- the Runner's poll (served deployments) --------------------------------------------------


async def runner_poll(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/deployments/get_scheduled_flow_runs", json=body)


async def test_runner_poll_returns_scheduled_runs_of_the_deployments_by_time(
    client: httpx.AsyncClient,
) -> None:
    _, deployment = await pooled(client)
    _, other = await pooled(client)
    later = await run(client, deployment, minutes=5)
    sooner = await run(client, deployment, minutes=-5)
    await run(client, deployment, state="RUNNING")
    await run(client, other)
    response = await runner_poll(client, deployment_ids=[deployment["id"]])
    assert response.status_code == 200
    body = response.json()
    assert [r["id"] for r in body] == [sooner, later]
    full = (await client.get(f"/flow_runs/{sooner}")).json()
    assert body[0] == {**full, "estimated_start_time_delta": body[0]["estimated_start_time_delta"]}


async def test_runner_poll_includes_awaiting_retry_runs(client: httpx.AsyncClient) -> None:
    _, deployment = await pooled(client)
    retrying = await run(client, deployment, empirical_policy={"retry_type": "in_process"})
    response = await runner_poll(client, deployment_ids=[deployment["id"]])
    assert [r["id"] for r in response.json()] == [retrying]


async def test_runner_poll_scheduled_before_and_limit(client: httpx.AsyncClient) -> None:
    _, deployment = await pooled(client)
    ids = [await run(client, deployment, minutes=m) for m in (-3, -2, 30)]
    answered = await runner_poll(client, deployment_ids=[deployment["id"]], scheduled_before=at(0))
    assert [r["id"] for r in answered.json()] == ids[:2]
    limited = await runner_poll(client, deployment_ids=[deployment["id"]], limit=1)
    assert [r["id"] for r in limited.json()] == ids[:1]


async def test_runner_poll_marks_deployments_ready(client: httpx.AsyncClient) -> None:
    _, deployment = await pooled(client)
    await runner_poll(client, deployment_ids=[deployment["id"], str(uuid.uuid4())])
    after = (await client.get(f"/deployments/{deployment['id']}")).json()
    assert after["status"] == "READY"
    assert after["last_polled"] is not None
    assert after["updated"] == deployment["updated"]


async def test_runner_poll_errors(client: httpx.AsyncClient) -> None:
    missing = await runner_poll(client)
    assert missing.status_code == 422
    assert missing.json()["exception_detail"][0]["loc"] == ["body", "deployment_ids"]
    assert (await runner_poll(client, deployment_ids=[])).json() == []
    too_many = await runner_poll(client, deployment_ids=[], limit=300)
    assert (too_many.status_code, too_many.json()) == (
        422,
        {"detail": "Invalid limit: must be less than or equal to 200."},
    )
    bad = await runner_poll(client, deployment_ids=["not-a-uuid"])
    assert bad.status_code == 422


async def test_runner_poll_skips_runs_whose_deployment_is_gone(
    client: httpx.AsyncClient, database: Database
) -> None:
    _, deployment = await pooled(client)
    run_id = await run(client, deployment)
    orphan_of = uuid.uuid4()  # runs outlive their deployment (no foreign key)
    async with database.write() as conn:
        await conn.execute(
            update(t.flow_run)
            .where(t.flow_run.c.id == uuid.UUID(run_id))
            .values(deployment_id=orphan_of)
        )
    assert (await runner_poll(client, deployment_ids=[str(orphan_of)])).json() == []


# --- a queue polled by id (POST /work_queues/{id}/get_runs) --------------------------------


async def queue_runs(
    client: httpx.AsyncClient, queue_id: str, headers: dict[str, str] | None = None, **body: Any
) -> list[str]:
    response = await client.post(f"/work_queues/{queue_id}/get_runs", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()]


async def test_queue_runs_are_its_scheduled_runs_within_its_free_slots(
    client: httpx.AsyncClient,
) -> None:
    """What ``prefect work-queue preview``/``read-runs`` and old agents ask for."""
    pool, deployment = await pooled(client)
    await add_queue(client, pool, "limited", concurrency_limit=2)
    limited = await queue(client, pool, "limited")
    for name, minutes in (("second", -5), ("first", -10), ("later", 30)):
        await run(client, deployment, minutes=minutes, queue="limited", name=name)
    await run(client, deployment, minutes=-20, name="other-queue")

    # Every scheduled run, earliest first, as many as the two free slots.
    ui_look = await queue_runs(client, limited["id"], headers={"x-prefect-ui": "true"})
    assert ui_look == ["first", "second"]
    assert (await queue(client, pool, "limited"))["last_polled"] is None  # the UI is no poll
    soon = await queue_runs(client, limited["id"], scheduled_before=at(0), limit=5)
    assert soon == ["first", "second"]
    polled = await queue(client, pool, "limited")
    assert (polled["status"], polled["last_polled"] is not None) == ("READY", True)

    await run(client, deployment, queue="limited", state="RUNNING", name="busy")
    assert await queue_runs(client, limited["id"]) == ["first"]  # one slot left
    await client.patch(f"/work_queues/{limited['id']}", json={"is_paused": True})
    assert await queue_runs(client, limited["id"]) == []

    missing = uuid.uuid4()
    unknown = await client.post(f"/work_queues/{missing}/get_runs", json={})
    assert (unknown.status_code, unknown.json()) == (
        404,
        {"exception_message": f"Work queue with id {missing} not found."},
    )
    too_many = await client.post(f"/work_queues/{limited['id']}/get_runs", json={"limit": 201})
    assert too_many.status_code == 422


async def test_a_legacy_tag_based_queue_takes_matching_runs_from_anywhere(
    client: httpx.AsyncClient, database: Database
) -> None:
    _pool, deployment = await pooled(client)
    legacy = await client.post("/work_queues/", json={"name": f"tagged-{uuid.uuid4().hex[:6]}"})
    queue_id = legacy.json()["id"]
    async with database.write() as conn:  # only Prefect 1/2-era clients wrote such filters
        await conn.execute(
            update(t.work_queue)
            .where(t.work_queue.c.id == uuid.UUID(queue_id))
            .values(filter={"tags": ["etl"], "deployment_ids": None})
        )
    await run(client, deployment, minutes=-3, tags=["etl", "x"], name="tagged")
    await run(client, deployment, minutes=-4, tags=["x"], name="untagged")
    assert await queue_runs(client, queue_id) == ["tagged"]
