"""``record_task_run_event``: task-run events become task runs and states as Prefect records them.

The fixtures are real events, captured from a Prefect 3.9.1 engine running a flow against
Prefect's server (``/api/events/filter``), with what that server recorded from them:
``task_run_events.json`` holds a task that failed once and was retried in process (Pending,
Running, Retrying, Completed) and a task that failed (Pending, Running, Failed);
``prefect_recorded_task_runs.json`` the task runs and state histories Prefect's server
answered afterwards. Their flow run id is swapped for a run created here.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from databases import counted_statements
from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.services.common import now
from deputy.services.task_runs.recorder import record_task_run_event
from factories import create_flow

FIXTURES = Path(__file__).parent / "fixtures"
CAPTURED_FLOW_RUN = "06e9d443-b393-4562-8429-b83aa1b31294"
RETRIED = "01a22a79-9b70-7bb6-a730-14d1389714dd"
FAILED = "01a22a79-a978-7e3e-b87d-9b6dbec418d3"
#: Fields that depend on when the server saw the events, not on the events.
UNSTABLE = {"created", "updated"}


def load(name: str, flow_run_id: str) -> Any:
    text = (FIXTURES / name).read_text().replace(CAPTURED_FLOW_RUN, flow_run_id)
    return json.loads(text)


async def new_flow_run(client: httpx.AsyncClient) -> str:
    flow = await create_flow(client)
    response = await client.post(
        "/flow_runs/", json={"flow_id": flow["id"], "state": {"type": "RUNNING"}}
    )
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


@pytest.fixture
async def flow_run_id(client: httpx.AsyncClient) -> str:
    return await new_flow_run(client)


@pytest.fixture
def events(flow_run_id: str) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = load("task_run_events.json", flow_run_id)
    return loaded


def of_run(events: list[dict[str, Any]], task_run_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["resource"]["prefect.resource.id"].endswith(task_run_id)]


async def record(database: Database, *events: dict[str, Any]) -> None:
    async with database.write() as conn:
        for event in events:
            await record_task_run_event(conn, event, now=now())


async def stored(client: httpx.AsyncClient, task_run_id: str) -> tuple[Any, Any]:
    run = await client.get(f"/task_runs/{task_run_id}")
    states = await client.get("/task_run_states/", params={"task_run_id": task_run_id})
    return (run.json() if run.status_code == 200 else None), states.json()


def stable(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k not in UNSTABLE}


async def test_events_become_the_task_runs_and_states_prefect_records(
    client: httpx.AsyncClient,
    database: Database,
    events: list[dict[str, Any]],
    flow_run_id: str,
) -> None:
    await record(database, *events)
    expected = load("prefect_recorded_task_runs.json", flow_run_id)
    for task_run_id in (RETRIED, FAILED):
        run, states = await stored(client, task_run_id)
        assert stable(run) == stable(expected[task_run_id]["task_run"])
        assert states == expected[task_run_id]["states"]
    retried, _ = await stored(client, RETRIED)
    assert (retried["state_name"], retried["run_count"], retried["total_run_time"]) == (
        "Completed",
        2,
        0.006821,
    )


async def test_read_task_runs_finds_recorded_runs(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]], flow_run_id: str
) -> None:
    await record(database, *events)
    body = {"flow_runs": {"id": {"any_": [flow_run_id]}}, "sort": "EXPECTED_START_TIME_ASC"}
    found = (await client.post("/task_runs/filter", json=body)).json()
    assert [run["id"] for run in found] == [RETRIED, FAILED]
    failed = {"task_runs": {"state": {"type": {"any_": ["FAILED"]}}}}
    assert [run["id"] for run in (await client.post("/task_runs/filter", json=failed)).json()] == [
        FAILED
    ]


async def test_the_same_event_twice_changes_nothing(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]]
) -> None:
    mine = of_run(events, RETRIED)
    await record(database, *mine)
    before = await stored(client, RETRIED)
    await record(database, *mine)
    await record(database, mine[1])
    assert await stored(client, RETRIED) == before


async def test_out_of_order_events_keep_the_newest_state_current(
    client: httpx.AsyncClient,
    database: Database,
    events: list[dict[str, Any]],
    flow_run_id: str,
) -> None:
    pending, running, retrying, completed = of_run(events, RETRIED)
    await record(database, completed)
    await record(database, running, pending, retrying)
    run, states = await stored(client, RETRIED)
    expected = load("prefect_recorded_task_runs.json", flow_run_id)[RETRIED]
    assert stable(run) == stable(expected["task_run"])
    assert [s["name"] for s in states] == ["Pending", "Running", "Retrying", "Completed"]


async def test_an_older_event_after_a_newer_one_only_adds_history(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]]
) -> None:
    pending, running, _, _ = of_run(events, RETRIED)
    await record(database, running)
    await record(database, pending)
    run, states = await stored(client, RETRIED)
    assert (run["state_name"], run["run_count"], run["start_time"]) == (
        "Running",
        1,
        running["payload"]["task_run"]["start_time"],
    )
    assert [s["name"] for s in states] == ["Pending", "Running"]


async def test_keys_the_event_does_not_carry_keep_their_stored_values(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]]
) -> None:
    pending, running, _, _ = of_run(events, RETRIED)
    pending["payload"]["task_run"]["task_version"] = "v1"
    await record(database, pending, running)
    run, _ = await stored(client, RETRIED)
    assert run["task_version"] == "v1"


async def test_a_run_found_by_flow_run_task_key_and_dynamic_key_keeps_its_id(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]], flow_run_id: str
) -> None:
    pending, running, _, _ = of_run(events, RETRIED)
    task_run = pending["payload"]["task_run"]
    created = await client.post(
        "/task_runs/",
        json={
            "flow_run_id": flow_run_id,
            "task_key": task_run["task_key"],
            "dynamic_key": task_run["dynamic_key"],
        },
    )
    mine = created.json()["id"]
    running["occurred"] = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)).isoformat()
    await record(database, running)
    run, states = await stored(client, mine)
    assert (run["state_name"], run["name"]) == ("Running", task_run["name"])
    assert [s["name"] for s in states] == ["Pending", "Running"]
    assert states[-1]["state_details"]["task_run_id"] == mine
    assert (await client.get(f"/task_runs/{RETRIED}")).status_code == 404


async def test_an_event_without_a_flow_run_records_a_run_without_one(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]]
) -> None:
    pending = of_run(events, FAILED)[0]
    pending["related"] = [r for r in pending["related"] if r["prefect.resource.role"] != "flow-run"]
    await record(database, pending)
    run, states = await stored(client, FAILED)
    assert run["flow_run_id"] is None
    assert states[0]["state_details"]["flow_run_id"] is None


async def test_events_as_the_event_bus_passes_them_are_accepted(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]]
) -> None:
    """ids as UUIDs and times as aware datetimes (how ``/events/in`` hands them over)."""
    pending = of_run(events, FAILED)[0]
    parsed = {
        **pending,
        "id": uuid.UUID(pending["id"]),
        "occurred": dt.datetime.fromisoformat(pending["occurred"]),
        "received": dt.datetime.now(dt.UTC),
    }
    await record(database, parsed)
    run, _ = await stored(client, FAILED)
    assert run["state"]["id"] == pending["id"]
    assert run["state"]["timestamp"] == pending["occurred"]


async def test_other_events_and_server_orchestrated_ones_are_ignored(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]]
) -> None:
    pending = of_run(events, FAILED)[0]
    flow_run_event = {**pending, "event": "prefect.flow-run.Pending"}
    server_side = {
        **pending,
        "resource": {**pending["resource"], "prefect.orchestration": "server"},
    }
    await record(database, flow_run_event, server_side)
    assert (await client.get(f"/task_runs/{FAILED}")).status_code == 404


@pytest.mark.parametrize(
    "spoil",
    [
        lambda e: e["payload"].pop("task_run"),
        lambda e: e["payload"].pop("validated_state"),
        lambda e: e["payload"]["task_run"].pop("task_key"),
        lambda e: e["payload"]["validated_state"].update(type="NOPE"),
        lambda e: e["resource"].update({"prefect.resource.id": "prefect.flow-run.x"}),
        lambda e: e["resource"].update({"prefect.resource.id": "prefect.task-run.not-a-uuid"}),
        lambda e: e.update(occurred="yesterday"),
        lambda e: e["payload"]["task_run"].update(cache_key="k" * 2001),
    ],
)
async def test_malformed_events_are_logged_and_ignored(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]], spoil: Any
) -> None:
    pending = of_run(events, FAILED)[0]
    spoil(pending)
    await record(database, pending)
    assert (await client.post("/task_runs/count", json={})).json() == 0


async def test_an_event_the_database_refuses_is_discarded_and_the_rest_recorded(
    client: httpx.AsyncClient, database: Database, events: list[dict[str, Any]]
) -> None:
    """An unknown flow run (foreign key) or a second state at the same instant (unique
    per run) is dropped, as Prefect drops it; the transaction goes on."""
    failed = of_run(events, FAILED)
    unknown_flow_run = json.loads(
        json.dumps(failed[0]).replace(
            failed[0]["related"][0]["prefect.resource.id"], f"prefect.flow-run.{uuid.uuid4()}"
        )
    )
    same_instant = {**failed[1], "id": str(uuid.uuid4()), "occurred": failed[0]["occurred"]}
    await record(database, unknown_flow_run, *of_run(events, RETRIED))
    assert (await client.get(f"/task_runs/{FAILED}")).status_code == 404
    assert (await client.get(f"/task_runs/{RETRIED}")).json()["state_name"] == "Completed"
    await record(database, failed[0], same_instant, failed[2])
    run, states = await stored(client, FAILED)
    assert run["state_name"] == "Failed"
    assert [s["name"] for s in states] == ["Pending", "Failed"]


async def test_recording_an_event_takes_three_statements_in_a_savepoint(
    database: Database, events: list[dict[str, Any]]
) -> None:
    pending = of_run(events, FAILED)[0]
    async with database.write() as conn:
        with counted_statements(database) as statements:
            await record_task_run_event(conn, pending, now=now())
    work = [s for s in statements if not s.upper().startswith(("SAVEPOINT", "RELEASE"))]
    assert len(work) == 3, statements  # look up, upsert, insert state
    async with database.read() as conn:
        count = (await conn.execute(select(t.task_run_state.c.id))).all()
    assert len(count) == 1
