"""The events Prefect 3.9.1's server emits when flows, variables, global concurrency limits
and artifact keys are created, updated or deleted."""

from __future__ import annotations

from typing import Any

import httpx

from factories import create_flow, read_events, unique


async def events_of(client: httpx.AsyncClient, resource_id: str) -> list[dict[str, Any]]:
    page = await read_events(client, {"order": "ASC", "resource": {"id": [resource_id]}})
    events: list[dict[str, Any]] = page["events"]
    return events


async def test_a_flows_life(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client, tags=["a"], labels={"team": "x"})
    again = await client.post("/flows/", json={"name": flow["name"]})
    assert again.status_code == 200  # get-or-create: not a second creation
    await client.patch(f"/flows/{flow['id']}", json={"tags": ["b"]})
    await client.delete(f"/flows/{flow['id']}")
    events = await events_of(client, f"prefect.flow.{flow['id']}")
    assert [e["event"] for e in events] == [
        "prefect.flow.created", "prefect.flow.updated", "prefect.flow.deleted"
    ]  # fmt: skip
    assert events[0]["resource"] == {
        "prefect.resource.id": f"prefect.flow.{flow['id']}",
        "prefect.resource.name": flow["name"],
    }
    assert events[0]["payload"] == {"name": flow["name"], "tags": ["a"], "labels": {"team": "x"}}
    assert events[1]["payload"]["tags"] == ["b"]
    assert events[0]["related"] == []


async def test_a_variables_life(client: httpx.AsyncClient) -> None:
    name = unique("var").replace("-", "_")
    created = (await client.post("/variables/", json={"name": name, "value": {"x": 1}})).json()
    await client.patch(f"/variables/name/{name}", json={"value": 2, "tags": ["t"]})
    await client.delete(f"/variables/{created['id']}")
    events = await events_of(client, f"prefect.variable.{created['id']}")
    assert [(e["event"], e["payload"]) for e in events] == [
        ("prefect.variable.created", {"name": name, "value": {"x": 1}, "tags": []}),
        ("prefect.variable.updated", {"name": name, "value": 2, "tags": ["t"]}),
        ("prefect.variable.deleted", {"name": name, "value": 2, "tags": ["t"]}),
    ]


async def test_a_global_limits_life(client: httpx.AsyncClient) -> None:
    name = unique("gcl")
    limit = (await client.post("/v2/concurrency_limits/", json={"name": name, "limit": 2})).json()
    await client.patch(f"/v2/concurrency_limits/{name}", json={"active": False})
    await client.delete(f"/v2/concurrency_limits/{limit['id']}")
    events = await events_of(client, f"prefect.concurrency-limit.{limit['id']}")
    assert [e["event"] for e in events] == [
        "prefect.concurrency-limit.created",
        "prefect.concurrency-limit.updated",
        "prefect.concurrency-limit.deleted",
    ]
    assert events[1]["payload"] == {
        "name": name, "limit": 2, "active": False, "slot_decay_per_second": 0.0
    }  # fmt: skip


async def test_an_artifact_keys_life(client: httpx.AsyncClient) -> None:
    key = unique("report")
    run = "0b7f7c1e-0000-4000-8000-000000000001"
    first = (await client.post("/artifacts/", json={"key": key, "data": "# 1"})).json()
    second = (
        await client.post("/artifacts/", json={"key": key, "data": "# 2", "flow_run_id": run})
    ).json()
    collection = (await client.get(f"/artifacts/{key}/latest")).json()
    await client.delete(f"/artifacts/{second['id']}")  # the first is the latest again
    await client.delete(f"/artifacts/{first['id']}")  # the key is gone
    events = await events_of(client, f"prefect.artifact-collection.{collection['id']}")
    assert [e["event"].rsplit(".", 1)[1] for e in events] == [
        "created", "updated", "updated", "deleted"
    ]  # fmt: skip
    assert events[0]["payload"] == {"key": key, "type": None, "data": "# 1", "description": None}
    assert events[1]["related"] == [
        {"prefect.resource.id": f"prefect.artifact.{second['id']}",
         "prefect.resource.role": "latest"},
        {"prefect.resource.id": f"prefect.flow-run.{run}", "prefect.resource.role": "flow-run"},
    ]  # fmt: skip
    assert events[2]["payload"]["data"] == "# 1"
    assert events[3]["related"][0]["prefect.resource.id"] == f"prefect.artifact.{first['id']}"


async def test_tag_limits_are_global_limits_in_their_events(client: httpx.AsyncClient) -> None:
    """Prefect 3.9.1's v1 routes write global limits named ``tag:<tag>``: their events too."""
    tag = unique("tag")
    created = await client.post("/concurrency_limits/", json={"tag": tag, "concurrency_limit": 1})
    again = await client.post("/concurrency_limits/", json={"tag": tag, "concurrency_limit": 3})
    assert (created.status_code, again.status_code) == (201, 200)
    await client.delete(f"/concurrency_limits/tag/{tag}")
    events = await events_of(client, f"prefect.concurrency-limit.{created.json()['id']}")
    assert [(e["event"], e["payload"]["limit"]) for e in events] == [
        ("prefect.concurrency-limit.created", 1),
        ("prefect.concurrency-limit.updated", 3),
        ("prefect.concurrency-limit.deleted", 3),
    ]
    assert events[0]["resource"]["prefect.resource.name"] == f"tag:{tag}"
