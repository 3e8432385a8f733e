"""POST /deployments/{id}/create_flow_run, one test per rule of Prefect 3.9.1's behaviour."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any

import httpx

from factories import STRICT_TEMPLATE, create_deployment, create_flow, create_work_pool, unique


async def create_run(
    client: httpx.AsyncClient, deployment: dict[str, Any], body: dict[str, Any] | None = None
) -> httpx.Response:
    return await client.post(f"/deployments/{deployment['id']}/create_flow_run", json=body or {})


async def pooled_deployment(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    pool = await create_work_pool(client)
    return await create_deployment(client, work_pool_name=pool["name"], **fields)


# --- request validation ------------------------------------------------------------------


async def test_unknown_fields_get_one_error_each_in_prefect_envelope(
    client: httpx.AsyncClient,
) -> None:
    deployment = await pooled_deployment(client)
    response = await create_run(client, deployment, {"bogus": 1, "flow_id": "x"})
    assert response.status_code == 422
    body = response.json()
    assert body["exception_message"] == "Invalid request received."
    assert sorted(e["loc"][1] for e in body["exception_detail"]) == ["bogus", "flow_id"]
    assert {e["type"] for e in body["exception_detail"]} == {"extra_forbidden"}
    assert body["request_body"] == {"bogus": 1, "flow_id": "x"}


async def test_body_is_validated_before_the_deployment_lookup(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/deployments/{uuid.uuid4()}/create_flow_run", json={"name": 5})
    assert response.status_code == 422


async def test_missing_deployment_is_404_with_prefect_detail(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/deployments/{uuid.uuid4()}/create_flow_run", json={})
    assert (response.status_code, response.json()) == (404, {"detail": "Deployment not found"})


async def test_malformed_deployment_id_does_not_match_the_route(client: httpx.AsyncClient) -> None:
    response = await client.post("/deployments/not-a-uuid/create_flow_run", json={})
    assert (response.status_code, response.json()) == (404, {"detail": "Not Found"})


async def test_null_body_is_a_missing_body(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        content=b"null",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["type"] == "missing"


async def test_malformed_json_is_422_json_invalid(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        content=b'{"name": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["type"] == "json_invalid"


async def test_missing_content_type_is_read_as_json(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run", content=b'{"name": "plain"}'
    )
    assert response.status_code == 201
    assert response.json()["name"] == "plain"


async def test_invalid_utf8_is_a_4xx_not_a_500(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        content=b'{"name": "\xff\xfe"}',
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500


async def test_deeply_nested_body_is_a_4xx_not_a_500(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    for depth in (300, 900, 5000):
        nested = "[" * depth + "]" * depth
        response = await client.post(
            f"/deployments/{deployment['id']}/create_flow_run",
            content=f'{{"parameters": {{"x": {nested}}}}}'.encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code < 500, depth


async def test_parameters_over_512_kib_are_refused_and_exactly_512_kib_accepted(
    client: httpx.AsyncClient,
) -> None:
    deployment = await pooled_deployment(client)
    overhead = len('{"x":""}')
    exact = {"x": "a" * (524_288 - overhead)}
    accepted = await create_run(client, deployment, {"parameters": exact})
    assert accepted.status_code == 201
    too_big = {"x": "a" * (524_289 - overhead)}
    refused = await create_run(client, deployment, {"parameters": too_big})
    assert refused.status_code == 422
    error = refused.json()["exception_detail"][0]
    assert error["loc"] == ["body", "parameters"]
    assert error["msg"] == (
        "Value error, Flow run parameters must be less than 524,288 bytes when serialized "
        "(got 524,289 bytes)."
    )


async def test_lower_case_state_type_is_refused(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    response = await create_run(client, deployment, {"state": {"type": "scheduled"}})
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["type"] == "enum"


# --- defaults ----------------------------------------------------------------------------


async def test_empty_body_gives_a_scheduled_run_with_the_deployments_values(
    client: httpx.AsyncClient,
) -> None:
    deployment = await pooled_deployment(client, tags=["dep"], parameters={"x": 1}, version="1.0")
    before = dt.datetime.now(dt.UTC)
    response = await create_run(client, deployment)
    assert response.status_code == 201
    run = response.json()
    assert run["flow_id"] == deployment["flow_id"]
    assert run["deployment_id"] == deployment["id"]
    assert run["deployment_version"] == "1.0"
    assert run["flow_version"] is None
    assert run["parameters"] == {"x": 1}
    assert run["tags"] == ["dep"]
    assert run["work_queue_name"] == "default"
    assert run["work_queue_id"] == deployment["work_queue_id"]
    assert run["work_pool_name"] == deployment["work_pool_name"]
    assert run["state_type"] == "SCHEDULED"
    assert run["state_name"] == "Scheduled"
    assert run["state"]["state_details"]["flow_run_id"] == run["id"]
    scheduled = dt.datetime.fromisoformat(run["state"]["state_details"]["scheduled_time"])
    assert before <= scheduled <= dt.datetime.now(dt.UTC)
    assert run["expected_start_time"] == run["next_scheduled_start_time"]
    assert dt.datetime.fromisoformat(run["expected_start_time"]) == scheduled
    assert (run["run_count"], run["start_time"], run["end_time"]) == (0, None, None)
    assert run["total_run_time"] == 0.0
    assert run["job_variables"] == {}
    assert run["auto_scheduled"] is False
    assert run["empirical_policy"] == {
        "max_retries": 0,
        "retry_delay_seconds": 0.0,
        "retries": None,
        "retry_delay": None,
        "pause_keys": [],
        "resuming": False,
        "retry_type": None,
    }
    assert run["labels"] == {
        "prefect.flow.id": deployment["flow_id"],
        "prefect.deployment.id": deployment["id"],
    }


async def test_default_name_is_a_two_word_slug(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    for body in ({}, {"name": None}, {"name": ""}):
        name = (await create_run(client, deployment, body)).json()["name"]
        words = name.split("-")
        assert len(words) >= 2, name
        assert all(word.isalpha() for word in words), name


async def test_given_name_is_kept_verbatim(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    response = await create_run(client, deployment, {"name": "a/b%c"})
    assert response.json()["name"] == "a/b%c"


async def test_run_is_readable_after_creation_with_the_same_body(
    client: httpx.AsyncClient,
) -> None:
    deployment = await pooled_deployment(client)
    created = (await create_run(client, deployment)).json()
    read = (await client.get(f"/flow_runs/{created['id']}")).json()
    created.pop("estimated_start_time_delta")
    read.pop("estimated_start_time_delta")
    assert read == created


# --- parameters --------------------------------------------------------------------------


async def test_parameters_merge_shallowly_over_the_deployments(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client, parameters={"a": 1, "nested": {"keep": 1, "x": 1}})
    run = (
        await create_run(client, deployment, {"parameters": {"nested": {"x": 2}, "b": 3}})
    ).json()
    assert run["parameters"] == {"a": 1, "nested": {"x": 2}, "b": 3}
    assert (await client.get(f"/deployments/{deployment['id']}")).json()["parameters"] == {
        "a": 1,
        "nested": {"keep": 1, "x": 1},
    }


async def test_hydration_kinds_none_json_jinja(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    parameters = {
        "none": {"__prefect_kind": "none", "value": {"a": 1}},
        "json": {"__prefect_kind": "json", "value": '{"b": [1, 2]}'},
        "jinja": {"__prefect_kind": "jinja", "template": "{{ 1 + 2 }}"},
    }
    run = (await create_run(client, deployment, {"parameters": parameters})).json()
    assert run["parameters"] == {"none": {"a": 1}, "json": {"b": [1, 2]}, "jinja": "3"}


async def test_hydration_of_workspace_variables_of_every_json_type(
    client: httpx.AsyncClient,
) -> None:
    values: dict[str, Any] = {
        "s": "text",
        "n": 1.5,
        "b": True,
        "z": None,
        "o": {"k": [1]},
        "l": [1, "two"],
    }
    names = {key: unique("var").replace("-", "_") for key in values}
    for key, value in values.items():
        created = await client.post("/variables/", json={"name": names[key], "value": value})
        assert created.status_code == 201, created.text
    deployment = await pooled_deployment(client)
    parameters = {
        key: {"__prefect_kind": "workspace_variable", "variable_name": names[key]} for key in values
    }
    run = (await create_run(client, deployment, {"parameters": parameters})).json()
    assert run["parameters"] == values


async def test_hydration_failure_is_400(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    response = await create_run(
        client, deployment, {"parameters": {"x": {"__prefect_kind": "json", "value": "{bad"}}}
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        "Error hydrating flow run parameters: Invalid JSON: Expecting"
    )


async def test_schema_violation_is_409_with_the_first_error(client: httpx.AsyncClient) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}
    deployment = await pooled_deployment(client, parameter_openapi_schema=schema)
    response = await create_run(client, deployment, {"parameters": {"x": 1}})
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Error creating flow run: Validation failed for field 'x'. "
        "Failure reason: 1 is not of type 'string'"
    }
    assert (await create_run(client, deployment, {"parameters": {"x": "ok"}})).status_code == 201


async def test_missing_required_parameter_is_409_at_the_root(client: httpx.AsyncClient) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
    deployment = await pooled_deployment(client, parameter_openapi_schema=schema)
    response = await create_run(client, deployment)
    assert response.status_code == 409
    assert response.json() == {
        "detail": "Error creating flow run: Validation failed. "
        "Failure reason: 'x' is a required property"
    }


async def test_request_enforce_flag_overrides_the_deployments(client: httpx.AsyncClient) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    enforcing = await pooled_deployment(client, parameter_openapi_schema=schema)
    bypass = await create_run(
        client, enforcing, {"parameters": {"x": 1}, "enforce_parameter_schema": False}
    )
    assert bypass.status_code == 201
    lax = await pooled_deployment(
        client, parameter_openapi_schema=schema, enforce_parameter_schema=False
    )
    assert (await create_run(client, lax, {"parameters": {"x": 1}})).status_code == 201
    forced = await create_run(
        client, lax, {"parameters": {"x": 1}, "enforce_parameter_schema": True}
    )
    assert forced.status_code == 409


async def test_enforcing_without_a_schema_is_409(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client, parameter_openapi_schema=None)
    response = await create_run(client, deployment)
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Error updating deployment: Cannot update parameters because parameter schema "
        "enforcement is enabled and the deployment does not have a valid parameter schema."
    )


async def test_nested_ref_schema_reports_the_outer_field(client: httpx.AsyncClient) -> None:
    schema = {
        "type": "object",
        "properties": {"person": {"allOf": [{"$ref": "#/definitions/Person"}]}},
        "definitions": {
            "Person": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        },
    }
    deployment = await pooled_deployment(client, parameter_openapi_schema=schema)
    response = await create_run(client, deployment, {"parameters": {"person": {}}})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "'person'" in detail
    assert "'name' is a required property" in detail


async def test_remote_refs_are_never_fetched(client: httpx.AsyncClient) -> None:
    schema = {
        "type": "object",
        "properties": {"x": {"$ref": "http://127.0.0.1:9/never.json"}},
    }
    deployment = await pooled_deployment(client, parameter_openapi_schema=schema)
    response = await create_run(client, deployment, {"parameters": {"x": 1}})
    assert response.status_code in (409, 422)


# --- job variables -----------------------------------------------------------------------


async def test_job_variables_are_validated_with_required_enforced(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client, base_job_template=STRICT_TEMPLATE)
    deployment = await create_deployment(client, work_pool_name=pool["name"])
    missing = await create_run(client, deployment)
    assert missing.status_code == 422
    assert missing.json() == {
        "detail": "Error creating flow run: Validation failed. "
        "Failure reason: 'image' is a required property"
    }
    wrong = await create_run(client, deployment, {"job_variables": {"image": 2}})
    assert wrong.json() == {
        "detail": "Error creating flow run: Validation failed for field 'image'. "
        "Failure reason: 2 is not of type 'string'"
    }


async def test_only_the_requests_job_variables_are_stored(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client, base_job_template=STRICT_TEMPLATE)
    deployment = await create_deployment(
        client, work_pool_name=pool["name"], job_variables={"image": "dep"}
    )
    plain = (await create_run(client, deployment)).json()
    assert plain["job_variables"] == {}
    override = await create_run(client, deployment, {"job_variables": {"stream_output": False}})
    assert override.status_code == 201
    assert override.json()["job_variables"] == {"stream_output": False}


async def test_job_variables_skip_validation_without_a_pool(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    response = await create_run(client, deployment, {"job_variables": {"anything": 1}})
    assert response.status_code == 201
    assert response.json()["job_variables"] == {"anything": 1}


# --- work queues -------------------------------------------------------------------------


async def test_work_queue_override_is_created_in_the_deployments_pool(
    client: httpx.AsyncClient,
) -> None:
    deployment = await pooled_deployment(client)
    run = (await create_run(client, deployment, {"work_queue_name": "extra"})).json()
    assert run["work_queue_name"] == "extra"
    assert run["work_pool_name"] == deployment["work_pool_name"]
    queue = await client.get(f"/work_pools/{deployment['work_pool_name']}/queues/extra")
    assert queue.status_code == 200
    assert queue.json()["id"] == run["work_queue_id"]
    after = (await client.get(f"/deployments/{deployment['id']}")).json()
    assert after["work_queue_name"] == "default"
    assert (await create_run(client, deployment)).json()["work_queue_name"] == "default"


async def test_default_queue_override_resolves_inside_the_deployments_pool(
    client: httpx.AsyncClient,
) -> None:
    await create_work_pool(client)  # another pool with its own "default" queue
    deployment = await pooled_deployment(client)
    run = (await create_run(client, deployment, {"work_queue_name": "default"})).json()
    assert run["work_queue_id"] == deployment["work_queue_id"]


async def test_queue_override_without_a_pool_is_400(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    response = await create_run(client, deployment, {"work_queue_name": "extra-q"})
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"Cannot create flow run in work queue extra-q because deployment "
        f"{deployment['id']} is not associated with a work pool. Please remove "
        "work_pool_name and try again."
    }


async def test_queue_only_deployment_runs_in_default_agent_pool(
    client: httpx.AsyncClient,
) -> None:
    deployment = await create_deployment(client, work_queue_name=unique("q"))
    run = (await create_run(client, deployment)).json()
    assert run["work_pool_name"] == "default-agent-pool"
    assert run["work_queue_name"] == deployment["work_queue_name"]


# --- tags, labels, provenance ------------------------------------------------------------


async def test_tags_are_the_union_of_deployment_and_request(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client, tags=["a", "b"])
    run = (await create_run(client, deployment, {"tags": ["b", "c"]})).json()
    assert sorted(run["tags"]) == ["a", "b", "c"]


async def test_labels_layer_deployment_then_system_then_request(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client, labels={"from-flow": 1})
    deployment = await pooled_deployment(client, flow=flow, labels={"team": "x"})
    run = (
        await create_run(
            client, deployment, {"labels": {"prefect.deployment.id": "hijack", "env": True}}
        )
    ).json()
    assert run["labels"] == {
        "from-flow": 1,
        "prefect.flow.id": flow["id"],
        "team": "x",
        "prefect.deployment.id": "hijack",
        "env": True,
    }
    assert run["deployment_id"] == deployment["id"]


async def test_created_by_comes_from_automation_headers(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    automation = str(uuid.uuid4())
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        json={},
        headers={
            "Prefect-Automation-ID": automation,
            "Prefect-Automation-Name": base64.b64encode(b"nightly").decode(),
        },
    )
    assert response.json()["created_by"] == {
        "id": automation,
        "type": "AUTOMATION",
        "display_value": "nightly",
    }
    invalid = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        json={},
        headers={"Prefect-Automation-ID": automation, "Prefect-Automation-Name": "%%%"},
    )
    assert invalid.json()["created_by"] is None


async def test_unknown_parent_task_run_is_409_integrity_conflict(
    client: httpx.AsyncClient,
) -> None:
    deployment = await pooled_deployment(client)
    for field in ("parent_task_run_id", "infrastructure_document_id"):
        response = await create_run(client, deployment, {field: str(uuid.uuid4())})
        assert response.status_code == 409, field
        assert response.json()["detail"].startswith("Data integrity conflict.")
    assert (await client.post("/flow_runs/count", json={})).json() == 0


# --- idempotency -------------------------------------------------------------------------


async def test_idempotency_key_replay_returns_the_original_unchanged_with_200(
    client: httpx.AsyncClient,
) -> None:
    deployment = await pooled_deployment(client)
    first = await create_run(client, deployment, {"idempotency_key": "k", "tags": ["one"]})
    replay = await create_run(
        client,
        deployment,
        {"idempotency_key": "k", "tags": ["two"], "name": "other", "state": {"type": "RUNNING"}},
    )
    assert (first.status_code, replay.status_code) == (201, 200)
    original = first.json()
    again = replay.json()
    assert again["id"] == original["id"]
    assert again["state_id"] == original["state_id"]
    assert again["name"] == original["name"]
    assert again["tags"] == original["tags"]
    states = await client.get("/flow_run_states/", params={"flow_run_id": original["id"]})
    assert len(states.json()) == 1


async def test_idempotency_is_scoped_per_flow(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    first = await pooled_deployment(client, flow=flow)
    sibling = await pooled_deployment(client, flow=flow)
    other_flow = await pooled_deployment(client)
    original = (await create_run(client, first, {"idempotency_key": "shared"})).json()
    same_flow = await create_run(client, sibling, {"idempotency_key": "shared"})
    assert same_flow.status_code == 200
    assert same_flow.json()["id"] == original["id"]
    other = await create_run(client, other_flow, {"idempotency_key": "shared"})
    assert other.status_code == 201
    assert other.json()["id"] != original["id"]


async def test_invalid_replay_still_fails_validation(client: httpx.AsyncClient) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    deployment = await pooled_deployment(client, parameter_openapi_schema=schema)
    assert (await create_run(client, deployment, {"idempotency_key": "k"})).status_code == 201
    replay = await create_run(client, deployment, {"idempotency_key": "k", "parameters": {"x": 1}})
    assert replay.status_code == 409


# --- initial state -----------------------------------------------------------------------


async def test_future_scheduled_time_is_kept(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    when = "2031-01-01T00:00:00.123456Z"
    run = (
        await create_run(
            client,
            deployment,
            {"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": when}}},
        )
    ).json()
    assert run["expected_start_time"] == when
    assert run["next_scheduled_start_time"] == when
    assert run["estimated_start_time_delta"] == 0.0


async def test_naive_scheduled_time_is_read_as_utc(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    run = (
        await create_run(
            client,
            deployment,
            {
                "state": {
                    "type": "SCHEDULED",
                    "state_details": {"scheduled_time": "2031-01-01T00:00:00"},
                }
            },
        )
    ).json()
    assert run["expected_start_time"] == "2031-01-01T00:00:00Z"


async def test_running_initial_state_counts_a_run_and_sets_start(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    run = (await create_run(client, deployment, {"state": {"type": "RUNNING"}})).json()
    assert (run["state_type"], run["state_name"], run["run_count"]) == ("RUNNING", "Running", 1)
    assert run["start_time"] == run["state"]["timestamp"]
    assert run["expected_start_time"] == run["state"]["timestamp"]
    assert run["next_scheduled_start_time"] is None
    assert run["end_time"] is None


async def test_terminal_initial_state_sets_start_and_end_without_a_run(
    client: httpx.AsyncClient,
) -> None:
    deployment = await pooled_deployment(client)
    for state_type in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
        run = (await create_run(client, deployment, {"state": {"type": state_type}})).json()
        timestamp = run["state"]["timestamp"]
        assert (run["start_time"], run["end_time"], run["run_count"]) == (timestamp, timestamp, 0)
        assert run["state_type"] == state_type


async def test_pending_initial_state_keeps_scheduled_time_only_in_details(
    client: httpx.AsyncClient,
) -> None:
    deployment = await pooled_deployment(client)
    when = "2031-01-01T00:00:00Z"
    run = (
        await create_run(
            client,
            deployment,
            {
                "state": {
                    "type": "PENDING",
                    "message": "queued",
                    "name": "Custom",
                    "state_details": {"scheduled_time": when},
                }
            },
        )
    ).json()
    assert (run["state_type"], run["state_name"]) == ("PENDING", "Custom")
    assert run["state"]["message"] == "queued"
    assert run["next_scheduled_start_time"] is None
    assert run["expected_start_time"] == run["state"]["timestamp"]
    assert run["state"]["state_details"]["scheduled_time"] == when


async def test_state_with_data_is_stored_not_a_500(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    response = await create_run(
        client, deployment, {"state": {"type": "COMPLETED", "data": {"v": 1}}}
    )
    assert response.status_code == 201
    assert response.json()["state"]["data"] == {"v": 1}


async def test_initial_state_is_in_the_history(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    run = (await create_run(client, deployment)).json()
    history = (await client.get("/flow_run_states/", params={"flow_run_id": run["id"]})).json()
    assert [s["id"] for s in history] == [run["state_id"]]
    one = await client.get(f"/flow_run_states/{run['state_id']}")
    assert one.json()["type"] == "SCHEDULED"
    missing = await client.get(f"/flow_run_states/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Flow run state not found"})


async def test_runs_of_paused_deployments_are_still_created(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client, paused=True)
    assert (await create_run(client, deployment)).status_code == 201


# --- bulk --------------------------------------------------------------------------------


async def test_bulk_creates_in_order_with_per_item_results(client: httpx.AsyncClient) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    deployment = await pooled_deployment(client, parameter_openapi_schema=schema, tags=["d"])
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run/bulk",
        json=[{"parameters": {"x": 1}, "tags": ["t"]}, {"parameters": {"x": "bad"}}, {}],
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["CREATED", "FAILED", "CREATED"]
    assert results[1]["flow_run_id"] is None
    assert "Validation failed" in results[1]["error"]
    first = (await client.get(f"/flow_runs/{results[0]['flow_run_id']}")).json()
    assert sorted(first["tags"]) == ["d", "t"]
    assert first["parameters"] == {"x": 1}
    assert (await client.post("/flow_runs/count", json={})).json() == 2


async def test_bulk_limits_and_edge_cases(client: httpx.AsyncClient) -> None:
    deployment = await pooled_deployment(client)
    url = f"/deployments/{deployment['id']}/create_flow_run/bulk"
    assert (await client.post(url, json=[])).json() == {"results": []}
    too_many = await client.post(url, json=[{}] * 101)
    assert too_many.status_code == 400
    assert too_many.json() == {"detail": "Cannot create more than 100 flow runs at once."}
    missing = await client.post(f"/deployments/{uuid.uuid4()}/create_flow_run/bulk", json=[])
    assert missing.status_code == 404
