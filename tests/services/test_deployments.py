"""The /deployments endpoints, one test per rule of Prefect 3.9.1's behaviour.

``POST /deployments/{id}/create_flow_run`` has its own file,
tests/services/flow_runs/test_create.py.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from databases import DatabaseBackends
from deputy.db import tables as t
from deputy.db.engine import Database
from factories import create_deployment, create_flow, create_work_pool, unique

INTEGRITY = {
    "detail": "Data integrity conflict. This usually means a unique or foreign key constraint "
    "was violated. See server logs for details."
}

#: Every key of Prefect's DeploymentResponse, in Prefect's order.
RESPONSE_KEYS = [
    "id",
    "created",
    "updated",
    "name",
    "version",
    "description",
    "flow_id",
    "paused",
    "schedules",
    "concurrency_limit",
    "global_concurrency_limit",
    "concurrency_options",
    "job_variables",
    "parameters",
    "tags",
    "labels",
    "work_queue_name",
    "work_queue_id",
    "last_polled",
    "parameter_openapi_schema",
    "path",
    "pull_steps",
    "entrypoint",
    "storage_document_id",
    "infrastructure_document_id",
    "created_by",
    "updated_by",
    "work_pool_name",
    "status",
    "enforce_parameter_schema",
]

INT_SCHEMA = {"type": "object", "properties": {"x": {"type": "integer"}}}


async def post(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/deployments/", json=body)


async def read(client: httpx.AsyncClient, deployment: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"/deployments/{deployment['id']}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def patch(client: httpx.AsyncClient, deployment: dict[str, Any], body: Any) -> httpx.Response:
    return await client.patch(f"/deployments/{deployment['id']}", json=body)


async def names(client: httpx.AsyncClient, body: dict[str, Any]) -> list[str]:
    response = await client.post("/deployments/filter", json=body)
    assert response.status_code == 200, response.text
    return [d["name"] for d in response.json()]


def timestamp(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


# --- create ------------------------------------------------------------------------------


async def test_create_is_201_with_prefects_full_default_shape(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    pool = await create_work_pool(client)
    response = await post(client, flow_id=flow["id"], name="dep1", work_pool_name=pool["name"])
    assert response.status_code == 201
    body = response.json()
    assert list(body) == RESPONSE_KEYS
    uuid.UUID(body["id"])
    assert timestamp(body["created"]).tzinfo is not None
    assert timestamp(body["updated"]).tzinfo is not None
    assert {k: v for k, v in body.items() if k not in ("id", "created", "updated")} == {
        "name": "dep1",
        "version": None,
        "description": None,
        "flow_id": flow["id"],
        "paused": False,
        "schedules": [],
        "concurrency_limit": None,
        "global_concurrency_limit": None,
        "concurrency_options": None,
        "job_variables": {},
        "parameters": {},
        "tags": [],
        "labels": {"prefect.flow.id": flow["id"]},
        "work_queue_name": "default",
        "work_queue_id": pool["default_queue_id"],
        "last_polled": None,
        "parameter_openapi_schema": {},
        "path": None,
        "pull_steps": [],
        "entrypoint": None,
        "storage_document_id": None,
        "infrastructure_document_id": None,
        "created_by": None,
        "updated_by": None,
        "work_pool_name": pool["name"],
        "status": "NOT_READY",
        "enforce_parameter_schema": True,
    }


async def test_every_field_round_trips(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    pool = await create_work_pool(client)
    pull_steps = [{"prefect.deployments.steps.set_working_directory": {"directory": "/tmp"}}]
    body = (
        await post(
            client,
            flow_id=flow["id"],
            name="dep-full",
            work_pool_name=pool["name"],
            description="desc",
            version="1.0",
            tags=["t1"],
            parameters={"x": 1},
            entrypoint="flows.py:f",
            path="/tmp",
            paused=True,
            job_variables={"env": {"A": "1"}},
            enforce_parameter_schema=False,
            parameter_openapi_schema=INT_SCHEMA,
            pull_steps=pull_steps,
        )
    ).json()
    assert {k: body[k] for k in body if k not in ("id", "created", "updated")} == {
        "work_queue_id": pool["default_queue_id"],
        "labels": {"prefect.flow.id": flow["id"]},
        "name": "dep-full",
        "version": "1.0",
        "description": "desc",
        "flow_id": flow["id"],
        "paused": True,
        "schedules": [],
        "concurrency_limit": None,
        "global_concurrency_limit": None,
        "concurrency_options": None,
        "job_variables": {"env": {"A": "1"}},
        "parameters": {"x": 1},
        "tags": ["t1"],
        "work_queue_name": "default",
        "last_polled": None,
        "parameter_openapi_schema": INT_SCHEMA,
        "path": "/tmp",
        "pull_steps": pull_steps,
        "entrypoint": "flows.py:f",
        "storage_document_id": None,
        "infrastructure_document_id": None,
        "created_by": None,
        "updated_by": None,
        "work_pool_name": pool["name"],
        "status": "NOT_READY",
        "enforce_parameter_schema": False,
    }
    assert await read(client, body) == body


async def test_upsert_of_the_same_flow_and_name_is_200_with_the_same_id(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client)
    first = await post(client, flow_id=flow["id"], name="dep")
    again = await post(client, flow_id=flow["id"], name="dep", description="upserted")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["created"] == first.json()["created"]
    assert again.json()["description"] == "upserted"
    assert timestamp(again.json()["updated"]) > timestamp(first.json()["updated"])
    other_flow = await post(client, flow_id=(await create_flow(client))["id"], name="dep")
    assert other_flow.status_code == 201


async def test_upsert_keeps_unsent_fields_but_resets_parameters_and_labels(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client, labels={"from-flow": "a"})
    pool = await create_work_pool(client)
    original = (
        await post(
            client,
            flow_id=flow["id"],
            name="dep",
            work_pool_name=pool["name"],
            description="desc",
            version="1",
            tags=["a"],
            labels={"mine": "x"},
            parameters={"x": 1},
            paused=True,
            job_variables={"a": 1},
            path="/p",
            entrypoint="e:f",
            concurrency_limit=2,
            concurrency_options={"collision_strategy": "ENQUEUE"},
            pull_steps=[{"s": 1}],
            parameter_openapi_schema=INT_SCHEMA,
            enforce_parameter_schema=False,
        )
    ).json()
    upserted = (await post(client, flow_id=flow["id"], name="dep")).json()
    changed = {k for k in RESPONSE_KEYS if upserted[k] != original[k]}
    assert changed == {"updated", "parameters", "labels"}
    assert upserted["parameters"] == {}
    assert upserted["labels"] == {"from-flow": "a", "prefect.flow.id": flow["id"]}


async def test_upsert_with_a_queue_moves_it_and_null_limit_removes_the_limit(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client)
    pool = await create_work_pool(client)
    await post(client, flow_id=flow["id"], name="dep", work_pool_name=pool["name"])
    moved = (await post(client, flow_id=flow["id"], name="dep", work_queue_name="newq")).json()
    assert (moved["work_pool_name"], moved["work_queue_name"]) == ("default-agent-pool", "newq")
    limited = (await post(client, flow_id=flow["id"], name="dep", concurrency_limit=3)).json()
    assert limited["global_concurrency_limit"]["limit"] == 3
    assert limited["work_queue_name"] == "newq"
    cleared = (await post(client, flow_id=flow["id"], name="dep", concurrency_limit=None)).json()
    assert cleared["global_concurrency_limit"] is None


async def test_labels_layer_flow_then_flow_id_then_deployment(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client, labels={"fl": "a", "shared": "flow"})
    body = (
        await post(
            client,
            flow_id=flow["id"],
            name="dep",
            labels={"shared": "dep", "prefect.flow.id": "hijack", "n": 1, "b": True},
        )
    ).json()
    assert body["labels"] == {
        "fl": "a",
        "shared": "dep",
        "prefect.flow.id": "hijack",
        "n": 1,
        "b": True,
    }
    null_labels = (await post(client, flow_id=flow["id"], name="dep2", labels=None)).json()
    assert null_labels["labels"] == {"fl": "a", "shared": "flow", "prefect.flow.id": flow["id"]}


async def test_labels_must_be_scalars(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    response = await post(client, flow_id=flow["id"], name="dep", labels={"a": {"b": 1}})
    assert response.status_code == 422
    assert {tuple(e["loc"][:3]) for e in response.json()["exception_detail"]} == {
        ("body", "labels", "a")
    }


# --- work pools and queues ---------------------------------------------------------------


async def test_work_pool_name_uses_the_pools_default_queue(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"])
    assert deployment["work_queue_id"] == pool["default_queue_id"]
    assert (deployment["work_pool_name"], deployment["work_queue_name"]) == (
        pool["name"],
        "default",
    )


async def test_pool_with_a_new_queue_name_creates_the_queue_in_the_pool(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(
        client, work_pool_name=pool["name"], work_queue_name="auto-q"
    )
    queue = await client.get(f"/work_pools/{pool['name']}/queues/auto-q")
    assert queue.status_code == 200
    assert queue.json()["id"] == deployment["work_queue_id"]
    assert queue.json()["priority"] == 2
    assert (deployment["work_pool_name"], deployment["work_queue_name"]) == (pool["name"], "auto-q")
    existing = await create_deployment(
        client, work_pool_name=pool["name"], work_queue_name="auto-q"
    )
    assert existing["work_queue_id"] == deployment["work_queue_id"]


async def test_queue_name_alone_lands_in_the_default_agent_pool(
    client: httpx.AsyncClient,
) -> None:
    deployment = await create_deployment(client, work_queue_name="some-queue")
    assert (deployment["work_pool_name"], deployment["work_queue_name"]) == (
        "default-agent-pool",
        "some-queue",
    )
    pool = (await client.get("/work_pools/default-agent-pool")).json()
    assert (pool["type"], pool["status"], pool["base_job_template"]) == ("prefect-agent", None, {})
    queue = (await client.get("/work_pools/default-agent-pool/queues/some-queue")).json()
    assert queue["id"] == deployment["work_queue_id"]


async def test_no_pool_and_no_queue_leave_all_three_null(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    assert (
        deployment["work_pool_name"],
        deployment["work_queue_name"],
        deployment["work_queue_id"],
    ) == (None, None, None)


async def test_empty_pool_or_queue_names_count_as_not_given(client: httpx.AsyncClient) -> None:
    empty_queue = await create_deployment(client, work_queue_name="")
    assert (empty_queue["work_pool_name"], empty_queue["work_queue_id"]) == (None, None)
    assert empty_queue["work_queue_name"] == ""
    empty_pool = await create_deployment(client, work_pool_name="", work_queue_name="zz")
    assert (empty_pool["work_pool_name"], empty_pool["work_queue_name"]) == (
        "default-agent-pool",
        "zz",
    )


async def test_unknown_work_pool_is_404_with_prefects_detail(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    response = await post(client, flow_id=flow["id"], name="dep", work_pool_name="nope-pool")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": 'Work pool "nope-pool" not found.'},
    )


async def test_unknown_flow_id_is_409_integrity_conflict_and_leaves_nothing_behind(
    client: httpx.AsyncClient,
) -> None:
    response = await post(
        client, flow_id=str(uuid.uuid4()), name="dep", work_queue_name="never-created"
    )
    assert (response.status_code, response.json()) == (409, INTEGRITY)
    assert (await client.get("/work_pools/default-agent-pool")).status_code == 404


# --- concurrency -------------------------------------------------------------------------


async def test_concurrency_limit_is_served_as_a_global_limit_named_after_the_deployment(
    client: httpx.AsyncClient,
) -> None:
    deployment = await create_deployment(client, concurrency_limit=2)
    assert deployment["concurrency_limit"] is None
    limit = deployment["global_concurrency_limit"]
    assert list(limit) == [
        "id",
        "created",
        "updated",
        "active",
        "name",
        "limit",
        "active_slots",
        "slot_decay_per_second",
    ]
    uuid.UUID(limit["id"])
    assert {k: limit[k] for k in ("active", "name", "limit", "active_slots")} == {
        "active": True,
        "name": f"deployment:{deployment['id']}",
        "limit": 2,
        "active_slots": 0,
    }
    assert limit["slot_decay_per_second"] == 0.0
    assert await read(client, deployment) == deployment


async def test_concurrency_limit_must_be_positive(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    response = await post(client, flow_id=flow["id"], name="dep", concurrency_limit=0)
    assert response.status_code == 422
    error = response.json()["exception_detail"][0]
    assert (error["type"], error["loc"]) == ("greater_than", ["body", "concurrency_limit"])


async def test_both_kinds_of_limit_at_once_are_422(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    body = {"concurrency_limit": 1, "global_concurrency_limit_id": str(uuid.uuid4())}
    expected = (
        "Value error, A deployment cannot have both a concurrency limit and a global "
        "concurrency limit."
    )
    created = await post(client, flow_id=flow["id"], name="dep", **body)
    assert created.status_code == 422
    error = created.json()["exception_detail"][0]
    assert (error["type"], error["loc"], error["msg"]) == ("value_error", ["body"], expected)
    deployment = await create_deployment(client)
    patched = await patch(client, deployment, body)
    assert patched.status_code == 422
    assert patched.json()["exception_detail"][0]["msg"] == expected


async def test_unknown_global_concurrency_limit_is_404(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    missing = {"global_concurrency_limit_id": str(uuid.uuid4())}
    created = await post(client, flow_id=flow["id"], name="dep", **missing)
    assert (created.status_code, created.json()) == (404, {"detail": "Concurrency limit not found"})
    deployment = await create_deployment(client)
    patched = await patch(client, deployment, missing)
    assert (patched.status_code, patched.json()) == (404, {"detail": "Concurrency limit not found"})


async def test_concurrency_options_round_trip(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(
        client,
        concurrency_limit=1,
        concurrency_options={"collision_strategy": "CANCEL_NEW"},
    )
    assert deployment["concurrency_options"] == {
        "collision_strategy": "CANCEL_NEW",
        "grace_period_seconds": None,
    }
    options = {"collision_strategy": "ENQUEUE", "grace_period_seconds": 120}
    assert (await patch(client, deployment, {"concurrency_options": options})).status_code == 204
    assert (await read(client, deployment))["concurrency_options"] == options
    assert (await patch(client, deployment, {"concurrency_options": None})).status_code == 204
    assert (await read(client, deployment))["concurrency_options"] is None


async def test_concurrency_options_are_validated(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    for options, error_type in (
        ({"collision_strategy": "X"}, "enum"),
        ({"collision_strategy": "ENQUEUE", "grace_period_seconds": 10}, "greater_than_equal"),
        ({"collision_strategy": "ENQUEUE", "grace_period_seconds": 86401}, "less_than_equal"),
        ({}, "missing"),
    ):
        response = await post(client, flow_id=flow["id"], name="d", concurrency_options=options)
        assert response.status_code == 422, options
        assert response.json()["exception_detail"][0]["type"] == error_type


async def test_patch_concurrency_limit_changes_it_and_null_removes_it(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await create_deployment(client, concurrency_limit=2)
    limit_id = deployment["global_concurrency_limit"]["id"]
    assert (await patch(client, deployment, {"concurrency_limit": 5})).status_code == 204
    changed = (await read(client, deployment))["global_concurrency_limit"]
    assert (changed["id"], changed["limit"]) == (limit_id, 5)
    assert (await read(client, deployment))["concurrency_limit"] is None
    assert (await patch(client, deployment, {"concurrency_limit": None})).status_code == 204
    assert (await read(client, deployment))["global_concurrency_limit"] is None
    assert await _limit_rows(database) == 0
    assert (await patch(client, deployment, {"concurrency_limit": 3})).status_code == 204
    assert (await read(client, deployment))["global_concurrency_limit"]["limit"] == 3


async def _limit_rows(database: Database) -> int:
    async with database.read() as conn:
        query = select(func.count()).select_from(t.concurrency_limit_v2)
        return int((await conn.execute(query)).scalar_one())


# --- parameters and schema ---------------------------------------------------------------


async def test_mismatching_parameters_are_accepted_unless_enforcement_is_sent(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client)
    lax = await post(
        client,
        flow_id=flow["id"],
        name="a",
        parameters={"x": "s"},
        parameter_openapi_schema=INT_SCHEMA,
    )
    assert lax.status_code == 201
    assert lax.json()["enforce_parameter_schema"] is True
    strict = await post(
        client,
        flow_id=flow["id"],
        name="b",
        parameters={"x": "s"},
        parameter_openapi_schema=INT_SCHEMA,
        enforce_parameter_schema=True,
    )
    assert strict.status_code == 422
    error = strict.json()["exception_detail"][0]
    assert (error["type"], error["loc"], error["msg"]) == (
        "value_error",
        ["body"],
        "Value error, Validation failed for field 'x'. Failure reason: 's' is not of type "
        "'integer'",
    )


async def test_explicit_enforcement_ignores_required_parameters(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    schema = {**INT_SCHEMA, "required": ["x"]}
    response = await post(
        client,
        flow_id=flow["id"],
        name="dep",
        parameter_openapi_schema=schema,
        enforce_parameter_schema=True,
    )
    assert response.status_code == 201
    assert response.json()["parameter_openapi_schema"] == schema


async def test_invalid_schema_is_refused_only_when_enforcement_is_sent(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client)
    bad = {"type": 5}
    refused = await post(
        client,
        flow_id=flow["id"],
        name="a",
        parameter_openapi_schema=bad,
        enforce_parameter_schema=True,
    )
    assert refused.status_code == 422
    assert refused.json()["exception_detail"][0]["msg"] == (
        "Value error, The provided schema is not a valid json schema. Schema error: 5 is not "
        "valid under any of the given schemas"
    )
    accepted = await post(client, flow_id=flow["id"], name="b", parameter_openapi_schema=bad)
    assert accepted.status_code == 201


async def test_null_schema_is_stored_and_then_every_enforcing_patch_is_409(
    client: httpx.AsyncClient,
) -> None:
    deployment = await create_deployment(client, parameter_openapi_schema=None)
    assert deployment["parameter_openapi_schema"] is None
    response = await patch(client, deployment, {"description": "d"})
    assert (response.status_code, response.json()) == (
        409,
        {
            "detail": "Error updating deployment: Cannot update parameters because parameter "
            "schema enforcement is enabled and the deployment does not have a valid parameter "
            "schema."
        },
    )
    assert (await patch(client, deployment, {"enforce_parameter_schema": False})).status_code == 204


async def test_parameters_over_512_kib_are_refused_on_create_and_patch(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client)
    overhead = len('{"x":""}')
    exact = {"x": "a" * (524_288 - overhead)}
    assert (await post(client, flow_id=flow["id"], name="a", parameters=exact)).status_code == 201
    too_big = {"x": "a" * (524_296 - overhead)}
    refused = await post(client, flow_id=flow["id"], name="b", parameters=too_big)
    assert refused.status_code == 422
    error = refused.json()["exception_detail"][0]
    assert (error["loc"], error["msg"]) == (
        ["body", "parameters"],
        "Value error, Flow run parameters must be less than 524,288 bytes when serialized "
        "(got 524,296 bytes).",
    )
    deployment = await create_deployment(client)
    patched = await patch(client, deployment, {"parameters": too_big})
    assert patched.status_code == 422
    assert patched.json()["exception_detail"][0]["loc"] == ["body", "parameters"]


async def test_create_stores_parameters_without_hydrating_them(client: httpx.AsyncClient) -> None:
    kind = {"__prefect_kind": "json", "value": "[1]"}
    deployment = await create_deployment(client, parameters={"a": kind})
    assert deployment["parameters"] == {"a": kind}


# --- blocks, legacy fields, names --------------------------------------------------------


async def test_unknown_blocks_are_409_with_prefects_messages(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    for kind in ("storage", "infrastructure"):
        block_id = str(uuid.uuid4())
        response = await post(
            client, flow_id=flow["id"], name="dep", **{f"{kind}_document_id": block_id}
        )
        assert (response.status_code, response.json()) == (
            409,
            {
                "detail": f"Error creating deployment. Could not find {kind} block with id: "
                f"{block_id}. This usually occurs when applying a deployment specification that "
                "was built against a different Prefect database / workspace."
            },
        )
    deployment = await create_deployment(client)
    patched = await patch(client, deployment, {"storage_document_id": str(uuid.uuid4())})
    assert (patched.status_code, patched.json()) == (409, INTEGRITY)


async def test_legacy_pool_fields_are_dropped_not_refused(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    legacy = {"worker_pool_queue_id": str(uuid.uuid4()), "work_pool_queue_name": "q"}
    created = await post(client, flow_id=flow["id"], name="dep", **legacy)
    assert created.status_code == 201
    assert created.json()["work_queue_id"] is None
    assert (await patch(client, created.json(), legacy)).status_code == 204


async def test_name_with_a_banned_character_is_422_and_empty_name_is_allowed(
    client: httpx.AsyncClient,
) -> None:
    """Prefect answers 500 for a banned character (its core model refuses it late)."""
    flow = await create_flow(client)
    for name in ("a/b", "a%b", "a&b", "a>b", "a<b"):
        response = await post(client, flow_id=flow["id"], name=name)
        assert response.status_code == 422, name
        assert response.json()["exception_detail"][0]["type"] == "string_pattern_mismatch"
    assert (await post(client, flow_id=flow["id"], name="")).status_code == 201


async def test_missing_name_or_flow_id_are_422_missing(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    no_name = await post(client, flow_id=flow["id"])
    assert no_name.status_code == 422
    assert [(e["type"], e["loc"]) for e in no_name.json()["exception_detail"]] == [
        ("missing", ["body", "name"])
    ]
    no_flow = await post(client, name="zz")
    assert [(e["type"], e["loc"]) for e in no_flow.json()["exception_detail"]] == [
        ("missing", ["body", "flow_id"])
    ]


async def test_pull_steps_sent_as_null_are_stored_as_null(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client, pull_steps=None)
    assert deployment["pull_steps"] is None
    steps = [{"s": 1}]
    assert (await patch(client, deployment, {"pull_steps": steps})).status_code == 204
    assert (await read(client, deployment))["pull_steps"] == steps
    assert (await patch(client, deployment, {"pull_steps": None})).status_code == 204
    assert (await read(client, deployment))["pull_steps"] is None


# --- read --------------------------------------------------------------------------------


async def test_read_by_id_and_by_name_give_the_same_body(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    deployment = await create_deployment(client, flow=flow, tags=["a"])
    by_name = await client.get(f"/deployments/name/{flow['name']}/{deployment['name']}")
    assert by_name.status_code == 200
    assert by_name.json() == deployment == await read(client, deployment)


async def test_unknown_deployment_reads_are_404(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    deployment = await create_deployment(client, flow=flow)
    not_found = {"detail": "Deployment not found"}
    for path in (
        f"/deployments/{uuid.uuid4()}",
        f"/deployments/name/{flow['name']}/nope",
        f"/deployments/name/nope-flow/{deployment['name']}",
    ):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (404, not_found), path
    malformed = await client.get("/deployments/xyz")
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})


# --- PATCH -------------------------------------------------------------------------------


async def test_patch_is_204_and_changes_only_the_fields_sent(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(
        client, description="before", tags=["a"], version="1", parameters={"x": 1}
    )
    response = await patch(client, deployment, {"description": "after", "tags": ["b"]})
    assert (response.status_code, response.content) == (204, b"")
    after = await read(client, deployment)
    changed = {k for k in RESPONSE_KEYS if after[k] != deployment[k]}
    assert changed == {"description", "tags", "updated"}
    assert (after["description"], after["tags"]) == ("after", ["b"])


async def test_empty_patch_still_bumps_updated(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    assert (await patch(client, deployment, {})).status_code == 204
    after = await read(client, deployment)
    assert timestamp(after["updated"]) > timestamp(deployment["updated"])
    assert {k for k in RESPONSE_KEYS if after[k] != deployment[k]} == {"updated"}


async def test_patch_every_simple_field(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    changes: dict[str, Any] = {
        "version": "2",
        "description": "d",
        "paused": True,
        "tags": ["x"],
        "path": "/p",
        "entrypoint": "f.py:g",
        "job_variables": {"a": 1},
        "parameters": {"p": 1},
        "parameter_openapi_schema": {"type": "object", "properties": {"p": {"type": "integer"}}},
        "enforce_parameter_schema": False,
        "pull_steps": [{"s": 2}],
    }
    assert (await patch(client, deployment, changes)).status_code == 204
    after = await read(client, deployment)
    assert {k: after[k] for k in changes} == changes


async def test_patch_unknown_deployment_is_404_with_a_full_stop(
    client: httpx.AsyncClient,
) -> None:
    response = await client.patch(f"/deployments/{uuid.uuid4()}", json={"description": "d"})
    assert (response.status_code, response.json()) == (404, {"detail": "Deployment not found."})
    malformed = await client.patch("/deployments/xyz", json={})
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})


async def test_patch_refuses_unknown_and_create_only_fields(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    for field, value in (
        ("bogus", 1),
        ("name", "x"),
        ("flow_id", str(uuid.uuid4())),
        ("labels", {}),
    ):
        response = await patch(client, deployment, {field: value})
        assert response.status_code == 422, field
        assert response.json() == {
            "exception_message": "Invalid request received.",
            "exception_detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", field],
                    "msg": "Extra inputs are not permitted",
                    "input": value,
                }
            ],
            "request_body": {field: value},
        }


async def test_patch_work_pool_name_moves_to_that_pools_default_queue(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client)
    other = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"], description="d")
    assert (await patch(client, deployment, {"work_pool_name": other["name"]})).status_code == 204
    after = await read(client, deployment)
    assert (after["work_pool_name"], after["work_queue_name"], after["work_queue_id"]) == (
        other["name"],
        "default",
        other["default_queue_id"],
    )
    assert after["description"] == "d"


async def test_patch_pool_and_queue_names_follow_prefects_order(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"])

    async def where() -> tuple[Any, Any, bool]:
        after = await read(client, deployment)
        return after["work_pool_name"], after["work_queue_name"], after["work_queue_id"] is None

    await patch(client, deployment, {"work_pool_name": pool["name"], "work_queue_name": "pq"})
    assert await where() == (pool["name"], "pq", False)
    # A queue name alone goes to default-agent-pool, whatever pool the deployment was in.
    await patch(client, deployment, {"work_queue_name": "pq2"})
    assert await where() == ("default-agent-pool", "pq2", False)
    # An explicit null pool leaves the pool; the queue name is kept as sent.
    await patch(client, deployment, {"work_pool_name": None, "work_queue_name": "pq3"})
    assert await where() == (None, "pq3", True)
    await patch(client, deployment, {"work_queue_name": None})
    assert await where() == (None, None, True)


async def test_patch_unknown_work_pool_is_404_not_500(client: httpx.AsyncClient) -> None:
    """Prefect 3.9.1 answers 500 (AttributeError); deputy answers the create's 404."""
    deployment = await create_deployment(client)
    response = await patch(client, deployment, {"work_pool_name": "nope-pool"})
    assert (response.status_code, response.json()) == (
        404,
        {"detail": 'Work pool "nope-pool" not found.'},
    )


async def test_patch_parameters_are_checked_against_the_schema_when_enforcing(
    client: httpx.AsyncClient,
) -> None:
    deployment = await create_deployment(client, parameters={"x": 1})
    schema = {**INT_SCHEMA, "required": ["y"]}
    response = await patch(
        client, deployment, {"parameter_openapi_schema": schema, "parameters": {"x": "s"}}
    )
    assert (response.status_code, response.json()) == (
        409,
        {
            "detail": "Error updating deployment: Validation failed for field 'x'. Failure "
            "reason: 's' is not valid under any of the given schemas"
        },
    )
    # required is ignored; the schema alone is checked against the stored parameters.
    assert (
        await patch(client, deployment, {"parameter_openapi_schema": schema})
    ).status_code == 204
    string_schema = {"type": "object", "properties": {"x": {"type": "string"}}}
    stale = await patch(client, deployment, {"parameter_openapi_schema": string_schema})
    assert stale.status_code == 409
    assert stale.json()["detail"].startswith("Error updating deployment: Validation failed")
    lax = {"parameters": {"x": "s"}, "enforce_parameter_schema": False}
    assert (await patch(client, deployment, lax)).status_code == 204
    assert (await read(client, deployment))["parameters"] == {"x": "s"}


async def test_patch_hydrates_parameters(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    good = {"a": {"__prefect_kind": "json", "value": "[1]"}}
    assert (await patch(client, deployment, {"parameters": good})).status_code == 204
    assert (await read(client, deployment))["parameters"] == {"a": [1]}
    bad = await patch(
        client, deployment, {"parameters": {"a": {"__prefect_kind": "json", "value": "{bad"}}}
    )
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("Error hydrating deployment parameters: Invalid JSON")


async def test_patch_nulls_behave_as_in_prefect(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(
        client, job_variables={"a": 1}, parameters={"x": 1}, description="d", version="v"
    )
    assert (await patch(client, deployment, {"job_variables": None})).status_code == 204
    assert (await read(client, deployment))["job_variables"] == {"a": 1}
    for field in ("description", "version", "path", "entrypoint", "concurrency_options"):
        assert (await patch(client, deployment, {field: None})).status_code == 204
        assert (await read(client, deployment))[field] is None
    for field in ("parameters", "enforce_parameter_schema"):
        response = await patch(client, deployment, {field: None})
        assert (response.status_code, response.json()) == (409, INTEGRITY), field
    assert (await read(client, deployment))["parameters"] == {"x": 1}
    for field, error_type in (("paused", "bool_type"), ("tags", "list_type")):
        response = await patch(client, deployment, {field: None})
        assert response.status_code == 422
        assert response.json()["exception_detail"][0]["type"] == error_type


async def test_patch_wrong_types_get_one_error_each(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    response = await patch(
        client,
        deployment,
        {"tags": "x", "paused": "maybe", "concurrency_limit": -1, "storage_document_id": "nope"},
    )
    assert response.status_code == 422
    assert sorted((e["loc"][1], e["type"]) for e in response.json()["exception_detail"]) == [
        ("concurrency_limit", "greater_than"),
        ("paused", "bool_parsing"),
        ("storage_document_id", "uuid_parsing"),
        ("tags", "list_type"),
    ]


# --- delete ------------------------------------------------------------------------------


async def test_delete_is_204_then_404(client: httpx.AsyncClient, database: Database) -> None:
    deployment = await create_deployment(client, concurrency_limit=1)
    response = await client.delete(f"/deployments/{deployment['id']}")
    assert (response.status_code, response.content) == (204, b"")
    assert (await client.get(f"/deployments/{deployment['id']}")).status_code == 404
    again = await client.delete(f"/deployments/{deployment['id']}")
    assert (again.status_code, again.json()) == (404, {"detail": "Deployment not found"})
    assert await _limit_rows(database) == 0
    malformed = await client.delete("/deployments/xyz")
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})


async def test_delete_removes_its_waiting_scheduled_runs_and_keeps_the_others(
    client: httpx.AsyncClient,
) -> None:
    deployment = await create_deployment(client)
    url = f"/deployments/{deployment['id']}/create_flow_run"
    future = {"type": "SCHEDULED", "state_details": {"scheduled_time": "2031-01-01T00:00:00Z"}}
    waiting = {"type": "SCHEDULED", "name": "AwaitingConcurrencySlot"}
    kept = {}
    removed = [
        (await client.post(url, json={})).json(),
        (await client.post(url, json={"state": future})).json(),
    ]
    for state in ({"type": "RUNNING"}, {"type": "COMPLETED"}, {"type": "PENDING"}, waiting):
        kept[state.get("name", state["type"])] = (
            await client.post(url, json={"state": state})
        ).json()
    assert (await client.delete(f"/deployments/{deployment['id']}")).status_code == 204
    for run in removed:
        assert (await client.get(f"/flow_runs/{run['id']}")).status_code == 404
    for name, run in kept.items():
        assert (await client.get(f"/flow_runs/{run['id']}")).status_code == 200, name


async def test_deleting_a_flow_deletes_its_deployments_and_runs(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    deployment = await create_deployment(client, flow=flow)
    run = (
        await client.post(
            f"/deployments/{deployment['id']}/create_flow_run",
            json={"state": {"type": "COMPLETED"}},
        )
    ).json()
    assert (await client.delete(f"/flows/{flow['id']}")).status_code == 204
    assert (await client.get(f"/deployments/{deployment['id']}")).status_code == 404
    assert (await client.get(f"/flow_runs/{run['id']}")).status_code == 404
    states = await client.get("/flow_run_states/", params={"flow_run_id": run["id"]})
    assert states.json() == []


# --- filter, count, paginate -------------------------------------------------------------


async def _catalogue(client: httpx.AsyncClient) -> dict[str, Any]:
    """Four deployments over two flows and two pools, to filter and sort."""
    etl = await create_flow(client, name=unique("etl"))
    ml = await create_flow(client, name=unique("ml"))
    pool = await create_work_pool(client)
    other = await create_work_pool(client)
    made = {
        "alpha": await create_deployment(
            client, flow=etl, name="alpha", tags=["a", "b"], work_pool_name=pool["name"]
        ),
        "bravo": await create_deployment(
            client, flow=etl, name="bravo", tags=["b"], paused=True, work_pool_name=other["name"]
        ),
        "charlie": await create_deployment(client, flow=ml, name="charlie", tags=[]),
        "delta": await create_deployment(
            client,
            flow=ml,
            name="delta",
            tags=["c"],
            work_pool_name=pool["name"],
            work_queue_name="q2",
        ),
    }
    return {"etl": etl, "ml": ml, "pool": pool, "other": other, **made}


async def test_filter_defaults_to_every_deployment_by_name(client: httpx.AsyncClient) -> None:
    await _catalogue(client)
    assert await names(client, {}) == ["alpha", "bravo", "charlie", "delta"]
    no_body = await client.post("/deployments/filter")
    assert [d["name"] for d in no_body.json()] == ["alpha", "bravo", "charlie", "delta"]
    full = (await client.post("/deployments/filter", json={"limit": 1})).json()[0]
    assert list(full) == RESPONSE_KEYS


async def test_filter_by_name_any_and_like(client: httpx.AsyncClient) -> None:
    await _catalogue(client)
    assert await names(client, {"deployments": {"name": {"any_": ["bravo", "zulu"]}}}) == ["bravo"]
    assert await names(client, {"deployments": {"name": {"like_": "LT"}}}) == ["delta"]
    assert await names(client, {"deployments": {"name": {"any_": []}}}) == []
    both = {"deployments": {"name": {"any_": ["alpha", "delta"], "like_": "ph"}}}
    assert await names(client, both) == ["alpha"]


async def test_filter_by_id_any_and_not_any(client: httpx.AsyncClient) -> None:
    made = await _catalogue(client)
    ids = {"any_": [made["alpha"]["id"], made["bravo"]["id"]], "not_any_": [made["bravo"]["id"]]}
    assert await names(client, {"deployments": {"id": ids}}) == ["alpha"]


async def test_filter_by_tags(client: httpx.AsyncClient) -> None:
    await _catalogue(client)
    assert await names(client, {"deployments": {"tags": {"all_": ["a", "b"]}}}) == ["alpha"]
    assert await names(client, {"deployments": {"tags": {"any_": ["a", "c"]}}}) == [
        "alpha",
        "delta",
    ]
    assert await names(client, {"deployments": {"tags": {"is_null_": True}}}) == ["charlie"]
    assert await names(client, {"deployments": {"tags": {"is_null_": False}}}) == [
        "alpha",
        "bravo",
        "delta",
    ]
    either = {"operator": "or_", "all_": ["c"], "is_null_": True}
    assert await names(client, {"deployments": {"tags": either}}) == ["charlie", "delta"]


async def test_filter_by_paused(client: httpx.AsyncClient) -> None:
    await _catalogue(client)
    assert await names(client, {"deployments": {"paused": {"eq_": True}}}) == ["bravo"]
    assert await names(client, {"deployments": {"paused": {"eq_": False}}}) == [
        "alpha",
        "charlie",
        "delta",
    ]


async def test_filter_by_work_queue_name_and_flow_or_deployment_name(
    client: httpx.AsyncClient,
) -> None:
    made = await _catalogue(client)
    assert await names(client, {"deployments": {"work_queue_name": {"any_": ["q2"]}}}) == ["delta"]
    by_flow = {"deployments": {"flow_or_deployment_name": {"like_": made["ml"]["name"][:-2]}}}
    assert await names(client, by_flow) == ["charlie", "delta"]
    by_dep = {"deployments": {"flow_or_deployment_name": {"like_": "RAV"}}}
    assert await names(client, by_dep) == ["bravo"]


async def test_filter_by_work_pool_and_queue(client: httpx.AsyncClient) -> None:
    made = await _catalogue(client)
    pool_name = made["pool"]["name"]
    assert await names(client, {"work_pools": {"name": {"any_": [pool_name]}}}) == [
        "alpha",
        "delta",
    ]
    assert await names(client, {"work_pools": {"id": {"any_": [made["other"]["id"]]}}}) == ["bravo"]
    queues = {"work_pool_queues": {"name": {"any_": ["q2"]}}}
    assert await names(client, queues) == ["delta"]
    both = {
        "work_pools": {"name": {"any_": [pool_name]}},
        "work_pool_queues": {"name": {"any_": ["default"]}},
    }
    assert await names(client, both) == ["alpha"]


async def test_filter_by_flows(client: httpx.AsyncClient) -> None:
    made = await _catalogue(client)
    assert await names(client, {"flows": {"id": {"any_": [made["etl"]["id"]]}}}) == [
        "alpha",
        "bravo",
    ]
    assert await names(client, {"flows": {"name": {"like_": made["ml"]["name"]}}}) == [
        "charlie",
        "delta",
    ]


async def test_filter_by_flow_runs(client: httpx.AsyncClient) -> None:
    made = await _catalogue(client)
    url = f"/deployments/{made['charlie']['id']}/create_flow_run"
    await client.post(url, json={"state": {"type": "COMPLETED"}})
    await client.post(f"/deployments/{made['alpha']['id']}/create_flow_run", json={})
    completed = {"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
    assert await names(client, completed) == ["charlie"]
    assert await names(client, {"flow_runs": {}}) == ["alpha", "charlie"]


async def test_filter_operators_combine_whole_sub_filters(client: httpx.AsyncClient) -> None:
    """Each sub-filter is one clause (its own conditions ANDed); or_ joins the clauses, and an
    empty sub-filter is TRUE, as in Prefect."""
    await _catalogue(client)
    either = {"operator": "or_", "name": {"any_": ["alpha"]}, "paused": {"eq_": True}}
    assert await names(client, {"deployments": either}) == ["alpha", "bravo"]
    anded_inside = {"operator": "or_", "name": {"any_": ["alpha", "delta"], "like_": "lt"}}
    assert await names(client, {"deployments": anded_inside}) == ["delta"]
    with_empty = {"operator": "or_", "name": {"any_": ["alpha"]}, "paused": {}}
    assert await names(client, {"deployments": with_empty}) == [
        "alpha",
        "bravo",
        "charlie",
        "delta",
    ]


async def test_filter_keys_prefect_does_not_know_are_422(client: httpx.AsyncClient) -> None:
    await _catalogue(client)
    response = await client.post(
        "/deployments/filter", json={"deployments": {"work_queue_name": {"like_": "q"}}}
    )
    assert response.status_code == 422
    error = response.json()["exception_detail"][0]
    assert (error["type"], error["loc"]) == (
        "extra_forbidden",
        ["body", "deployments", "work_queue_name", "like_"],
    )
    nested = await client.post("/deployments/filter", json={"flows": {"bogus": 1}})
    assert nested.status_code == 422
    assert nested.json()["exception_detail"][0]["loc"] == ["body", "flows", "bogus"]
    top_level = await client.post("/deployments/filter", json={"bogus": 1})
    assert top_level.status_code == 200


async def test_deprecated_concurrency_limit_filter_is_ignored(client: httpx.AsyncClient) -> None:
    await create_deployment(client, name="limited", concurrency_limit=5)
    await create_deployment(client, name="free")
    for condition in ({"ge_": 10}, {"is_null_": True}, {"is_null_": False}):
        body = {"deployments": {"concurrency_limit": condition}}
        assert await names(client, body) == ["free", "limited"], condition


async def test_every_sort(client: httpx.AsyncClient) -> None:
    made = await _catalogue(client)
    await patch(client, made["bravo"], {"description": "touched"})
    assert await names(client, {"sort": "NAME_ASC"}) == ["alpha", "bravo", "charlie", "delta"]
    assert await names(client, {"sort": "NAME_DESC"}) == ["delta", "charlie", "bravo", "alpha"]
    assert await names(client, {"sort": "CREATED_DESC"}) == ["delta", "charlie", "bravo", "alpha"]
    assert (await names(client, {"sort": "UPDATED_DESC"}))[0] == "bravo"
    bogus = await client.post("/deployments/filter", json={"sort": "BOGUS"})
    assert bogus.status_code == 422
    assert bogus.json()["exception_detail"][0]["msg"] == (
        "Input should be 'CREATED_DESC', 'UPDATED_DESC', 'NAME_ASC' or 'NAME_DESC'"
    )


async def test_limit_and_offset(client: httpx.AsyncClient) -> None:
    await _catalogue(client)
    assert await names(client, {"limit": 2, "offset": 1}) == ["bravo", "charlie"]
    assert await names(client, {"limit": 0}) == []
    too_many = await client.post("/deployments/filter", json={"limit": 201})
    assert (too_many.status_code, too_many.json()) == (
        422,
        {"detail": "Invalid limit: must be less than or equal to 200."},
    )
    negative = await client.post("/deployments/filter", json={"limit": -1})
    assert (negative.status_code, negative.json()) == (
        422,
        {"detail": "Invalid limit: must be greater than or equal to 0."},
    )
    bad_offset = await client.post("/deployments/filter", json={"offset": -1})
    assert bad_offset.json()["exception_detail"][0]["type"] == "greater_than_equal"


async def test_count_is_a_bare_integer(client: httpx.AsyncClient) -> None:
    made = await _catalogue(client)
    response = await client.post("/deployments/count", json={})
    assert (response.status_code, response.content) == (200, b"4")
    assert (await client.post("/deployments/count")).json() == 4
    flows = {"flows": {"id": {"any_": [made["ml"]["id"]]}}, "sort": "BOGUS", "limit": 1}
    assert (await client.post("/deployments/count", json=flows)).json() == 2


async def test_paginate_shape(client: httpx.AsyncClient) -> None:
    await _catalogue(client)
    page = (await client.post("/deployments/paginate", json={"page": 2, "limit": 3})).json()
    assert list(page) == ["results", "count", "limit", "pages", "page"]
    assert [d["name"] for d in page["results"]] == ["delta"]
    assert (page["count"], page["limit"], page["pages"], page["page"]) == (4, 3, 2, 2)
    defaults = (await client.post("/deployments/paginate", json={})).json()
    assert (defaults["count"], defaults["limit"], defaults["pages"], defaults["page"]) == (
        4,
        200,
        1,
        1,
    )
    beyond = (await client.post("/deployments/paginate", json={"page": 9999})).json()
    assert (beyond["results"], beyond["pages"]) == ([], 1)
    none = {"deployments": {"name": {"any_": ["nomatch"]}}, "limit": 5}
    empty = (await client.post("/deployments/paginate", json=none)).json()
    assert (empty["count"], empty["pages"]) == (0, 0)
    zero = await client.post("/deployments/paginate", json={"page": 0})
    assert zero.json()["exception_detail"][0]["type"] == "greater_than_equal"


# --- pause and resume --------------------------------------------------------------------


async def test_pause_and_resume_answer_200_null(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    paused = await client.post(f"/deployments/{deployment['id']}/pause_deployment")
    assert (paused.status_code, paused.json()) == (200, None)
    assert (await read(client, deployment))["paused"] is True
    resumed = await client.post(f"/deployments/{deployment['id']}/resume_deployment")
    assert (resumed.status_code, resumed.json()) == (200, None)
    assert (await read(client, deployment))["paused"] is False


async def test_pause_and_resume_unknown_are_404(client: httpx.AsyncClient) -> None:
    for action in ("pause_deployment", "resume_deployment"):
        response = await client.post(f"/deployments/{uuid.uuid4()}/{action}")
        assert (response.status_code, response.json()) == (404, {"detail": "Deployment not found"})


async def test_paused_deployments_still_create_runs(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    await client.post(f"/deployments/{deployment['id']}/pause_deployment")
    run = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
    assert run.status_code == 201
    assert run.json()["state_type"] == "SCHEDULED"


# --- hostile input -----------------------------------------------------------------------


async def test_wrong_types_get_one_422_error_each(client: httpx.AsyncClient) -> None:
    response = await post(
        client, flow_id="nope", name=5, tags="x", parameters=[], paused="maybe", job_variables=3
    )
    assert response.status_code == 422
    assert sorted((e["loc"][1], e["type"]) for e in response.json()["exception_detail"]) == [
        ("flow_id", "uuid_parsing"),
        ("job_variables", "dict_type"),
        ("name", "string_type"),
        ("parameters", "dict_type"),
        ("paused", "bool_parsing"),
        ("tags", "list_type"),
    ]


async def test_bad_uuids_in_the_body_are_422(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    for field in (
        "storage_document_id",
        "infrastructure_document_id",
        "global_concurrency_limit_id",
    ):
        response = await post(client, flow_id=flow["id"], name="d", **{field: "not-a-uuid"})
        assert response.status_code == 422, field
        assert response.json()["exception_detail"][0]["loc"] == ["body", field]


async def test_non_object_bodies_are_422_not_500(client: httpx.AsyncClient) -> None:
    """Prefect answers 500 for a list body (its validator assumes a dict)."""
    for content in (b"[1]", b"5", b'"x"', b"null", b"{bad"):
        response = await client.post(
            "/deployments/", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, content
    deployment = await create_deployment(client)
    for content in (b"[1]", b"null"):
        response = await client.patch(
            f"/deployments/{deployment['id']}",
            content=content,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422, content


async def test_huge_strings_never_500(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    huge = "n" * 100_000
    created = await post(
        client, flow_id=flow["id"], name=huge, description=huge, tags=[huge], version=huge
    )
    assert created.status_code == 201
    assert created.json()["name"] == huge
    long_name = "m" * 10_000
    assert (await post(client, flow_id=flow["id"], name=long_name)).status_code == 201
    by_name = await client.get(f"/deployments/name/{flow['name']}/{long_name}")
    assert (by_name.status_code, by_name.json()["name"]) == (200, long_name)
    assert (await names(client, {"deployments": {"name": {"like_": huge}}})) == [huge]
    pool = await post(client, flow_id=flow["id"], name="p", work_pool_name=huge)
    assert pool.status_code == 404
    queue = await post(client, flow_id=flow["id"], name="q", work_queue_name="q" * 10_000)
    assert queue.status_code == 201


async def test_unicode_and_control_characters_round_trip(
    client: httpx.AsyncClient, test_databases: DatabaseBackends
) -> None:
    flow = await create_flow(client)
    text = "ünï-😀-\u0000-\t"
    created = await post(client, flow_id=flow["id"], name="uni", description=text, tags=[text])
    if test_databases.is_postgres:
        # PostgreSQL cannot store NUL characters: a clear 422, not a 500.
        assert created.status_code == 422
        assert "NUL" in created.json()["detail"]
        return
    assert created.status_code == 201
    assert (created.json()["description"], created.json()["tags"]) == (text, [text])
    assert (await read(client, created.json()))["description"] == text


async def test_lone_surrogates_are_refused_or_kept_never_a_500(
    client: httpx.AsyncClient, test_databases: DatabaseBackends
) -> None:
    """``"\\ud800"`` is valid JSON but not valid Unicode: a string field refuses it (pydantic's
    422, as Prefect); inside JSON parameters SQLite keeps it and PostgreSQL, which cannot store
    it, answers a clear 422."""
    flow = await create_flow(client)
    lone = b'"a\\ud800b"'
    headers = {"content-type": "application/json"}
    named = b'{"flow_id": "%s", "name": %s}' % (flow["id"].encode(), lone)
    refused = await client.post("/deployments/", content=named, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["exception_detail"][0]["type"] == "string_unicode"

    deployment = await create_deployment(client, flow)
    bodies = {
        "/deployments/": b'{"flow_id": "%s", "name": "d", "parameters": {"x": %s}}'
        % (flow["id"].encode(), lone),
        f"/deployments/{deployment['id']}/create_flow_run": b'{"parameters": {"x": %s}}' % lone,
    }
    for url, body in bodies.items():
        response = await client.post(url, content=body, headers=headers)
        if test_databases.is_postgres:
            assert response.status_code == 422, (url, response.text)
            assert "cannot store" in response.json()["detail"]
        else:
            assert response.status_code == 201, (url, response.text)
