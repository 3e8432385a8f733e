"""Flow-run inputs, and resuming a paused run with input (``pause_flow_run(wait_for_input=
...)``); expected answers are Prefect 3.9.1's."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from factories import CLIENT, new_run, propose

KEYSET = {
    "description": "paused-1-description",
    "response": "paused-1-response",
    "schema": "paused-1-schema",
}
SCHEMA = {
    "title": "Approval",
    "type": "object",
    "properties": {"approver": {"type": "string"}, "level": {"type": "integer"}},
    "required": ["approver"],
}


async def add_input(client: httpx.AsyncClient, run_id: str, key: str, value: Any) -> None:
    text = value if isinstance(value, str) else json.dumps(value)
    response = await client.post(f"/flow_runs/{run_id}/input", json={"key": key, "value": text})
    assert (response.status_code, response.json()) == (201, None), response.text


async def test_inputs_are_stored_read_filtered_and_deleted(client: httpx.AsyncClient) -> None:
    run = (await new_run(client))["id"]
    for key, value in (("reply-b", {"n": 2}), ("reply-a", {"n": 1}), ("other", "x")):
        await add_input(client, run, key, value)
        await asyncio.sleep(0.002)  # distinct creation times: filter answers oldest first

    read = await client.get(f"/flow_runs/{run}/input/reply-a")
    assert (read.status_code, read.text) == (200, '{"n": 1}')
    assert read.headers["content-type"].startswith("text/plain")

    async def keys(**body: Any) -> list[str]:
        response = await client.post(f"/flow_runs/{run}/input/filter", json=body)
        assert response.status_code == 200, response.text
        return [item["key"] for item in response.json()]

    assert await keys(prefix="reply-") == ["reply-b"]  # limit 1 by default
    assert await keys(prefix="reply-", limit=5) == ["reply-b", "reply-a"]
    assert await keys(prefix="reply-", limit=5, exclude_keys=["reply-b"]) == ["reply-a"]
    [item] = (await client.post(f"/flow_runs/{run}/input/filter", json={"prefix": "oth"})).json()
    assert set(item) == {"id", "created", "updated", "flow_run_id", "key", "value", "sender"}
    assert (item["flow_run_id"], item["value"], item["sender"]) == (run, "x", None)

    assert (await client.delete(f"/flow_runs/{run}/input/reply-a")).status_code == 204
    gone = await client.get(f"/flow_runs/{run}/input/reply-a")
    assert (gone.status_code, gone.json()) == (404, {"detail": "Flow run input not found"})
    again = await client.delete(f"/flow_runs/{run}/input/reply-a")
    assert again.status_code == 404


async def test_input_errors(client: httpx.AsyncClient) -> None:
    run = (await new_run(client))["id"]
    await add_input(client, run, "once", "1")
    duplicate = await client.post(f"/flow_runs/{run}/input", json={"key": "once", "value": "2"})
    assert (duplicate.status_code, duplicate.json()) == (
        409,
        {"detail": "A flow run input with this key already exists."},
    )
    unknown = await client.post(f"/flow_runs/{uuid.uuid4()}/input", json={"key": "k", "value": "1"})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Flow run not found"})
    bad_key = await client.post(f"/flow_runs/{run}/input", json={"key": "Bad_Key", "value": "1"})
    assert bad_key.status_code == 422
    no_prefix = await client.post(f"/flow_runs/{run}/input/filter", json={})
    assert no_prefix.status_code == 422


async def test_a_deleted_run_takes_its_inputs_along(client: httpx.AsyncClient) -> None:
    run = (await new_run(client))["id"]
    await add_input(client, run, "k", "1")
    assert (await client.delete(f"/flow_runs/{run}")).status_code == 204
    assert (await client.get(f"/flow_runs/{run}/input/k")).status_code == 404


async def paused_for_input(client: httpx.AsyncClient, schema: Any = SCHEMA) -> str:
    run: str = (await new_run(client))["id"]
    await propose(client, run, "RUNNING", force=True)
    if schema is not None:
        await add_input(client, run, KEYSET["schema"], schema)
    details = {"pause_key": "1", "run_input_keyset": KEYSET}
    paused = await propose(client, run, "PAUSED", state_details=details)
    assert paused.json()["status"] == "ACCEPT", paused.text
    return run


async def resume(client: httpx.AsyncClient, run: str, run_input: Any = None) -> dict[str, Any]:
    body = {} if run_input is None else {"run_input": run_input}
    response = await client.post(f"/flow_runs/{run}/resume", json=body, headers=CLIENT)
    result: dict[str, Any] = response.json()
    result["http_status"] = response.status_code
    return result


def refusal(result: dict[str, Any]) -> tuple[int, str, str, str]:
    return (
        result["http_status"],
        result["status"],
        result["state"]["type"],
        result["details"]["reason"],
    )


async def test_resuming_with_input_that_fits_stores_it_as_the_answer(
    client: httpx.AsyncClient,
) -> None:
    run = await paused_for_input(client)
    assert refusal(await resume(client, run)) == (
        200, "REJECT", "PAUSED",
        "Reason: Validation failed. Failure reason: 'approver' is a required property",
    )  # fmt: skip
    assert refusal(await resume(client, run, {"approver": "ann", "level": "high"})) == (
        200, "REJECT", "PAUSED",
        # Prefect's words too: its preprocessing lets a field also be a placeholder.
        "Reason: Validation failed for field 'level'. Failure reason: 'high' is not valid under "
        "any of the given schemas",
    )  # fmt: skip
    assert (await client.get(f"/flow_runs/{run}/input/paused-1-response")).status_code == 404

    accepted = await resume(client, run, {"approver": "ann", "level": 2})
    assert (accepted["http_status"], accepted["status"]) == (201, "ACCEPT")
    assert accepted["state"]["type"] == "RUNNING"
    stored = await client.get(f"/flow_runs/{run}/input/paused-1-response")
    assert json.loads(stored.text) == {"approver": "ann", "level": 2}


async def test_resuming_hydrates_the_input_first(client: httpx.AsyncClient) -> None:
    await client.post("/variables/", json={"name": "approver_name", "value": "bob"})
    run = await paused_for_input(client)
    placeholder = {"__prefect_kind": "workspace_variable", "variable_name": "approver_name"}
    accepted = await resume(client, run, {"approver": placeholder})
    assert accepted["status"] == "ACCEPT", accepted
    stored = await client.get(f"/flow_runs/{run}/input/paused-1-response")
    assert json.loads(stored.text) == {"approver": "bob"}
    broken = await paused_for_input(client)
    bad = {"approver": {"__prefect_kind": "json", "value": "{not json"}}
    result = await resume(client, broken, bad)
    assert (result["status"], result["details"]["reason"].split(":")[0]) == (
        "REJECT",
        "Error hydrating run input",
    )


async def test_resuming_without_a_usable_schema_is_refused(client: httpx.AsyncClient) -> None:
    missing = await paused_for_input(client, schema=None)
    assert refusal(await resume(client, missing, {"approver": "ann"}))[1:] == (
        "REJECT", "PAUSED", "Run input schema not found."
    )  # fmt: skip
    not_json = await paused_for_input(client, schema="{not json")
    assert refusal(await resume(client, not_json, {"approver": "ann"}))[3] == (
        "Run input schema is not valid JSON."
    )
    circular = {"$ref": "#/definitions/a", "definitions": {"a": {"$ref": "#/definitions/a"}}}
    looped = await paused_for_input(client, schema=circular)
    assert refusal(await resume(client, looped, {"approver": "ann"}))[3] == (
        "Invalid schema: Unable to validate schema with circular references."
    )


async def test_a_keyset_without_a_schema_key_is_refused_not_a_500(
    client: httpx.AsyncClient,
) -> None:
    run = (await new_run(client))["id"]
    await propose(client, run, "RUNNING", force=True)
    details = {"pause_key": "1", "run_input_keyset": {"other": "x"}}
    assert (await propose(client, run, "PAUSED", state_details=details)).status_code == 201
    result = await resume(client, run, {"approver": "ann"})
    assert refusal(result)[1:] == ("REJECT", "PAUSED", "Run input schema not found.")
