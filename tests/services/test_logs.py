"""POST /logs/, POST /logs/filter and the /logs/out websocket."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from databases import counted_statements
from deputy.db.engine import Database
from deputy.text_search import parse
from live import closed_with, nothing_within, prefect_socket, receive, serve

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def log(message: str, *, seconds: float = 0, **fields: Any) -> dict[str, Any]:
    return {
        "name": "prefect.flow_runs",
        "level": 20,
        "message": message,
        "timestamp": (T0 + dt.timedelta(seconds=seconds)).isoformat(),
        **fields,
    }


async def store(client: httpx.AsyncClient, *logs: dict[str, Any]) -> None:
    response = await client.post("/logs/", json=list(logs))
    assert response.status_code == 201, response.text


async def messages(client: httpx.AsyncClient, **body: Any) -> list[str]:
    response = await client.post("/logs/filter", json=body)
    assert response.status_code == 200, response.text
    return [entry["message"] for entry in response.json()]


async def test_a_batch_is_stored_with_one_statement_and_answers_201_null(
    client: httpx.AsyncClient, database: Database
) -> None:
    batch = [log(f"line {i}", seconds=i) for i in range(50)]
    with counted_statements(database) as statements:
        response = await client.post("/logs/", json=batch)
    assert (response.status_code, response.json()) == (201, None)
    assert len(statements) == 1, statements
    stored = (await client.post("/logs/filter", json={})).json()
    assert [entry["message"] for entry in stored] == [f"line {i}" for i in range(50)]
    first = stored[0]
    assert set(first) == {
        "id",
        "created",
        "updated",
        "name",
        "level",
        "message",
        "timestamp",
        "flow_run_id",
        "task_run_id",
    }
    assert first["timestamp"] == "2026-05-01T12:00:00Z"
    assert (first["flow_run_id"], first["task_run_id"]) == (None, None)


async def test_an_empty_batch_is_accepted(client: httpx.AsyncClient) -> None:
    assert (await client.post("/logs/", json=[])).status_code == 201


async def test_unknown_fields_and_missing_ones_are_refused(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/logs/", json=[{**log("x"), "extra": 1}])
    assert unknown.status_code == 422
    assert unknown.json()["exception_detail"][0]["loc"] == ["body", 0, "extra"]
    missing = await client.post("/logs/", json=[{"name": "n", "level": 20}])
    assert missing.status_code == 422


async def test_nul_characters_are_removed(client: httpx.AsyncClient) -> None:
    await store(client, {**log("a\x00b"), "name": "lo\x00gger"})
    (stored,) = (await client.post("/logs/filter", json={})).json()
    assert (stored["message"], stored["name"]) == ("ab", "logger")


async def test_logs_are_filtered_by_run_task_level_and_time(client: httpx.AsyncClient) -> None:
    run, other_run, task = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    await store(
        client,
        log("flow info", flow_run_id=run),
        log("task debug", seconds=1, level=10, flow_run_id=run, task_run_id=task),
        log("task error", seconds=2, level=40, flow_run_id=run, task_run_id=task),
        log("other run", seconds=3, flow_run_id=other_run),
    )
    by_run = {"logs": {"flow_run_id": {"any_": [run]}}}
    assert await messages(client, **by_run) == ["flow info", "task debug", "task error"]
    by_task = {"logs": {"task_run_id": {"any_": [task]}}}
    assert await messages(client, **by_task) == ["task debug", "task error"]
    no_task = {"logs": {"flow_run_id": {"any_": [run]}, "task_run_id": {"is_null_": True}}}
    assert await messages(client, **no_task) == ["flow info"]
    level = {"logs": {"level": {"ge_": 20, "le_": 30}}}
    assert await messages(client, **level) == ["flow info", "other run"]
    window = {
        "logs": {
            "timestamp": {
                "after_": (T0 + dt.timedelta(seconds=1)).isoformat(),
                "before_": (T0 + dt.timedelta(seconds=2)).isoformat(),
            }
        }
    }
    assert await messages(client, **window) == ["task debug", "task error"]


async def test_operator_or_joins_the_conditions(client: httpx.AsyncClient) -> None:
    run = str(uuid.uuid4())
    await store(client, log("mine", flow_run_id=run), log("loud", seconds=1, level=50))
    body = {
        "logs": {
            "operator": "or_",
            "flow_run_id": {"any_": [run]},
            "level": {"ge_": 50},
        }
    }
    assert await messages(client, **body) == ["mine", "loud"]


async def test_sort_offset_and_limit(client: httpx.AsyncClient) -> None:
    await store(client, *(log(f"m{i}", seconds=i) for i in range(5)))
    assert await messages(client, sort="TIMESTAMP_DESC", limit=2) == ["m4", "m3"]
    assert await messages(client, sort="TIMESTAMP_ASC", offset=3) == ["m3", "m4"]
    assert await messages(client, sort=None, limit=None, logs=None) == [f"m{i}" for i in range(5)]


async def test_limit_above_the_page_size_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/logs/filter", json={"limit": 201})
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid limit: must be less than or equal to 200."}


async def test_text_search_matches_message_and_logger_name(client: httpx.AsyncClient) -> None:
    await store(
        client,
        log("Connection timeout while fetching"),
        log("all good", seconds=1, name="prefect.task_runs"),
        log("error: disk full", seconds=2),
        log("debug error detail", seconds=3),
    )

    async def search(query: str) -> list[str]:
        return await messages(client, logs={"text": {"query": query}})

    assert await search("TIMEOUT disk") == ["Connection timeout while fetching", "error: disk full"]
    assert await search("error -debug") == ["error: disk full"]
    assert await search('"connection timeout"') == ["Connection timeout while fetching"]
    assert await search("task_runs") == ["all good"]
    assert await search("+error +detail") == ["debug error detail"]
    assert len(await search("   ")) == 4
    too_long = await client.post("/logs/filter", json={"logs": {"text": {"query": "x" * 201}}})
    assert too_long.status_code == 422


def test_text_search_query_language() -> None:
    parsed = parse('alpha -beta !gamma +delta "two words" -"not this" + lone \\x "esc \\"q\\"')
    assert parsed.include == ["alpha", "two words", "lone", "\\x", 'esc "q"']
    assert parsed.exclude == ["beta", "gamma", "not this"]
    assert parsed.required == ["delta"]
    assert parse('"unclosed phrase').include == ["unclosed phrase"]
    assert parse("").include == []


async def test_logs_out_streams_new_matching_logs_after_auth_and_filter(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    run = str(uuid.uuid4())
    await store(client, log("before subscribing", flow_run_id=run))
    async with serve(app) as base, prefect_socket(f"{base}/logs/out") as websocket:
        flt = {"flow_run_id": {"any_": [run]}, "level": {"ge_": 20}, "operator": "and_"}
        await websocket.send(json.dumps({"type": "filter", "filter": flt}))
        assert await nothing_within(websocket, 0.2)  # no backfill, as in Prefect
        await store(
            client,
            log("other run", flow_run_id=str(uuid.uuid4())),
            log("too quiet", level=10, flow_run_id=run),
            log("wanted", seconds=1, flow_run_id=run),
        )
        message = await receive(websocket)
        assert message["type"] == "log"
        assert message["log"]["message"] == "wanted"
        assert message["log"]["flow_run_id"] == run
        assert set(message["log"]) >= {"id", "created", "updated", "timestamp", "level", "name"}
        assert await nothing_within(websocket, 0.2)


async def test_logs_out_closes_without_a_filter_message(app: FastAPI) -> None:
    async with serve(app) as base:
        async with prefect_socket(f"{base}/logs/out") as websocket:
            await websocket.send(json.dumps({"type": "hello"}))
            assert await closed_with(websocket) == (1002, "Expected 'filter' message")
        async with prefect_socket(f"{base}/logs/out") as websocket:
            await websocket.send(json.dumps({"type": "filter", "filter": {"nope": 1}}))
            code, reason = await closed_with(websocket)
            assert code == 1002
            assert reason is not None
            assert reason.startswith("Invalid filter: ")
        async with prefect_socket(f"{base}/logs/out", auth=False) as websocket:
            await websocket.send(json.dumps({"type": "filter", "filter": {}}))
            assert await closed_with(websocket) == (1008, "Expected 'auth' message")
