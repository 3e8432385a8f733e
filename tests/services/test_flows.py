"""Flows: get-or-create by name, reads, updates, deletes, filters."""

from __future__ import annotations

import uuid

import httpx

from factories import create_deployment, create_flow, create_work_pool, unique


async def test_create_flow_returns_201_then_200_for_the_same_name(
    client: httpx.AsyncClient,
) -> None:
    name = unique("flow")
    first = await client.post("/flows/", json={"name": name, "tags": ["a"]})
    second = await client.post("/flows/", json={"name": name, "tags": ["b"]})
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["tags"] == ["a"]


async def test_create_flow_rejects_unknown_fields_in_prefect_envelope(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/flows/", json={"name": "x", "bogus": 1})
    assert response.status_code == 422
    body = response.json()
    assert body["exception_message"] == "Invalid request received."
    assert body["exception_detail"][0]["type"] == "extra_forbidden"
    assert body["exception_detail"][0]["loc"] == ["body", "bogus"]
    assert body["request_body"] == {"name": "x", "bogus": 1}


async def test_flow_names_with_slashes_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/flows/", json={"name": "a/b"})
    assert response.status_code == 422


async def test_read_flow_by_id_and_name(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client, labels={"team": "data"})
    by_id = await client.get(f"/flows/{flow['id']}")
    by_name = await client.get(f"/flows/name/{flow['name']}")
    assert by_id.json() == flow == by_name.json()
    assert flow["labels"] == {"team": "data"}


async def test_unknown_flow_is_404_and_malformed_id_does_not_match(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get(f"/flows/{uuid.uuid4()}")
    malformed = await client.get("/flows/not-a-uuid")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Flow not found"})
    assert (malformed.status_code, malformed.json()) == (404, {"detail": "Not Found"})


async def test_update_flow_tags(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    response = await client.patch(f"/flows/{flow['id']}", json={"tags": ["new"]})
    assert response.status_code == 204
    assert (await client.get(f"/flows/{flow['id']}")).json()["tags"] == ["new"]
    missing = await client.patch(f"/flows/{uuid.uuid4()}", json={"tags": []})
    assert missing.status_code == 404


async def test_delete_flow(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    assert (await client.delete(f"/flows/{flow['id']}")).status_code == 204
    assert (await client.get(f"/flows/{flow['id']}")).status_code == 404
    assert (await client.delete(f"/flows/{flow['id']}")).status_code == 404


async def test_filter_count_and_paginate_flows(client: httpx.AsyncClient) -> None:
    names = sorted([unique("b"), unique("a"), unique("c")])
    for name in names:
        await create_flow(client, name=name, tags=["x"] if name.startswith("a") else [])
    listed = await client.post("/flows/filter", json={})
    assert [f["name"] for f in listed.json()] == names
    by_name = await client.post("/flows/filter", json={"flows": {"name": {"any_": [names[0]]}}})
    assert [f["name"] for f in by_name.json()] == [names[0]]
    by_tag = await client.post("/flows/filter", json={"flows": {"tags": {"all_": ["x"]}}})
    assert [f["name"] for f in by_tag.json()] == [n for n in names if n.startswith("a")]
    desc = await client.post("/flows/filter", json={"sort": "NAME_DESC", "limit": 2, "offset": 1})
    assert [f["name"] for f in desc.json()] == list(reversed(names))[1:3]
    assert (await client.post("/flows/count", json={})).json() == 3
    page = (await client.post("/flows/paginate", json={"page": 2, "limit": 2})).json()
    assert (page["count"], page["pages"], page["page"], page["limit"]) == (3, 2, 2, 2)
    assert [f["name"] for f in page["results"]] == names[2:]


async def test_flows_by_work_pool_are_those_with_a_deployment_in_it(
    client: httpx.AsyncClient,
) -> None:
    """As Prefect: ``work_pools`` goes with ``deployments`` (one deployment matching both),
    not with the flow's runs."""
    pool = await create_work_pool(client)
    other_pool = await create_work_pool(client)
    deployed = await create_flow(client)
    deployment = await create_deployment(client, deployed, work_pool_name=pool["name"])
    ran_there = await create_flow(client)
    elsewhere = await create_deployment(client, ran_there, work_pool_name=other_pool["name"])
    run = await client.post(
        f"/deployments/{elsewhere['id']}/create_flow_run", json={"work_queue_name": "default"}
    )
    assert run.status_code == 201

    async def flows(**body: object) -> list[str]:
        response = await client.post("/flows/filter", json=body)
        assert response.status_code == 200, response.text
        return [flow["name"] for flow in response.json()]

    in_pool = {"name": {"any_": [pool["name"]]}}
    assert await flows(work_pools=in_pool) == [deployed["name"]]
    assert (await client.post("/flows/count", json={"work_pools": in_pool})).json() == 1
    same_deployment = {"id": {"any_": [deployment["id"]]}}
    assert await flows(work_pools=in_pool, deployments=same_deployment) == [deployed["name"]]
    other_deployment = {"id": {"any_": [elsewhere["id"]]}}
    assert await flows(work_pools=in_pool, deployments=other_deployment) == []


async def test_filter_limit_above_200_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/flows/filter", json={"limit": 201})
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid limit: must be less than or equal to 200."}


async def test_filter_with_unknown_key_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/flows/filter", json={"flows": {"bogus": 1}})
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["type"] == "extra_forbidden"
