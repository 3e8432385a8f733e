"""POST /flow_runs/{id}/set_state through the API: lifecycle, races, concurrency slots."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter

import httpx

from databases import counted_statements
from deputy.db.engine import Database
from factories import CLIENT, create_deployment, create_work_pool, new_run, propose


async def test_full_lifecycle_keeps_the_bookkeeping(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    pending = await propose(client, run["id"], "PENDING")
    assert pending.status_code == 201
    assert pending.json()["status"] == "ACCEPT"
    assert pending.json()["details"] == {"type": "accept_details"}
    pending_state = pending.json()["state"]
    # Prefect's State, not the stored row (no created, updated or flow_run_id).
    assert set(pending_state) == {
        "id", "type", "name", "timestamp", "message", "data", "state_details"
    }  # fmt: skip
    assert (
        pending_state["state_details"]["scheduled_time"]
        == (run["state"]["state_details"]["scheduled_time"])
    )
    running = await propose(client, run["id"], "RUNNING")
    assert (running.status_code, running.json()["status"]) == (201, "ACCEPT")
    completed = await propose(client, run["id"], "COMPLETED")
    assert (completed.status_code, completed.json()["status"]) == (201, "ACCEPT")
    final = (await client.get(f"/flow_runs/{run['id']}")).json()
    assert (final["state_type"], final["run_count"]) == ("COMPLETED", 1)
    assert final["start_time"] == running.json()["state"]["timestamp"]
    assert final["end_time"] == completed.json()["state"]["timestamp"]
    start = dt.datetime.fromisoformat(final["start_time"])
    end = dt.datetime.fromisoformat(final["end_time"])
    assert abs(final["total_run_time"] - (end - start).total_seconds()) < 1e-6
    assert final["next_scheduled_start_time"] is None
    history = (await client.get("/flow_run_states/", params={"flow_run_id": run["id"]})).json()
    assert [s["type"] for s in history] == ["SCHEDULED", "PENDING", "RUNNING", "COMPLETED"]


async def test_unknown_run_is_404_in_the_exception_message_shape(
    client: httpx.AsyncClient,
) -> None:
    missing = uuid.uuid4()
    response = await propose(client, str(missing), "PENDING")
    assert response.status_code == 404
    assert response.json() == {"exception_message": f"Flow run with id {missing} not found"}


async def test_missing_state_wrapper_is_422(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    response = await client.post(f"/flow_runs/{run['id']}/set_state", json={"type": "PENDING"})
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["loc"] == ["body", "state"]


async def test_second_pending_is_aborted_with_200(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    assert (await propose(client, run["id"], "PENDING")).status_code == 201
    again = await propose(client, run["id"], "PENDING")
    assert again.status_code == 200
    assert again.json()["status"] == "ABORT"
    assert again.json()["details"] == {
        "type": "abort_details",
        "reason": "This run is in a PENDING state and cannot transition to a PENDING state.",
    }
    submitting = await propose(client, run["id"], "PENDING", name="Submitting")
    assert (submitting.status_code, submitting.json()["status"]) == (201, "ACCEPT")


async def test_running_waits_until_the_scheduled_time(client: httpx.AsyncClient) -> None:
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)).isoformat()
    run = await new_run(
        client, state={"type": "SCHEDULED", "state_details": {"scheduled_time": later}}
    )
    response = await propose(client, run["id"], "RUNNING")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "WAIT"
    assert body["details"]["type"] == "wait_details"
    assert 590 <= body["details"]["delay_seconds"] <= 600
    assert body["details"]["reason"] == "Scheduled time is in the future"
    assert body["state"]["id"] == run["state_id"]


async def test_cancelling_a_scheduled_run_without_infrastructure_cancels_it(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    response = await propose(client, run["id"], "CANCELLING")
    assert response.status_code == 201
    body = response.json()
    assert (body["status"], body["state"]["type"]) == ("REJECT", "CANCELLED")
    assert body["details"]["reason"] == "Scheduled flow run has no infrastructure to terminate."


async def test_failed_run_with_retries_goes_to_awaiting_retry(client: httpx.AsyncClient) -> None:
    run = await new_run(client, empirical_policy={"retries": 1, "retry_delay": 0})
    await propose(client, run["id"], "PENDING")
    await propose(client, run["id"], "RUNNING")
    failed = await propose(client, run["id"], "FAILED", message="boom")
    body = failed.json()
    assert (failed.status_code, body["status"]) == (201, "REJECT")
    assert (body["state"]["type"], body["state"]["name"]) == ("SCHEDULED", "AwaitingRetry")
    assert body["state"]["message"] == "boom"
    read = (await client.get(f"/flow_runs/{run['id']}")).json()
    assert read["empirical_policy"]["retry_type"] == "in_process"
    assert (await propose(client, run["id"], "RUNNING")).json()["status"] == "ACCEPT"
    final = await propose(client, run["id"], "FAILED")
    assert (final.json()["status"], final.json()["state"]["type"]) == ("ACCEPT", "FAILED")
    read = (await client.get(f"/flow_runs/{run['id']}")).json()
    assert (read["run_count"], read["empirical_policy"]["retry_type"]) == (2, None)


async def test_force_skips_the_rules(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    await propose(client, run["id"], "PENDING")
    forced = await propose(client, run["id"], "PENDING", force=True)
    assert (forced.status_code, forced.json()["status"]) == (201, "ACCEPT")


async def test_a_null_force_is_not_forcing(client: httpx.AsyncClient) -> None:
    """As Prefect's server: ``"force": null`` counts as not sent, for flow and task runs."""
    run = await new_run(client)
    await propose(client, run["id"], "PENDING")
    url = f"/flow_runs/{run['id']}/set_state"
    again = await client.post(url, json={"state": {"type": "PENDING"}, "force": None})
    assert (again.status_code, again.json()["status"]) == (200, "ABORT")
    task = await client.post(
        "/task_runs/", json={"flow_run_id": run["id"], "task_key": "t", "dynamic_key": "0"}
    )
    task_url = f"/task_runs/{task.json()['id']}/set_state"
    pending = await client.post(task_url, json={"state": {"type": "PENDING"}, "force": None})
    assert (pending.status_code, pending.json()["status"]) == (201, "ACCEPT")


async def test_duplicate_transition_id_is_answered_with_the_current_state(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    transition = str(uuid.uuid4())
    details = {"transition_id": transition}
    first = await propose(client, run["id"], "PENDING", state_details=details)
    retry = await propose(client, run["id"], "PENDING", state_details=details)
    assert first.json()["status"] == "ACCEPT"
    assert (retry.status_code, retry.json()["status"]) == (200, "REJECT")
    assert retry.json()["state"]["id"] == first.json()["state"]["id"]


async def test_twenty_concurrent_pending_proposals_give_exactly_one_accept(
    client: httpx.AsyncClient,
) -> None:
    run = await new_run(client)
    responses = await asyncio.gather(*(propose(client, run["id"], "PENDING") for _ in range(20)))
    statuses = Counter(r.json()["status"] for r in responses)
    assert statuses == {"ACCEPT": 1, "ABORT": 19}
    history = (await client.get("/flow_run_states/", params={"flow_run_id": run["id"]})).json()
    assert [s["type"] for s in history] == ["SCHEDULED", "PENDING"]


async def test_deployment_concurrency_enqueue_then_release(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"], concurrency_limit=1)
    first = await new_run(client, deployment)
    second = await new_run(client, deployment)
    taken = await propose(client, first["id"], "PENDING")
    lease_id = taken.json()["state"]["state_details"]["deployment_concurrency_lease_id"]
    assert lease_id is not None
    blocked = await propose(client, second["id"], "PENDING")
    body = blocked.json()
    assert (blocked.status_code, body["status"]) == (201, "REJECT")
    assert body["details"]["reason"] == "Deployment concurrency limit reached."
    assert (body["state"]["type"], body["state"]["name"]) == (
        "SCHEDULED",
        "AwaitingConcurrencySlot",
    )
    waits_until = dt.datetime.fromisoformat(body["state"]["state_details"]["scheduled_time"])
    assert 25 <= (waits_until - dt.datetime.now(dt.UTC)).total_seconds() <= 31
    limit = (await client.get(f"/deployments/{deployment['id']}")).json()
    assert limit["global_concurrency_limit"]["active_slots"] == 1
    await propose(client, first["id"], "RUNNING")
    await propose(client, first["id"], "COMPLETED")
    limit = (await client.get(f"/deployments/{deployment['id']}")).json()
    assert limit["global_concurrency_limit"]["active_slots"] == 0
    await propose(client, second["id"], "SCHEDULED", force=True)
    assert (await propose(client, second["id"], "PENDING")).json()["status"] == "ACCEPT"


async def test_deployment_concurrency_cancel_new(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(
        client,
        work_pool_name=pool["name"],
        concurrency_limit=1,
        concurrency_options={"collision_strategy": "CANCEL_NEW"},
    )
    first = await new_run(client, deployment)
    second = await new_run(client, deployment)
    await propose(client, first["id"], "PENDING")
    cancelled = (await propose(client, second["id"], "PENDING")).json()
    assert (cancelled["status"], cancelled["state"]["type"]) == ("REJECT", "CANCELLED")
    assert cancelled["state"]["message"] == "Deployment concurrency limit reached."


async def test_slots_never_go_negative(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"], concurrency_limit=2)
    run = await new_run(client, deployment)
    await propose(client, run["id"], "RUNNING", force=True)  # no slot taken when forced
    await propose(client, run["id"], "COMPLETED")
    limit = (await client.get(f"/deployments/{deployment['id']}")).json()
    assert limit["global_concurrency_limit"]["active_slots"] == 0


async def test_resume_a_paused_run(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    await propose(client, run["id"], "RUNNING", force=True)
    paused = await propose(client, run["id"], "PAUSED", state_details={"pause_key": "k"})
    assert paused.json()["status"] == "ACCEPT"
    resumed = await client.post(f"/flow_runs/{run['id']}/resume", json={}, headers=CLIENT)
    assert (resumed.status_code, resumed.json()["status"]) == (201, "ACCEPT")
    assert resumed.json()["state"]["type"] == "RUNNING"
    read = (await client.get(f"/flow_runs/{run['id']}")).json()
    # As in Prefect: the resume itself enters RUNNING (counted) and marks the run resuming,
    # so the engine's own RUNNING proposal that follows is not counted again.
    assert read["run_count"] == 2
    assert read["empirical_policy"]["resuming"] is True
    assert read["empirical_policy"]["pause_keys"] == ["k"]
    engine = await propose(client, run["id"], "RUNNING")
    assert engine.json()["status"] == "ACCEPT"
    read = (await client.get(f"/flow_runs/{run['id']}")).json()
    assert (read["run_count"], read["empirical_policy"]["resuming"]) == (2, False)
    again = await client.post(f"/flow_runs/{run['id']}/resume", json={})
    assert again.status_code == 200
    assert again.json() == {
        "state": None,
        "status": "ABORT",
        "details": {
            "type": "abort_details",
            "reason": "Cannot resume a flow run that is not paused.",
        },
    }


async def test_set_state_takes_three_statements(
    client: httpx.AsyncClient, database: Database
) -> None:
    run = await new_run(client)
    with counted_statements(database) as statements:
        response = await propose(client, run["id"], "PENDING")
    assert response.json()["status"] == "ACCEPT"
    # Read run+state, insert state, update run; PostgreSQL locks the row first, on its own.
    expected = 4 if database.dialect == "postgresql" else 3
    assert len(statements) == expected, statements
