"""Artifacts: versions, each key's latest, updates, deletions, filters and counts.

Expected bodies are the ones a real Prefect 3.9.1 server answers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx

from factories import create_deployment, create_flow, unique

NOT_FOUND = {"detail": "Artifact not found."}
ARTIFACT_FIELDS = {
    "id", "created", "updated", "key", "type", "description", "data", "metadata_",
    "flow_run_id", "task_run_id",
}  # fmt: skip


def instant(text: str) -> dt.datetime:
    """Compare instants, not strings: a zero fraction of a second is left out of the text."""
    return dt.datetime.fromisoformat(text)


def artifact_key(prefix: str = "art") -> str:
    return unique(prefix)


async def create_artifact(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/artifacts/", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def latest(client: httpx.AsyncClient, key: str) -> httpx.Response:
    return await client.get(f"/artifacts/{key}/latest")


async def filter_ids(client: httpx.AsyncClient, **body: Any) -> list[str]:
    response = await client.post("/artifacts/filter", json=body)
    assert response.status_code == 200, response.text
    return [artifact["id"] for artifact in response.json()]


async def create_flow_run(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    deployment = await create_deployment(client)
    response = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json=fields)
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


# --- create and read ----------------------------------------------------------------------


async def test_create_answers_the_artifact_as_sent(client: httpx.AsyncClient) -> None:
    key = artifact_key()
    run_id = str(uuid.uuid4())  # artifacts have no foreign keys, as in Prefect
    created = await create_artifact(
        client, key=key, type="markdown", description="d", data="# hi",
        metadata_={"rows": "3"}, flow_run_id=run_id,
    )  # fmt: skip
    assert set(created) == ARTIFACT_FIELDS
    assert {k: v for k, v in created.items() if k not in {"id", "created", "updated"}} == {
        "key": key,
        "type": "markdown",
        "description": "d",
        "data": "# hi",
        "metadata_": {"rows": "3"},
        "flow_run_id": run_id,
        "task_run_id": None,
    }
    assert created["created"] == created["updated"]
    assert (await client.get(f"/artifacts/{created['id']}")).json() == created


async def test_an_empty_body_makes_an_artifact_without_a_key(client: httpx.AsyncClient) -> None:
    created = await create_artifact(client)
    assert {k: v for k, v in created.items() if k not in {"id", "created", "updated"}} == {
        "key": None, "type": None, "description": None, "data": None, "metadata_": None,
        "flow_run_id": None, "task_run_id": None,
    }  # fmt: skip


async def test_any_json_is_data(client: httpx.AsyncClient) -> None:
    for data in ([{"a": 1}, {"a": 2}], {"nested": {"x": [1, 2.5, None]}}, 50.0, True, "text"):
        created = await create_artifact(client, type="table", data=data)
        assert (await client.get(f"/artifacts/{created['id']}")).json()["data"] == data


async def test_long_metadata_values_are_cut_not_refused(client: httpx.AsyncClient) -> None:
    created = await create_artifact(client, metadata_={"long": "x" * 600, "short": "y" * 500})
    assert created["metadata_"] == {"long": "x" * 500 + "...", "short": "y" * 500}
    stored = (await client.get(f"/artifacts/{created['id']}")).json()
    assert stored["metadata_"] == created["metadata_"]


async def test_unknown_ids_and_keys_are_404(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    for response in (
        await client.get(f"/artifacts/{missing}"),
        await latest(client, "no-such-key"),
        await client.patch(f"/artifacts/{missing}", json={}),
        await client.delete(f"/artifacts/{missing}"),
    ):
        assert (response.status_code, response.json()) == (404, NOT_FOUND)


async def test_bodies_are_validated_as_prefect_does(client: httpx.AsyncClient) -> None:
    bad_key = await client.post("/artifacts/", json={"key": "Bad_Key"})
    assert (bad_key.status_code, bad_key.json()) == (
        422,
        {
            "exception_message": "Invalid request received.",
            "exception_detail": [
                {
                    "type": "value_error",
                    "loc": ["body", "key"],
                    "msg": "Value error, Artifact key must only contain lowercase letters, "
                    "numbers, and dashes.",
                    "input": "Bad_Key",
                    "ctx": {"error": {}},
                }
            ],
            "request_body": {"key": "Bad_Key"},
        },
    )
    extra = await client.post("/artifacts/", json={"nope": 1})
    assert extra.json()["exception_detail"][0]["type"] == "extra_forbidden"
    not_text = await client.post("/artifacts/", json={"metadata_": {"a": 1}})
    assert not_text.json()["exception_detail"][0]["loc"] == ["body", "metadata_", "a"]
    created = await create_artifact(client)
    bad_update = await client.patch(f"/artifacts/{created['id']}", json={"key": "k"})
    assert bad_update.json()["exception_detail"][0]["type"] == "extra_forbidden"
    assert (await client.post("/artifacts/filter", json={"sort": "NOPE"})).status_code == 422
    assert (await client.post("/artifacts/filter", json={"offset": -1})).status_code == 422
    too_many = await client.post("/artifacts/latest/filter", json={"limit": 201})
    assert too_many.status_code == 422


# --- a key's latest version ---------------------------------------------------------------


async def test_the_newest_version_of_a_key_is_its_latest(client: httpx.AsyncClient) -> None:
    key = artifact_key()
    first = await create_artifact(client, key=key, type="markdown", data="# one")
    second = await create_artifact(client, key=key, type="table", data=[1, 2])

    newest = (await latest(client, key)).json()
    # Prefect answers the key's own row: its id, created with the key's first version.
    assert newest["id"] not in (first["id"], second["id"])
    assert (newest["created"], newest["updated"]) == (first["created"], second["created"])
    assert (newest["type"], newest["data"]) == ("table", [1, 2])

    listed = (await client.post("/artifacts/latest/filter", json={"artifacts": {"key": {
        "any_": [key]}}})).json()  # fmt: skip
    assert listed == [{**newest, "latest_id": second["id"]}]
    assert set(await filter_ids(client, artifacts={"key": {"any_": [key]}})) == {
        first["id"],
        second["id"],
    }
    only_key = {"artifacts": {"key": {"any_": [key]}}}
    assert (await client.post("/artifacts/count", json=only_key)).json() == 2
    assert (await client.post("/artifacts/latest/count", json=only_key)).json() == 1


async def test_updates_reach_the_latest_only_through_its_version(
    client: httpx.AsyncClient,
) -> None:
    key = artifact_key()
    first = await create_artifact(client, key=key, data=0.0)
    second = await create_artifact(client, key=key, data=10.0, description="progress")

    assert (await client.patch(f"/artifacts/{first['id']}", json={"data": 99.0})).status_code == 204
    assert (await latest(client, key)).json()["data"] == 10.0

    response = await client.patch(f"/artifacts/{second['id']}", json={"data": 50.0})
    assert response.status_code == 204
    updated = (await client.get(f"/artifacts/{second['id']}")).json()
    assert (updated["data"], updated["description"]) == (50.0, "progress")  # left as it was
    assert instant(updated["updated"]) > instant(second["updated"])
    newest = (await latest(client, key)).json()
    assert (newest["data"], newest["updated"]) == (50.0, updated["updated"])

    assert (await client.patch(f"/artifacts/{second['id']}", json={})).status_code == 204
    touched = (await client.get(f"/artifacts/{second['id']}")).json()
    assert instant(touched["updated"]) > instant(updated["updated"])
    assert touched["data"] == 50.0
    cleared = await client.patch(f"/artifacts/{second['id']}", json={"description": None})
    assert cleared.status_code == 204
    assert (await latest(client, key)).json()["description"] is None


async def test_deleting_the_latest_version_falls_back_to_the_one_before(
    client: httpx.AsyncClient,
) -> None:
    key = artifact_key()
    first = await create_artifact(client, key=key, type="markdown", data="# one")
    second = await create_artifact(client, key=key, type="table", data=[1])
    third = await create_artifact(client, key=key, type="link", data="https://x")

    assert (await client.delete(f"/artifacts/{second['id']}")).status_code == 204
    assert (await latest(client, key)).json()["data"] == "https://x"  # not the latest: kept

    assert (await client.delete(f"/artifacts/{third['id']}")).status_code == 204
    fallback = (await client.post("/artifacts/latest/filter", json={"artifacts": {"key": {
        "any_": [key]}}})).json()  # fmt: skip
    assert len(fallback) == 1
    assert fallback[0]["latest_id"] == first["id"]
    assert (fallback[0]["type"], fallback[0]["data"]) == ("markdown", "# one")
    assert (fallback[0]["created"], fallback[0]["updated"]) == (
        first["created"], first["updated"]
    )  # fmt: skip

    assert (await client.delete(f"/artifacts/{first['id']}")).status_code == 204
    assert (await latest(client, key)).status_code == 404
    assert (await client.get(f"/artifacts/{first['id']}")).status_code == 404


async def test_concurrent_versions_of_one_key_leave_one_latest(
    client: httpx.AsyncClient,
) -> None:
    key = artifact_key()
    created = await asyncio.gather(
        *(client.post("/artifacts/", json={"key": key, "data": i}) for i in range(12))
    )
    assert [r.status_code for r in created] == [201] * 12
    ids = {r.json()["id"] for r in created}
    [row] = (await client.post("/artifacts/latest/filter", json={"artifacts": {"key": {
        "any_": [key]}}})).json()  # fmt: skip
    assert row["latest_id"] in ids
    version = (await client.get(f"/artifacts/{row['latest_id']}")).json()
    assert row["data"] == version["data"]


async def test_concurrent_deletions_of_every_version_remove_the_latest(
    client: httpx.AsyncClient,
) -> None:
    """Each deletion reads the key's row under its lock: whatever the order, the key's row
    never points at a deleted version."""
    for _ in range(3):
        key = artifact_key()
        versions = [await create_artifact(client, key=key, data=i) for i in range(4)]
        deleted = await asyncio.gather(*(client.delete(f"/artifacts/{v['id']}") for v in versions))
        assert [r.status_code for r in deleted] == [204] * 4
        assert (await latest(client, key)).status_code == 404
        counted = await client.post(
            "/artifacts/latest/count", json={"artifacts": {"key": {"any_": [key]}}}
        )
        assert counted.json() == 0


# --- filters ------------------------------------------------------------------------------


async def test_own_filters(client: httpx.AsyncClient) -> None:
    prefix = artifact_key("own")
    table = await create_artifact(client, key=f"{prefix}-table", type="table")
    markdown = await create_artifact(client, key=f"{prefix}-notes", type="markdown")
    keyless = await create_artifact(client, type="progress", task_run_id=str(uuid.uuid4()))
    mine = {table["id"], markdown["id"], keyless["id"]}

    async def matching(artifacts: dict[str, Any]) -> set[str]:
        return set(await filter_ids(client, artifacts=artifacts)) & mine

    assert await matching({"key": {"like_": prefix}}) == {table["id"], markdown["id"]}
    assert await matching({"key": {"exists_": False}}) == {keyless["id"]}
    assert await matching({"type": {"any_": ["table"]}}) == {table["id"]}
    assert await matching({"type": {"not_any_": ["table"]}}) == {markdown["id"], keyless["id"]}
    assert await matching({"id": {"any_": [markdown["id"]]}}) == {markdown["id"]}
    assert await matching({"task_run_id": {"any_": [keyless["task_run_id"]]}}) == {keyless["id"]}
    either = {"operator": "or_", "type": {"any_": ["table"]}, "key": {"exists_": False}}
    assert await matching(either) == {table["id"], keyless["id"]}

    latest_rows = await client.post(
        "/artifacts/latest/filter",
        json={"artifacts": {"latest_id": {"any_": [table["id"]]}}, "sort": None},
    )
    assert [row["key"] for row in latest_rows.json()] == [f"{prefix}-table"]


async def test_filters_on_the_runs_an_artifact_belongs_to(client: httpx.AsyncClient) -> None:
    flow = await create_flow(client)
    deployment = await create_deployment(client, flow)
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run", json={"tags": ["nightly"]}
    )
    run = response.json()
    other_run = await create_flow_run(client)
    task = await client.post(
        "/task_runs/",
        json={"flow_run_id": run["id"], "task_key": "t", "dynamic_key": "0", "tags": ["io"]},
    )
    task_run = task.json()
    in_run = await create_artifact(client, flow_run_id=run["id"])
    in_task = await create_artifact(client, flow_run_id=run["id"], task_run_id=task_run["id"])
    elsewhere = await create_artifact(client, flow_run_id=other_run["id"])
    orphan = await create_artifact(client)
    mine = {in_run["id"], in_task["id"], elsewhere["id"], orphan["id"]}

    async def matching(**filters: Any) -> set[str]:
        return set(await filter_ids(client, **filters)) & mine

    assert await matching(flow_runs={"tags": {"all_": ["nightly"]}}) == {
        in_run["id"], in_task["id"]
    }  # fmt: skip
    assert await matching(flows={"name": {"any_": [flow["name"]]}}) == {
        in_run["id"], in_task["id"]
    }  # fmt: skip
    assert await matching(deployments={"id": {"any_": [deployment["id"]]}}) == {
        in_run["id"], in_task["id"]
    }  # fmt: skip
    assert await matching(task_runs={"tags": {"all_": ["io"]}}) == {in_task["id"]}
    # Any run filter, even {}, asks for a run that exists: the orphan is left out.
    assert await matching(flow_runs={}) == {in_run["id"], in_task["id"], elsewhere["id"]}
    assert await matching(task_runs={}) == {in_task["id"]}
    # Together they ask one run to match them all.
    assert await matching(flow_runs={"id": {"any_": [other_run["id"]]}}, flows={
        "name": {"any_": [flow["name"]]}}) == set()  # fmt: skip
    counted = await client.post(
        "/artifacts/count", json={"flow_runs": {"id": {"any_": [run["id"]]}}}
    )
    assert counted.json() == 2


async def test_sorts_and_pages(client: httpx.AsyncClient) -> None:
    prefix = artifact_key("page")
    keys = [f"{prefix}-{letter}" for letter in "cab"]
    for key in keys:
        await create_artifact(client, key=key)
    only_mine = {"artifacts": {"key": {"like_": prefix}}}

    async def listed(path: str, **body: Any) -> list[str]:
        response = await client.post(path, json={**only_mine, **body})
        assert response.status_code == 200, response.text
        return [row["key"] for row in response.json()]

    for path in ("/artifacts/filter", "/artifacts/latest/filter"):
        assert await listed(path, sort="KEY_ASC") == sorted(keys)
        assert await listed(path, sort="KEY_DESC") == sorted(keys, reverse=True)
        assert await listed(path, sort="CREATED_DESC") == keys[::-1]
        assert await listed(path, sort="KEY_ASC", offset=1, limit=1) == [sorted(keys)[1]]
        by_id = await listed(path)  # ID_DESC by default
        assert len(by_id) == 3


async def test_artifacts_outlive_their_flow_run(client: httpx.AsyncClient) -> None:
    run = await create_flow_run(client)
    created = await create_artifact(client, key=artifact_key(), flow_run_id=run["id"])
    assert (await client.delete(f"/flow_runs/{run['id']}")).status_code == 204
    assert (await client.get(f"/artifacts/{created['id']}")).json() == created
