"""Reading, filtering, counting and deleting flow runs, and their state history.

One test per rule of Prefect 3.9.1's behaviour. Runs are built through
``POST /deployments/{id}/create_flow_run`` with initial states of several types.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import httpx
from sqlalchemy import insert

from databases import DatabaseBackends
from deputy.db import tables as t
from deputy.db.engine import Database
from factories import create_deployment, create_flow, create_work_pool, unique

#: Every key of Prefect's FlowRunResponse, in Prefect's order.
RESPONSE_KEYS = [
    "id",
    "created",
    "updated",
    "name",
    "flow_id",
    "state_id",
    "deployment_id",
    "deployment_version",
    "work_queue_id",
    "work_queue_name",
    "flow_version",
    "parameters",
    "idempotency_key",
    "context",
    "empirical_policy",
    "tags",
    "labels",
    "parent_task_run_id",
    "state_type",
    "state_name",
    "run_count",
    "expected_start_time",
    "next_scheduled_start_time",
    "start_time",
    "end_time",
    "total_run_time",
    "estimated_run_time",
    "estimated_start_time_delta",
    "auto_scheduled",
    "infrastructure_document_id",
    "infrastructure_pid",
    "created_by",
    "work_pool_id",
    "work_pool_name",
    "state",
    "job_variables",
]

STATE_DETAIL_KEYS = [
    "flow_run_id",
    "task_run_id",
    "child_flow_run_id",
    "scheduled_time",
    "cache_key",
    "cache_expiration",
    "deferred",
    "untrackable_result",
    "pause_timeout",
    "pause_reschedule",
    "pause_key",
    "run_input_keyset",
    "refresh_cache",
    "retriable",
    "transition_id",
    "task_parameters_id",
    "traceparent",
    "deployment_concurrency_lease_id",
]

FUTURE = "2031-01-01T00:00:00Z"
PAST = "2020-01-01T00:00:00Z"
AUTOMATION_ID = str(uuid.UUID(int=42))


def scheduled(when: str, name: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"type": "SCHEDULED", "state_details": {"scheduled_time": when}}
    if name:
        state["name"] = name
    return state


async def create_run(
    client: httpx.AsyncClient,
    deployment: dict[str, Any],
    headers: dict[str, str] | None = None,
    **body: Any,
) -> dict[str, Any]:
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run", json=body, headers=headers
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def world(client: httpx.AsyncClient) -> dict[str, Any]:
    """Five runs over two flows, two deployments, two pools and four queues.

    ======== ======= ======= ========= ========== ===== ===== ======== ====== =======
    run      deploy  queue   state     name       start end   expected next   tags
    ======== ======= ======= ========= ========== ===== ===== ======== ====== =======
    future   pooled  default SCHEDULED Scheduled  -     -     2031     2031   x
    late     pooled  extra   SCHEDULED Late       -     -     2020     2020   -
    running  legacy  legacy  RUNNING   Running    t1    -     t1       -      x y
    done     legacy  legacy  COMPLETED Completed  t2    t2    t2       -      y
    pending  pooled  default PENDING   Custom     -     -     t3       -      z
    ======== ======= ======= ========= ========== ===== ===== ======== ====== =======
    """
    etl = await create_flow(client, name=unique("etl"))
    ops = await create_flow(client, name=unique("ops"))
    pool = await create_work_pool(client)
    pooled = await create_deployment(client, flow=etl, name="pooled", work_pool_name=pool["name"])
    legacy = await create_deployment(client, flow=ops, name="legacy", work_queue_name="legacy")
    automation = {
        "Prefect-Automation-ID": AUTOMATION_ID,
        "Prefect-Automation-Name": base64.b64encode(b"nightly").decode(),
    }
    runs = {
        "future": await create_run(
            client,
            pooled,
            name="m-future",
            state=scheduled(FUTURE),
            tags=["x"],
            idempotency_key="k1",
        ),
        "late": await create_run(
            client,
            pooled,
            name="z-late",
            state=scheduled(PAST, "Late"),
            work_queue_name="extra",
            idempotency_key="k2",
        ),
        "running": await create_run(
            client,
            legacy,
            headers=automation,
            name="a-running",
            state={"type": "RUNNING"},
            tags=["x", "y"],
        ),
        "done": await create_run(
            client, legacy, name="k-done", state={"type": "COMPLETED"}, tags=["y"]
        ),
        "pending": await create_run(
            client,
            pooled,
            name="p-pending",
            state={"type": "PENDING", "name": "Custom"},
            tags=["z"],
        ),
    }
    return {
        "etl": etl,
        "ops": ops,
        "pool": pool,
        "pooled": pooled,
        "legacy": legacy,
        **runs,
        "by_name": {run["name"]: key for key, run in runs.items()},
    }


async def keys(client: httpx.AsyncClient, made: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """The world's keys of the runs a filter returns, in the order returned."""
    response = await client.post("/flow_runs/filter", json=body)
    assert response.status_code == 200, response.text
    return [made["by_name"][run["name"]] for run in response.json()]


async def some(client: httpx.AsyncClient, made: dict[str, Any], body: dict[str, Any]) -> set[str]:
    return set(await keys(client, made, body))


def by_id_desc(made: dict[str, Any], names: list[str]) -> list[str]:
    return sorted(names, key=lambda key: made[key]["id"], reverse=True)


def parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


# --- read one ----------------------------------------------------------------------------


async def test_read_returns_prefects_full_flow_run_response(client: httpx.AsyncClient) -> None:
    made = await world(client)
    run = made["future"]
    response = await client.get(f"/flow_runs/{run['id']}")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == RESPONSE_KEYS
    assert list(body["state"]) == [
        "id",
        "type",
        "name",
        "timestamp",
        "message",
        "data",
        "state_details",
    ]
    assert list(body["state"]["state_details"]) == STATE_DETAIL_KEYS
    assert body == run
    assert {
        k: body[k] for k in RESPONSE_KEYS if k not in ("id", "created", "updated", "state")
    } == {
        "name": "m-future",
        "flow_id": made["etl"]["id"],
        "state_id": body["state"]["id"],
        "deployment_id": made["pooled"]["id"],
        "deployment_version": None,
        "work_queue_id": made["pool"]["default_queue_id"],
        "work_queue_name": "default",
        "flow_version": None,
        "parameters": {},
        "idempotency_key": "k1",
        "context": {},
        "empirical_policy": {
            "max_retries": 0,
            "retry_delay_seconds": 0.0,
            "retries": None,
            "retry_delay": None,
            "pause_keys": [],
            "resuming": False,
            "retry_type": None,
        },
        "tags": ["x"],
        "labels": {
            "prefect.flow.id": made["etl"]["id"],
            "prefect.deployment.id": made["pooled"]["id"],
        },
        "parent_task_run_id": None,
        "state_type": "SCHEDULED",
        "state_name": "Scheduled",
        "run_count": 0,
        "expected_start_time": FUTURE,
        "next_scheduled_start_time": FUTURE,
        "start_time": None,
        "end_time": None,
        "total_run_time": 0.0,
        "estimated_run_time": 0.0,
        "estimated_start_time_delta": 0.0,
        "auto_scheduled": False,
        "infrastructure_document_id": None,
        "infrastructure_pid": None,
        "created_by": None,
        "work_pool_id": made["pool"]["id"],
        "work_pool_name": made["pool"]["name"],
        "job_variables": {},
    }
    assert body["state"]["state_details"]["scheduled_time"] == FUTURE
    assert body["state"]["state_details"]["flow_run_id"] == run["id"]


async def test_queue_and_pool_fields_come_from_the_runs_queue(client: httpx.AsyncClient) -> None:
    made = await world(client)
    late = (await client.get(f"/flow_runs/{made['late']['id']}")).json()
    assert (late["work_queue_name"], late["work_pool_id"], late["work_pool_name"]) == (
        "extra",
        made["pool"]["id"],
        made["pool"]["name"],
    )
    legacy = (await client.get(f"/flow_runs/{made['done']['id']}")).json()
    assert (legacy["work_queue_name"], legacy["work_pool_name"]) == ("legacy", "default-agent-pool")
    unpooled = await create_run(client, await create_deployment(client))
    read = (await client.get(f"/flow_runs/{unpooled['id']}")).json()
    assert [
        read[k] for k in ("work_queue_id", "work_queue_name", "work_pool_id", "work_pool_name")
    ] == [
        None,
        None,
        None,
        None,
    ]


async def test_estimated_run_time_grows_while_running(client: httpx.AsyncClient) -> None:
    made = await world(client)
    first = (await client.get(f"/flow_runs/{made['running']['id']}")).json()
    second = (await client.get(f"/flow_runs/{made['running']['id']}")).json()
    assert first["total_run_time"] == 0.0
    assert 0.0 < first["estimated_run_time"] < second["estimated_run_time"]
    for key in ("future", "late", "done", "pending"):
        assert (await client.get(f"/flow_runs/{made[key]['id']}")).json()[
            "estimated_run_time"
        ] == 0.0


async def test_estimated_start_time_delta_is_lateness(client: httpx.AsyncClient) -> None:
    made = await world(client)

    async def delta(key: str) -> float:
        value: float = (await client.get(f"/flow_runs/{made[key]['id']}")).json()[
            "estimated_start_time_delta"
        ]
        return value

    now = dt.datetime.now(dt.UTC)
    late = await delta("late")
    assert abs(late - (now - parse(PAST)).total_seconds()) < 60
    assert await delta("future") == 0.0
    assert await delta("running") == 0.0  # started on time
    assert await delta("done") == 0.0  # terminal
    assert 0.0 < await delta("pending") < 60  # not started, expected just now


async def test_parameters_orjson_cannot_write_are_read_back_as_sent(
    client: httpx.AsyncClient, test_databases: DatabaseBackends
) -> None:
    """Integers beyond 64 bits, nesting deeper than orjson writes and lone surrogates come back
    exactly; the rest of the body keeps its usual form (times end in ``Z``)."""
    deep: list[Any] = []
    for _ in range(260):
        deep = [deep]
    parameters: dict[str, Any] = {"big": 2**70, "low": -(2**64), "deep": deep, "text": "é\u2603"}
    if not test_databases.is_postgres:  # PostgreSQL's JSON refuses lone surrogates
        parameters["odd"] = "\ud800"
    deployment = await create_deployment(client)
    created = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run",
        content=json.dumps({"parameters": parameters}).encode(),  # the surrogate as an escape
        headers={"content-type": "application/json"},
    )
    assert created.status_code == 201, created.text
    run = created.json()
    read = await client.get(f"/flow_runs/{run['id']}")
    listed = await client.post(
        "/flow_runs/filter", json={"flow_runs": {"id": {"any_": [run["id"]]}}}
    )
    for body in (run, read.json(), listed.json()[0]):
        assert body["parameters"] == parameters
        assert body["created"].endswith("Z")
        assert "T" in body["created"]


async def test_unknown_run_is_404_and_malformed_id_is_not_found(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/flow_runs/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Flow run not found"})
    malformed = await client.get("/flow_runs/xyz")
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})


# --- filters on the run's own fields -----------------------------------------------------


async def test_filter_without_conditions_returns_every_run_newest_id_first(
    client: httpx.AsyncClient,
) -> None:
    made = await world(client)
    every = ["future", "late", "running", "done", "pending"]
    assert await keys(client, made, {}) == by_id_desc(made, every)
    no_body = await client.post("/flow_runs/filter")
    assert len(no_body.json()) == 5
    nulls = {"sort": None, "limit": None, "offset": None, "flows": None}
    assert await keys(client, made, nulls) == by_id_desc(made, every)
    full = (await client.post("/flow_runs/filter", json={"limit": 1})).json()[0]
    assert list(full) == RESPONSE_KEYS


async def test_filter_by_id_any_and_not_any(client: httpx.AsyncClient) -> None:
    made = await world(client)
    ids = [made["future"]["id"], made["late"]["id"]]
    assert await some(client, made, {"flow_runs": {"id": {"any_": ids}}}) == {"future", "late"}
    both = {"any_": ids, "not_any_": [made["late"]["id"]]}
    assert await some(client, made, {"flow_runs": {"id": both}}) == {"future"}
    assert await some(client, made, {"flow_runs": {"id": {"any_": []}}}) == set()
    assert len(await keys(client, made, {"flow_runs": {"id": {"not_any_": []}}})) == 5


async def test_filter_by_name_any_and_like(client: httpx.AsyncClient) -> None:
    made = await world(client)
    assert await some(client, made, {"flow_runs": {"name": {"any_": ["k-done", "nope"]}}}) == {
        "done"
    }
    assert await some(client, made, {"flow_runs": {"name": {"like_": "ING"}}}) == {
        "running",
        "pending",
    }
    assert len(await keys(client, made, {"flow_runs": {"name": {"like_": ""}}})) == 5


async def test_filter_by_tags(client: httpx.AsyncClient) -> None:
    made = await world(client)

    async def tags(condition: dict[str, Any]) -> set[str]:
        return await some(client, made, {"flow_runs": {"tags": condition}})

    assert await tags({"all_": ["x", "y"]}) == {"running"}
    assert await tags({"any_": ["x", "z"]}) == {"future", "running", "pending"}
    assert await tags({"any_": []}) == set()
    assert await tags({"all_": []}) == {"future", "late", "running", "done", "pending"}
    assert await tags({"is_null_": True}) == {"late"}
    assert await tags({"is_null_": False}) == {"future", "running", "done", "pending"}
    assert await tags({"operator": "or_", "all_": ["z"], "is_null_": True}) == {"late", "pending"}


async def test_filter_by_state_type(client: httpx.AsyncClient) -> None:
    made = await world(client)

    async def state(condition: dict[str, Any]) -> set[str]:
        return await some(client, made, {"flow_runs": {"state": {"type": condition}}})

    assert await state({"any_": ["SCHEDULED"]}) == {"future", "late"}
    assert await state({"not_any_": ["SCHEDULED", "PENDING"]}) == {"running", "done"}
    assert await state({"any_": ["RUNNING", "COMPLETED"], "not_any_": ["RUNNING"]}) == {"done"}
    bad = await client.post(
        "/flow_runs/filter", json={"flow_runs": {"state": {"type": {"any_": ["nope"]}}}}
    )
    assert bad.status_code == 422
    error = bad.json()["exception_detail"][0]
    assert (error["type"], error["loc"]) == (
        "enum",
        ["body", "flow_runs", "state", "type", "any_", 0],
    )


async def test_filter_by_state_name(client: httpx.AsyncClient) -> None:
    made = await world(client)

    async def state(condition: dict[str, Any]) -> set[str]:
        return await some(client, made, {"flow_runs": {"state": {"name": condition}}})

    assert await state({"any_": ["Late", "Custom"]}) == {"late", "pending"}
    assert await state({"not_any_": ["Scheduled", "Late"]}) == {"running", "done", "pending"}


async def test_state_operator_joins_type_and_name_and_drops_empty_ones(
    client: httpx.AsyncClient,
) -> None:
    made = await world(client)
    either = {"operator": "or_", "type": {"any_": ["COMPLETED"]}, "name": {"any_": ["Running"]}}
    assert await some(client, made, {"flow_runs": {"state": either}}) == {"done", "running"}
    empty_name = {"operator": "or_", "type": {"any_": ["COMPLETED"]}, "name": {}}
    assert await some(client, made, {"flow_runs": {"state": empty_name}}) == {"done"}


async def test_filter_by_deployment_id(client: httpx.AsyncClient) -> None:
    made = await world(client)
    legacy = {"any_": [made["legacy"]["id"]]}
    assert await some(client, made, {"flow_runs": {"deployment_id": legacy}}) == {"running", "done"}
    assert await some(client, made, {"flow_runs": {"deployment_id": {"is_null_": True}}}) == set()
    assert len(await keys(client, made, {"flow_runs": {"deployment_id": {"is_null_": False}}})) == 5


async def test_filter_by_work_queue_name(client: httpx.AsyncClient) -> None:
    """deputy stores the queue's name on every run (Prefect leaves it null for runs of a
    deployment created with only a pool, so ``any_: ["default"]`` finds them here only)."""
    made = await world(client)

    async def queue(condition: dict[str, Any]) -> set[str]:
        return await some(client, made, {"flow_runs": {"work_queue_name": condition}})

    assert await queue({"any_": ["extra"]}) == {"late"}
    assert await queue({"any_": ["legacy"]}) == {"running", "done"}
    assert await queue({"any_": ["default"]}) == {"future", "pending"}
    assert await queue({"is_null_": True}) == set()


async def test_filter_by_idempotency_key(client: httpx.AsyncClient) -> None:
    made = await world(client)
    assert await some(client, made, {"flow_runs": {"idempotency_key": {"any_": ["k1"]}}}) == {
        "future"
    }
    # Plain SQL NOT IN, as in Prefect: runs without a key never match not_any_.
    assert await some(client, made, {"flow_runs": {"idempotency_key": {"not_any_": ["k1"]}}}) == {
        "late"
    }


async def test_start_time_windows_use_the_expected_time_until_a_run_starts(
    client: httpx.AsyncClient,
) -> None:
    made = await world(client)

    async def start(condition: dict[str, Any]) -> set[str]:
        return await some(client, made, {"flow_runs": {"start_time": condition}})

    assert await start({"after_": "2030-01-01T00:00:00Z"}) == {"future"}
    assert await start({"before_": "2021-01-01T00:00:00Z"}) == {"late"}
    assert await start({"before_": "2030-01-01T00:00:00Z", "after_": "2021-01-01T00:00:00Z"}) == {
        "running",
        "done",
        "pending",
    }
    assert await start({"is_null_": True}) == {"future", "late", "pending"}
    assert await start({"is_null_": False}) == {"running", "done"}


async def test_expected_next_and_end_time_windows(client: httpx.AsyncClient) -> None:
    made = await world(client)

    async def window(field: str, condition: dict[str, Any]) -> set[str]:
        return await some(client, made, {"flow_runs": {field: condition}})

    assert await window("expected_start_time", {"before_": "2021-01-01T00:00:00Z"}) == {"late"}
    assert await window("expected_start_time", {"after_": "2030-01-01T00:00:00Z"}) == {"future"}
    assert await window("expected_start_time", {"before_": PAST, "after_": PAST}) == {"late"}
    assert await window("next_scheduled_start_time", {"before_": "2025-01-01T00:00:00Z"}) == {
        "late"
    }
    assert await window("next_scheduled_start_time", {"after_": "2021-01-01T00:00:00"}) == {
        "future"
    }
    assert await window("end_time", {"is_null_": False}) == {"done"}
    assert await window("end_time", {"after_": "2021-01-01T00:00:00Z"}) == {"done"}


async def test_filter_by_created_by(client: httpx.AsyncClient) -> None:
    made = await world(client)

    async def created_by(condition: dict[str, Any]) -> set[str]:
        return await some(client, made, {"flow_runs": {"created_by": condition}})

    assert await created_by({"id_": [AUTOMATION_ID]}) == {"running"}
    assert await created_by({"type_": ["AUTOMATION"]}) == {"running"}
    assert await created_by({"type_": ["DEPLOYMENT"]}) == set()
    assert await created_by({"is_null_": True}) == {"future", "late", "done", "pending"}


async def test_filter_by_flow_version(client: httpx.AsyncClient) -> None:
    made = await world(client)
    assert await some(client, made, {"flow_runs": {"flow_version": {"any_": ["1.0"]}}}) == set()


async def test_filter_by_parent_task_run_and_parent_flow_run(
    client: httpx.AsyncClient, database: Database
) -> None:
    made = await world(client)
    task_run_id = uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    async with database.write() as conn:
        await conn.execute(
            insert(t.task_run).values(
                id=task_run_id,
                created=now,
                updated=now,
                name="task",
                flow_run_id=uuid.UUID(made["done"]["id"]),
                task_key="k",
                dynamic_key="0",
            )
        )
    child = await create_run(
        client, made["pooled"], name="child", parent_task_run_id=str(task_run_id)
    )
    made["by_name"]["child"] = "child"
    made["child"] = child
    parent = {"any_": [str(task_run_id)]}
    assert await some(client, made, {"flow_runs": {"parent_task_run_id": parent}}) == {"child"}
    not_null = {"is_null_": False}
    assert await some(client, made, {"flow_runs": {"parent_task_run_id": not_null}}) == {"child"}
    null = {"is_null_": True}
    assert "child" not in await some(client, made, {"flow_runs": {"parent_task_run_id": null}})
    parent_run = {"any_": [made["done"]["id"]]}
    assert await some(client, made, {"flow_runs": {"parent_flow_run_id": parent_run}}) == {"child"}


# --- combining conditions ----------------------------------------------------------------


async def test_or_joins_whole_sub_filters_each_anded_inside(client: httpx.AsyncClient) -> None:
    made = await world(client)
    either = {
        "operator": "or_",
        "name": {"any_": ["k-done"]},
        "state": {"type": {"any_": ["SCHEDULED"]}},
    }
    assert await some(client, made, {"flow_runs": either}) == {"done", "future", "late"}
    anded_inside = {"operator": "or_", "name": {"any_": ["m-future", "a-running"], "like_": "run"}}
    assert await some(client, made, {"flow_runs": anded_inside}) == {"running"}
    window = {"operator": "or_", "expected_start_time": {"after_": FUTURE, "before_": PAST}}
    assert await some(client, made, {"flow_runs": window}) == set()


async def test_an_empty_sub_filter_is_true(client: httpx.AsyncClient) -> None:
    made = await world(client)
    with_empty = {"operator": "or_", "name": {"any_": ["k-done"]}, "tags": {}}
    assert len(await keys(client, made, {"flow_runs": with_empty})) == 5
    assert len(await keys(client, made, {"flow_runs": {"operator": "or_"}})) == 5
    assert await some(client, made, {"flow_runs": {"name": {"any_": ["k-done"]}, "tags": {}}}) == {
        "done"
    }


async def test_cross_filter_by_flows(client: httpx.AsyncClient) -> None:
    made = await world(client)
    assert await some(client, made, {"flows": {"id": {"any_": [made["ops"]["id"]]}}}) == {
        "running",
        "done",
    }
    assert await some(client, made, {"flows": {"name": {"like_": made["etl"]["name"]}}}) == {
        "future",
        "late",
        "pending",
    }


async def test_cross_filter_by_deployments(client: httpx.AsyncClient) -> None:
    made = await world(client)
    assert await some(client, made, {"deployments": {"name": {"any_": ["legacy"]}}}) == {
        "running",
        "done",
    }
    assert await some(client, made, {"deployments": {"id": {"any_": [made["pooled"]["id"]]}}}) == {
        "future",
        "late",
        "pending",
    }
    paused = {"deployments": {"paused": {"eq_": True}}}
    assert await some(client, made, paused) == set()


async def test_cross_filter_by_work_pools_and_queues(client: httpx.AsyncClient) -> None:
    made = await world(client)
    pool = {"work_pools": {"name": {"any_": [made["pool"]["name"]]}}}
    assert await some(client, made, pool) == {"future", "late", "pending"}
    agent = {"work_pools": {"name": {"any_": ["default-agent-pool"]}}}
    assert await some(client, made, agent) == {"running", "done"}
    assert await some(client, made, {"work_pool_queues": {"name": {"any_": ["extra"]}}}) == {"late"}
    assert await some(client, made, {"work_pool_queues": {"name": {"startswith_": ["leg"]}}}) == {
        "running",
        "done",
    }
    default_in_pool = {**pool, "work_pool_queues": {"name": {"any_": ["default"]}}}
    assert await some(client, made, default_in_pool) == {"future", "pending"}


async def test_cross_filter_by_task_runs(client: httpx.AsyncClient) -> None:
    """Runs having a task run that matches; ``{}`` means "has any task run", as in Prefect."""
    made = await world(client)
    for key, task_name in (("running", "extract"), ("done", "load")):
        body = {"flow_run_id": made[key]["id"], "task_key": task_name, "dynamic_key": "0"}
        created = await client.post("/task_runs/", json={**body, "name": task_name})
        assert created.status_code == 201, created.text
    assert await some(client, made, {"task_runs": {}}) == {"running", "done"}
    assert await some(client, made, {"task_runs": {"name": {"any_": ["load"]}}}) == {"done"}
    assert len(await keys(client, made, {"task_runs": None})) == 5


# --- sorting and paging ------------------------------------------------------------------


async def test_every_sort_orders_as_prefect(client: httpx.AsyncClient) -> None:
    """Ties (and NULLs, which deputy always puts last) fall back to id, newest first."""
    made = await world(client)

    async def order(sort: str) -> list[str]:
        return await keys(client, made, {"sort": sort})

    everyone = ["future", "late", "running", "done", "pending"]
    by_start = ["late", "running", "done", "pending", "future"]
    assert await order("ID_DESC") == by_id_desc(made, everyone)
    assert await order("START_TIME_ASC") == by_start
    assert await order("START_TIME_DESC") == list(reversed(by_start))
    assert await order("EXPECTED_START_TIME_ASC") == by_start
    assert await order("EXPECTED_START_TIME_DESC") == list(reversed(by_start))
    by_name = ["running", "done", "future", "pending", "late"]
    assert await order("NAME_ASC") == by_name
    assert await order("NAME_DESC") == list(reversed(by_name))
    assert await order("NEXT_SCHEDULED_START_TIME_ASC") == [
        "late",
        "future",
        *by_id_desc(made, ["running", "done", "pending"]),
    ]
    assert await order("END_TIME_DESC") == [
        "done",
        *by_id_desc(made, ["future", "late", "running", "pending"]),
    ]


async def test_unknown_sort_is_422_listing_prefects_values(client: httpx.AsyncClient) -> None:
    response = await client.post("/flow_runs/filter", json={"sort": "BOGUS"})
    assert response.status_code == 422
    expected = (
        "'ID_DESC', 'START_TIME_ASC', 'START_TIME_DESC', 'EXPECTED_START_TIME_ASC', "
        "'EXPECTED_START_TIME_DESC', 'NAME_ASC', 'NAME_DESC', 'NEXT_SCHEDULED_START_TIME_ASC' "
        "or 'END_TIME_DESC'"
    )
    assert response.json() == {
        "exception_message": "Invalid request received.",
        "exception_detail": [
            {
                "type": "enum",
                "loc": ["body", "sort"],
                "msg": f"Input should be {expected}",
                "input": "BOGUS",
                "ctx": {"expected": expected},
            }
        ],
        "request_body": {"sort": "BOGUS"},
    }


async def test_limit_and_offset(client: httpx.AsyncClient) -> None:
    made = await world(client)
    page = await keys(client, made, {"sort": "NAME_ASC", "limit": 2, "offset": 1})
    assert page == ["done", "future"]
    assert await keys(client, made, {"limit": 0}) == []
    assert await keys(client, made, {"offset": 10}) == []


async def test_limit_over_200_and_negative_limits_are_422_with_a_detail(
    client: httpx.AsyncClient,
) -> None:
    too_many = await client.post("/flow_runs/filter", json={"limit": 201})
    assert (too_many.status_code, too_many.json()) == (
        422,
        {"detail": "Invalid limit: must be less than or equal to 200."},
    )
    assert (await client.post("/flow_runs/filter", json={"limit": 200})).status_code == 200
    negative = await client.post("/flow_runs/filter", json={"limit": -1})
    assert (negative.status_code, negative.json()) == (
        422,
        {"detail": "Invalid limit: must be greater than or equal to 0."},
    )
    offset = await client.post("/flow_runs/filter", json={"offset": -1})
    assert offset.status_code == 422
    assert offset.json()["exception_detail"][0]["type"] == "greater_than_equal"


async def test_unknown_nested_key_is_422_and_unknown_top_level_key_is_ignored(
    client: httpx.AsyncClient,
) -> None:
    nested = await client.post("/flow_runs/filter", json={"flow_runs": {"bogus": 1}})
    assert (nested.status_code, nested.json()) == (
        422,
        {
            "exception_message": "Invalid request received.",
            "exception_detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "flow_runs", "bogus"],
                    "msg": "Extra inputs are not permitted",
                    "input": 1,
                }
            ],
            "request_body": {"flow_runs": {"bogus": 1}},
        },
    )
    deeper = await client.post("/flow_runs/filter", json={"flow_runs": {"name": {"eq_": "x"}}})
    assert deeper.json()["exception_detail"][0]["loc"] == ["body", "flow_runs", "name", "eq_"]
    top = await client.post("/flow_runs/filter", json={"bogus": 1})
    assert (top.status_code, top.json()) == (200, [])


async def test_hostile_filter_values_are_422_not_500(client: httpx.AsyncClient) -> None:
    for body in (
        {"flow_runs": {"id": {"any_": ["nope"]}}},
        {"flow_runs": {"start_time": {"after_": "yesterday"}}},
        {"flow_runs": {"tags": {"all_": "x"}}},
        {"flow_runs": {"operator": "xor_"}},
        {"limit": "many"},
    ):
        response = await client.post("/flow_runs/filter", json=body)
        assert response.status_code == 422, body
    for content in (b"[1]", b"5", b"{bad"):
        response = await client.post(
            "/flow_runs/filter", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, content
    huge = {"flow_runs": {"name": {"like_": "x" * 100_000, "any_": ["y" * 100_000] * 10}}}
    assert (await client.post("/flow_runs/filter", json=huge)).json() == []


# --- count -------------------------------------------------------------------------------


async def test_count_is_a_bare_integer(client: httpx.AsyncClient) -> None:
    made = await world(client)
    response = await client.post("/flow_runs/count", json={})
    assert (response.status_code, response.content) == (200, b"5")
    assert (await client.post("/flow_runs/count")).json() == 5
    by_deployment = {"deployments": {"id": {"any_": [made["legacy"]["id"]]}}}
    assert (await client.post("/flow_runs/count", json=by_deployment)).json() == 2
    ignored = {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}, "limit": 1, "sort": "X"}
    assert (await client.post("/flow_runs/count", json=ignored)).json() == 2
    bad = await client.post("/flow_runs/count", json={"flow_runs": {"bogus": 1}})
    assert bad.status_code == 422


# --- delete ------------------------------------------------------------------------------


async def test_delete_is_204_then_404_and_takes_the_states_with_it(
    client: httpx.AsyncClient,
) -> None:
    made = await world(client)
    run = made["running"]
    response = await client.delete(f"/flow_runs/{run['id']}")
    assert (response.status_code, response.content) == (204, b"")
    again = await client.delete(f"/flow_runs/{run['id']}")
    assert (again.status_code, again.json()) == (404, {"detail": "Flow run not found"})
    assert (await client.get(f"/flow_runs/{run['id']}")).status_code == 404
    history = await client.get("/flow_run_states/", params={"flow_run_id": run["id"]})
    assert history.json() == []
    state = await client.get(f"/flow_run_states/{run['state_id']}")
    assert (state.status_code, state.json()) == (404, {"detail": "Flow run state not found"})
    assert (await client.post("/flow_runs/count", json={})).json() == 4
    malformed = await client.delete("/flow_runs/xyz")
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})


# --- state history -----------------------------------------------------------------------


async def test_state_history_is_oldest_first(client: httpx.AsyncClient, database: Database) -> None:
    made = await world(client)
    run = made["running"]
    current = parse(run["state"]["timestamp"])
    async with database.write() as conn:
        for offset, state_type in ((-3600, "PENDING"), (-7200, "SCHEDULED")):
            moment = current + dt.timedelta(seconds=offset)
            await conn.execute(
                insert(t.flow_run_state).values(
                    id=uuid.uuid4(),
                    created=moment,
                    updated=moment,
                    flow_run_id=uuid.UUID(run["id"]),
                    type=state_type,
                    name=state_type.title(),
                    timestamp=moment,
                    state_details={"flow_run_id": run["id"]},
                )
            )
    response = await client.get("/flow_run_states/", params={"flow_run_id": run["id"]})
    assert response.status_code == 200
    history = response.json()
    assert [s["type"] for s in history] == ["SCHEDULED", "PENDING", "RUNNING"]
    assert history[-1] == run["state"]


async def test_state_history_of_an_unknown_run_is_empty(client: httpx.AsyncClient) -> None:
    response = await client.get("/flow_run_states/", params={"flow_run_id": str(uuid.uuid4())})
    assert (response.status_code, response.json()) == (200, [])


async def test_state_history_needs_a_valid_flow_run_id(client: httpx.AsyncClient) -> None:
    missing = await client.get("/flow_run_states/")
    assert (missing.status_code, missing.json()) == (
        422,
        {
            "exception_message": "Invalid request received.",
            "exception_detail": [
                {
                    "type": "missing",
                    "loc": ["query", "flow_run_id"],
                    "msg": "Field required",
                    "input": None,
                }
            ],
            "request_body": None,
        },
    )
    malformed = await client.get("/flow_run_states/", params={"flow_run_id": "nope"})
    assert malformed.status_code == 422
    error = malformed.json()["exception_detail"][0]
    assert (error["type"], error["loc"]) == ("uuid_parsing", ["query", "flow_run_id"])


async def test_read_one_state(client: httpx.AsyncClient) -> None:
    made = await world(client)
    run = made["late"]
    response = await client.get(f"/flow_run_states/{run['state_id']}")
    assert response.status_code == 200
    assert response.json() == run["state"]
    assert (response.json()["type"], response.json()["name"]) == ("SCHEDULED", "Late")
    assert list(response.json()["state_details"]) == STATE_DETAIL_KEYS
    unknown = await client.get(f"/flow_run_states/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Flow run state not found"})
    malformed = await client.get("/flow_run_states/nope")
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})
