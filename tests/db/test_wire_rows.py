"""Rows read for the wire (``deputy.db.wire.rows``) answer exactly what decoded rows answer.

Each endpoint that reads runs that way is asked twice over the same runs, with the wire rows
on and off (``wire_rows.ENABLED``), the app's clock stopped so the estimates agree. The answers must
be the same bytes; where a run holds integers beyond 64 bits, whose stored text orjson never
wrote, the same JSON (values and key order). On SQLite the fast answers are the ones SQLite
renders (``deputy.db.wire.rendered_runs``); its expressions are also checked one by one.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy
from sqlalchemy import update
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.db.wire import rendered_runs, sqlite_json
from deputy.db.wire import rows as wire_rows
from deputy.schemas.flow_runs import FLOW_RUN_FIELDS, FLOW_RUN_RESPONSE_FIELDS, Source
from deputy.services.common import Clock
from factories import create_deployment, create_work_pool

NOW = dt.datetime(2030, 6, 1, 12, 0, 0, 250_000, tzinfo=dt.UTC)
UTC = dt.UTC


@pytest.fixture
def clock() -> Clock:
    """The app's clock (see ``conftest.py``), stopped at ``NOW``."""
    return lambda: NOW


def ordered(content: bytes) -> Any:
    """The JSON with objects as lists of pairs, so equality also compares key order."""
    return json.loads(content, object_pairs_hook=list)


async def both_ways(
    monkeypatch: pytest.MonkeyPatch, ask: Callable[[], Awaitable[httpx.Response]]
) -> tuple[httpx.Response, httpx.Response]:
    """The answer with wire rows, then with decoded rows."""
    fast = await ask()
    with monkeypatch.context() as patch:
        patch.setattr(wire_rows, "ENABLED", False)
        decoded = await ask()
    assert fast.status_code == decoded.status_code == 200, (fast.text, decoded.text)
    return fast, decoded


async def create(
    client: httpx.AsyncClient, deployment: dict[str, Any], **body: Any
) -> dict[str, Any]:
    response = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def scheduled(moment: dt.datetime, **details: Any) -> dict[str, Any]:
    return {
        "type": "SCHEDULED",
        "state_details": {"scheduled_time": moment.isoformat(), **details},
    }


async def set_run(database: Database, run: dict[str, Any], **values: Any) -> None:
    async with database.write() as conn:
        await conn.execute(
            update(t.flow_run).where(t.flow_run.c.id == uuid.UUID(run["id"])).values(**values)
        )


async def set_state(database: Database, run: dict[str, Any], **values: Any) -> None:
    async with database.write() as conn:
        await conn.execute(
            update(t.flow_run_state)
            .where(t.flow_run_state.c.id == uuid.UUID(run["state_id"]))
            .values(**values)
        )


async def world(client: httpx.AsyncClient, database: Database) -> dict[str, Any]:
    """Runs whose every column varies: null and not, times with and without microseconds,
    nested and unicode JSON, states with data and details, one run without a state.

    Pool ``main``: queue ``default`` (concurrency limit, so its poll takes the capped query)
    and queue ``free`` (priority 2, no limit). Pool ``odd``: runs with integers beyond 64 bits.
    """
    main = await create_work_pool(client)
    limited = await client.patch(
        f"/work_pools/{main['name']}/queues/default", json={"concurrency_limit": 50}
    )
    assert limited.status_code == 204, limited.text
    free = await client.post(f"/work_pools/{main['name']}/queues", json={"name": "free"})
    assert free.status_code == 201, free.text
    odd_pool = await create_work_pool(client)
    deployment = await create_deployment(
        client, work_pool_name=main["name"], parameters={"default": {"é": [1, 2.5]}}
    )
    odd = await create_deployment(client, work_pool_name=odd_pool["name"])

    future = dt.datetime(2031, 1, 1, tzinfo=UTC)  # microseconds zero
    late = dt.datetime(2020, 1, 1, 8, 30, 15, 123_456, tzinfo=UTC)
    runs = {
        "future": await create(
            client,
            deployment,
            state=scheduled(future),
            parameters={"nested": {"a": [1, 2.5, None, True, {"z": "é☃😀"}]}, "n": -(2**63)},
            tags=["x", "ü"],
            idempotency_key='k"1\\',
            job_variables={"env": {"A": "1"}},
            context={"k": [1, {"v": None}]},
        ),
        "late": await create(
            client,
            deployment,
            state=scheduled(late, pause_key="p", run_input_keyset={"a": "b"}),
            work_queue_name="free",
        ),
        "retrying": await create(
            client,
            deployment,
            state=scheduled(late + dt.timedelta(seconds=1), name="AwaitingRetry"),
            empirical_policy={"retries": 3, "retry_type": "in_process"},
        ),
        "running": await create(client, deployment, state={"type": "RUNNING"}),
        "done": await create(client, deployment, state={"type": "COMPLETED"}),
        "stateless": await create(client, deployment, state=scheduled(future)),
        "odd": await create(
            client,
            odd,
            state=scheduled(future),
            parameters={"big": 2**70, "low": -(2**64), "text": "é☃"},
        ),
    }
    task = await client.post(
        "/task_runs/",
        json={"flow_run_id": runs["running"]["id"], "task_key": "t", "dynamic_key": "0"},
    )
    assert task.status_code == 201, task.text

    await set_run(database, runs["late"], labels=None, created_by=None, job_variables=None)
    await set_state(
        database,
        runs["late"],
        message='hello ☃ "quoted" \\ \n\t\x01\x1f\x7f /',
        data={"result": [1, "two", {"3": 3.0}]},
    )
    await set_run(
        database,
        runs["future"],
        created_by={"id": str(uuid.uuid4()), "type": "AUTOMATION", "display_value": "n"},
        parent_task_run_id=uuid.UUID(task.json()["id"]),
        flow_version="1.0\r\b\f",
        name="née \u2028 \U0001f600",
        deployment_version="v2",
        infrastructure_pid='pid-7 "x"',
    )
    await set_state(database, runs["future"], data=1.5)
    await set_state(database, runs["retrying"], data="text", state_details={})
    await set_run(database, runs["retrying"], empirical_policy={}, work_queue_name=None)
    await set_run(
        database,
        runs["running"],
        start_time=dt.datetime(2030, 6, 1, 11, 0, tzinfo=UTC),
        expected_start_time=dt.datetime(2030, 6, 1, 10, 59, 59, 999_999, tzinfo=UTC),
        state_timestamp=dt.datetime(2030, 6, 1, 11, 0, tzinfo=UTC),
        total_run_time=12.5,
        run_count=2,
        auto_scheduled=True,
    )
    await set_state(database, runs["running"], data=True)
    await set_run(
        database,
        runs["done"],
        start_time=dt.datetime(2030, 5, 1, tzinfo=UTC),
        end_time=dt.datetime(2030, 5, 1, 0, 0, 1, 1, tzinfo=UTC),
        total_run_time=1.000001,
    )
    await set_state(database, runs["done"], data=42)
    await set_run(database, runs["stateless"], state_id=None)
    return {"main": main, "odd_pool": odd_pool, "deployment": deployment, "odd": odd, **runs}


async def test_worker_poll_answers_the_same(
    client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await world(client, database)
    url = f"/work_pools/{made['main']['name']}/get_scheduled_flow_runs"
    bodies: list[dict[str, Any]] = [
        {},  # capped: the default queue has a concurrency limit
        {"work_queue_names": ["free"]},  # queue by queue, no cap
        {"scheduled_before": "2030-01-01T00:00:00Z", "scheduled_after": "2019-01-01T00:00:00Z"},
    ]
    for body in bodies:
        fast, decoded = await both_ways(monkeypatch, functools.partial(client.post, url, json=body))
        assert fast.json(), body
        assert fast.content == decoded.content, body
    # A policy stored without its defaults is answered with them, as Prefect's FlowRunPolicy.
    polled = (await client.post(url, json={})).json()
    for item in polled:  # in the order of the field list
        assert list(item) == ["work_pool_id", "work_queue_id", "flow_run"]
        assert list(item["flow_run"]) == list(FLOW_RUN_FIELDS)
    retrying = next(item for item in polled if item["flow_run"]["id"] == made["retrying"]["id"])
    assert retrying["flow_run"]["empirical_policy"] == {
        "max_retries": 0,
        "retry_delay_seconds": 0.0,
        "retries": None,
        "retry_delay": None,
        "pause_keys": [],
        "resuming": False,
        "retry_type": None,
    }
    odd_url = f"/work_pools/{made['odd_pool']['name']}/get_scheduled_flow_runs"
    fast, decoded = await both_ways(monkeypatch, lambda: client.post(odd_url, json={}))
    assert [item["flow_run"]["parameters"]["big"] for item in fast.json()] == [2**70]
    assert ordered(fast.content) == ordered(decoded.content)


async def test_runner_poll_answers_the_same(
    client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await world(client, database)

    def poll(*deployments: str) -> Callable[[], Awaitable[httpx.Response]]:
        body = {"deployment_ids": [made[d]["id"] for d in deployments]}
        return lambda: client.post("/deployments/get_scheduled_flow_runs", json=body)

    fast, decoded = await both_ways(monkeypatch, poll("deployment"))
    assert len(fast.json()) == 4  # future, late, retrying, stateless
    assert fast.content == decoded.content
    fast, decoded = await both_ways(monkeypatch, poll("deployment", "odd"))
    assert ordered(fast.content) == ordered(decoded.content)


async def test_flow_run_filter_and_read_answer_the_same(
    client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await world(client, database)
    main_runs = {"deployments": {"id": {"any_": [made["deployment"]["id"]]}}}
    for body in (
        main_runs,
        {**main_runs, "sort": "EXPECTED_START_TIME_DESC", "limit": 3, "offset": 1},
        {**main_runs, "flow_runs": {"state": {"type": {"any_": ["RUNNING", "COMPLETED"]}}}},
    ):
        fast, decoded = await both_ways(
            monkeypatch, functools.partial(client.post, "/flow_runs/filter", json=body)
        )
        assert fast.json(), body
        assert fast.content == decoded.content, body
    fast, decoded = await both_ways(monkeypatch, lambda: client.post("/flow_runs/filter"))
    assert len(fast.json()) == 7
    assert all(list(run) == list(FLOW_RUN_RESPONSE_FIELDS) for run in fast.json())
    assert ordered(fast.content) == ordered(decoded.content)
    for key in ("future", "late", "retrying", "running", "done", "stateless"):
        url = f"/flow_runs/{made[key]['id']}"
        fast, decoded = await both_ways(monkeypatch, functools.partial(client.get, url))
        assert fast.content == decoded.content, key


async def test_wire_times_and_ids_are_what_orjson_writes(
    client: httpx.AsyncClient, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = await world(client, database)
    running = (await client.get(f"/flow_runs/{made['running']['id']}")).json()
    assert running["start_time"] == "2030-06-01T11:00:00Z"
    assert running["expected_start_time"] == "2030-06-01T10:59:59.999999Z"
    assert running["estimated_run_time"] == 12.5 + 3600.25
    assert running["auto_scheduled"] is True
    done = (await client.get(f"/flow_runs/{made['done']['id']}")).json()
    assert (done["end_time"], done["state"]["data"]) == ("2030-05-01T00:00:01.000001Z", 42)
    assert done["id"] == made["done"]["id"]
    late = (await client.get(f"/flow_runs/{made['late']['id']}")).json()
    assert (
        late["estimated_start_time_delta"]
        == (NOW - dt.datetime(2020, 1, 1, 8, 30, 15, 123_456, tzinfo=UTC)).total_seconds()
    )
    assert (late["labels"], late["job_variables"]) == ({}, None)


@pytest.mark.parametrize(
    "stored",
    [
        "2026-01-02 03:04:05.000000",  # the stored form, no fraction on the wire
        "2026-01-02 03:04:05.120000",
        "0001-01-01 00:00:00.000001",
        "2026-01-02 03:04:05",  # other forms: parsed, then written by orjson
        "2026-01-02T03:04:05.5+02:00",
    ],
)
def test_sqlite_times_are_written_as_orjson_writes_them(stored: str) -> None:
    moment = dt.datetime.fromisoformat(stored)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    expected = orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1].decode()
    assert wire_rows._sqlite_timestamp(stored) == expected


def testsqlite_uuids_are_dashed() -> None:
    value = uuid.uuid4()
    assert wire_rows.sqlite_uuid(value.hex) == str(value)
    assert wire_rows.sqlite_uuid(str(value)) == str(value)


def sqlite_renders(render: Callable[[Any], Any], stored: Any) -> Any:
    """What SQLite answers for ``render`` (a :mod:`deputy.db.wire.sqlite_json` expression) over
    one stored value."""
    column = sqlalchemy.column("v", sqlalchemy.String())
    sql = str(sqlalchemy.select(render(column)).compile(dialect=sqlite_dialect()))
    with closing(sqlite3.connect(":memory:")) as conn:
        return conn.execute(f"{sql} FROM (SELECT ? AS v)", (stored,)).fetchone()[0]


@pytest.mark.parametrize(
    "stored",
    [
        "2026-01-02 03:04:05.000000",
        "2026-01-02 03:04:05.120000",
        "0001-01-01 00:00:00.000001",
        "9999-12-31 23:59:59.999999",
        "2026-01-02 03:04:05",
    ],
)
def test_sqlite_renders_times_as_the_wire_rows_do(stored: str) -> None:
    assert sqlite_renders(sqlite_json.wire_time, stored) == wire_rows._sqlite_timestamp(stored)


def test_sqlite_renders_bools_and_documents() -> None:
    assert sqlite_renders(sqlite_json.wire_time, None) is None

    def embedded(render: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda column: sqlite_json.json_object([("v", render(column))])

    assert sqlite_renders(embedded(sqlite_json.wire_bool), 1) == '{"v":true}'
    assert sqlite_renders(embedded(sqlite_json.wire_bool), 0) == '{"v":false}'
    document = '{"big":1180591620717411303424,"x":1.50,"s":"\\u00e9\\n"}'
    assert sqlite_renders(embedded(sqlite_json.wire_json), document) == f'{{"v":{document}}}'
    assert sqlite_renders(embedded(sqlite_json.wire_json), None) == '{"v":null}'
    with_default = embedded(lambda column: sqlite_json.wire_json(column, default="{}"))
    assert sqlite_renders(with_default, None) == '{"v":{}}'


def test_sqlite_does_not_render_floats_or_uuids() -> None:
    for type_ in (sqlalchemy.Float(), sqlalchemy.Uuid()):
        with pytest.raises(TypeError):
            sqlite_json.wire_value(sqlalchemy.column("v", type_))


def test_rendered_templates_refuse_a_shape_sqlite_cannot_write() -> None:
    """SQLite writes a group of fields as one ``json_object``: a shape must keep them
    together, in order, and all columns."""
    shape = dict(FLOW_RUN_FIELDS)
    assert rendered_runs._holes(shape)[1][:3] == ["id", "created", "flow_id"]
    with pytest.raises(ValueError, match="consecutive"):
        rendered_runs._holes({key: shape[key] for key in ("id", "updated", "created", "name")})
    with pytest.raises(ValueError, match="columns only"):
        rendered_runs._holes({**shape, "updated": Source.RUN_TIME})
