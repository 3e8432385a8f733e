"""POST /flow_runs/, PATCH /flow_runs/{id} and PATCH /flow_runs/{id}/labels."""

from __future__ import annotations

import uuid

import httpx

from factories import (
    STRICT_TEMPLATE,
    create_deployment,
    create_flow,
    create_work_pool,
    new_run,
    propose,
)


async def test_plain_create_defaults_to_pending_with_flow_labels(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client, labels={"team": "x"})
    response = await client.post(
        "/flow_runs/", json={"flow_id": flow["id"], "parameters": {"a": 1}, "tags": ["t", "t"]}
    )
    assert response.status_code == 201
    run = response.json()
    assert (run["state_type"], run["state_name"]) == ("PENDING", "Pending")
    assert run["labels"] == {"team": "x", "prefect.flow.id": flow["id"]}
    assert run["deployment_id"] is None
    assert run["work_queue_id"] is None
    assert run["tags"] == ["t"]
    assert run["parameters"] == {"a": 1}
    assert run["job_variables"] == {}  # as Prefect, which code calling .get() on it relies on
    explicit_null = await client.post(
        "/flow_runs/", json={"flow_id": flow["id"], "job_variables": None}
    )
    assert explicit_null.json()["job_variables"] == {}
    read = await client.get(f"/flow_runs/{explicit_null.json()['id']}")
    assert read.json()["job_variables"] == {}


async def test_plain_create_with_an_idempotency_key_replays_with_200(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client)
    body = {"flow_id": flow["id"], "idempotency_key": "once"}
    first = await client.post("/flow_runs/", json=body)
    again = await client.post("/flow_runs/", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


async def test_plain_create_in_a_pool_queue_and_unknown_queue_404(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client)
    pool = await create_work_pool(client)
    placed = await client.post(
        "/flow_runs/", json={"flow_id": flow["id"], "work_pool_name": pool["name"]}
    )
    assert placed.json()["work_queue_name"] == "default"
    assert placed.json()["work_pool_name"] == pool["name"]
    missing = await client.post(
        "/flow_runs/",
        json={"flow_id": flow["id"], "work_pool_name": pool["name"], "work_queue_name": "nope"},
    )
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"Work pool queue '{pool['name']}/nope' not found."}


async def test_plain_create_for_an_unknown_flow_is_an_integrity_conflict(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/flow_runs/", json={"flow_id": str(uuid.uuid4())})
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Data integrity conflict.")


async def test_patch_changes_only_the_fields_sent(client: httpx.AsyncClient) -> None:
    run = await new_run(client, tags=["keep"], parameters={"x": 1})
    response = await client.patch(
        f"/flow_runs/{run['id']}",
        json={
            "flow_version": "abc",
            "infrastructure_pid": "4242",
            "empirical_policy": {"retries": 2, "retry_delay": 5},
        },
    )
    assert response.status_code == 204
    read = (await client.get(f"/flow_runs/{run['id']}")).json()
    assert (read["flow_version"], read["infrastructure_pid"]) == ("abc", "4242")
    assert (read["empirical_policy"]["retries"], read["empirical_policy"]["retry_delay"]) == (2, 5)
    assert read["parameters"] == {"x": 1}
    assert read["name"] == run["name"]


async def test_patch_unknown_run_and_unknown_field(client: httpx.AsyncClient) -> None:
    missing = await client.patch(f"/flow_runs/{uuid.uuid4()}", json={"name": "x"})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Flow run not found"})
    run = await new_run(client)
    extra = await client.patch(f"/flow_runs/{run['id']}", json={"state_type": "RUNNING"})
    assert extra.status_code == 422


async def test_patch_job_variables_only_while_scheduled_and_validated(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client, base_job_template=STRICT_TEMPLATE)
    deployment = await create_deployment(
        client, work_pool_name=pool["name"], job_variables={"image": "a"}
    )
    run = await new_run(client, deployment)
    ok = await client.patch(f"/flow_runs/{run['id']}", json={"job_variables": {"image": "b"}})
    assert ok.status_code == 204
    bad = await client.patch(f"/flow_runs/{run['id']}", json={"job_variables": {"image": 1}})
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("Error updating flow run: Validation failed")
    await propose(client, run["id"], "PENDING")
    late = await client.patch(f"/flow_runs/{run['id']}", json={"job_variables": {"image": "c"}})
    assert late.status_code == 400
    assert late.json() == {
        "detail": "Job variables for a flow run in state PENDING cannot be updated"
    }


async def test_labels_are_merged(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    response = await client.patch(
        f"/flow_runs/{run['id']}/labels",
        json={"prefect.worker.name": "w1", "prefect.work-pool.name": "p"},
    )
    assert response.status_code == 204
    labels = (await client.get(f"/flow_runs/{run['id']}")).json()["labels"]
    assert labels == {**run["labels"], "prefect.worker.name": "w1", "prefect.work-pool.name": "p"}
    missing = await client.patch(f"/flow_runs/{uuid.uuid4()}/labels", json={"a": 1})
    assert missing.status_code == 404


async def test_a_subflows_states_are_mirrored_onto_its_parent_task_run(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client)
    parent = (await client.post("/flow_runs/", json={"flow_id": flow["id"]})).json()
    task = await client.post(
        "/task_runs/",
        json={"flow_run_id": parent["id"], "task_key": "child-flow", "dynamic_key": "0"},
    )
    assert task.status_code == 201, task.text
    task_id = task.json()["id"]
    child = (
        await client.post(
            "/flow_runs/", json={"flow_id": flow["id"], "parent_task_run_id": task_id}
        )
    ).json()
    # From its first state on, as in Prefect (its global rules apply at creation too).
    assert child["state"]["state_details"]["task_run_id"] == task_id
    pending = (await client.get(f"/task_runs/{task_id}")).json()
    assert pending["state_type"] == "PENDING"
    assert pending["state"]["state_details"]["child_flow_run_id"] == child["id"]
    running = await propose(client, child["id"], "RUNNING")
    assert running.json()["status"] == "ACCEPT"
    assert running.json()["state"]["state_details"]["task_run_id"] == task_id
    mirrored = (await client.get(f"/task_runs/{task_id}")).json()
    assert mirrored["state_type"] == "RUNNING"
    assert mirrored["state"]["state_details"]["child_flow_run_id"] == child["id"]
