"""Events: the bus, flow-run state events, /events/in, /events/out and the reads."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.schemas.events import EventFilter
from deputy.services.events import build as event_build
from deputy.services.events import bus as events_service
from deputy.services.events import storage as event_storage
from deputy.services.events.bus import Recorder, bus
from deputy.services.events.match import matches
from factories import create_deployment, create_flow, create_work_pool, read_events
from live import closed_with, nothing_within, prefect_socket, receive, serve

CLIENT = {"User-Agent": "prefect/3.9.1 (API 0.8.4)"}


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def event(
    name: str = "my.event", resource_id: str = "my.resource", **fields: Any
) -> dict[str, Any]:
    return {
        "occurred": now().isoformat(),
        "event": name,
        "resource": {"prefect.resource.id": resource_id},
        "id": str(uuid.uuid4()),
        **fields,
    }


async def names(client: httpx.AsyncClient, flt: dict[str, Any]) -> list[str]:
    return [e["event"] for e in (await read_events(client, {"order": "ASC", **flt}))["events"]]


async def post_events(client: httpx.AsyncClient, *batch: dict[str, Any]) -> None:
    response = await client.post("/events", json=list(batch))
    assert response.status_code == 204, response.text
    await bus.flush()


async def new_run(client: httpx.AsyncClient, **deployment: Any) -> dict[str, Any]:
    pool = await create_work_pool(client)
    created = await create_deployment(client, work_pool_name=pool["name"], **deployment)
    response = await client.post(f"/deployments/{created['id']}/create_flow_run", json={})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def propose(client: httpx.AsyncClient, run_id: str, state_type: str, **state: Any) -> Any:
    body = {"state": {"type": state_type, **state}}
    response = await client.post(f"/flow_runs/{run_id}/set_state", json=body, headers=CLIENT)
    assert response.status_code in (200, 201), response.text
    return response.json()


# --- flow-run state events ----------------------------------------------------------------


async def test_every_written_flow_run_state_emits_prefects_state_event(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client, tags=["flow-tag"])
    pool = await create_work_pool(client)
    deployment = await create_deployment(
        client, flow, work_pool_name=pool["name"], tags=["dep-tag"]
    )
    response = await client.post(
        f"/deployments/{deployment['id']}/create_flow_run", json={"tags": ["run-tag"]}
    )
    run = response.json()
    pending = (await propose(client, run["id"], "PENDING"))["state"]
    running = (await propose(client, run["id"], "RUNNING", message="go"))["state"]

    page = await read_events(client, {"any_resource": {"id": [f"prefect.flow-run.{run['id']}"]}})
    assert [e["event"] for e in page["events"]] == [
        "prefect.flow-run.Running",
        "prefect.flow-run.Pending",
        "prefect.flow-run.Scheduled",
    ]
    newest, _, first = page["events"]
    assert newest["id"] == running["id"]
    assert newest["occurred"] == running["timestamp"]
    assert newest["follows"] == pending["id"]
    assert newest["resource"] == {
        "prefect.resource.id": f"prefect.flow-run.{run['id']}",
        "prefect.resource.name": run["name"],
        "prefect.run-count": "1",
        "prefect.state-message": "go",
        "prefect.state-name": "Running",
        "prefect.state-timestamp": dt.datetime.fromisoformat(running["timestamp"]).isoformat(),
        "prefect.state-type": "RUNNING",
    }
    assert newest["related"] == [
        {
            "prefect.resource.id": f"prefect.flow.{flow['id']}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": flow["name"],
        },
        {
            "prefect.resource.id": f"prefect.deployment.{deployment['id']}",
            "prefect.resource.role": "deployment",
            "prefect.resource.name": deployment["name"],
        },
        {
            "prefect.resource.id": f"prefect.work-queue.{run['work_queue_id']}",
            "prefect.resource.role": "work-queue",
            "prefect.resource.name": "default",
        },
        {
            "prefect.resource.id": f"prefect.work-pool.{pool['id']}",
            "prefect.resource.role": "work-pool",
            "prefect.resource.name": pool["name"],
            "prefect.work-pool.type": "process",
        },
        {"prefect.resource.id": "prefect.tag.dep-tag", "prefect.resource.role": "tag"},
        {"prefect.resource.id": "prefect.tag.flow-tag", "prefect.resource.role": "tag"},
        {"prefect.resource.id": "prefect.tag.run-tag", "prefect.resource.role": "tag"},
    ]
    assert newest["payload"] == {
        "intended": {"from": "PENDING", "to": "RUNNING"},
        "initial_state": {"type": "PENDING", "name": "Pending"},
        "validated_state": {"type": "RUNNING", "name": "Running", "message": "go"},
    }
    assert first["id"] == run["state_id"]
    assert first["follows"] is None
    assert first["resource"]["prefect.run-count"] == "0"
    assert first["payload"] == {
        "intended": {"from": None, "to": "SCHEDULED"},
        "initial_state": None,
        "validated_state": {"type": "SCHEDULED", "name": "Scheduled"},
    }
    assert first["related"] == newest["related"]


async def test_runs_created_without_a_deployment_name_their_flow_and_pool(
    client: httpx.AsyncClient,
) -> None:
    flow = await create_flow(client)
    pool = await create_work_pool(client, type="docker")
    body = {"flow_id": flow["id"], "work_pool_name": pool["name"], "tags": ["x"]}
    run = (await client.post("/flow_runs/", json=body)).json()
    (created,) = (
        await read_events(client, {"resource": {"id": [f"prefect.flow-run.{run['id']}"]}})
    )["events"]
    assert created["event"] == "prefect.flow-run.Pending"
    roles = {r["prefect.resource.role"]: r for r in created["related"]}
    assert roles["flow"]["prefect.resource.name"] == flow["name"]
    assert roles["work-pool"]["prefect.work-pool.type"] == "docker"
    assert "deployment" not in roles


async def test_states_that_are_not_written_emit_nothing(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    await propose(client, run["id"], "PENDING")
    aborted = await propose(client, run["id"], "PENDING")
    assert aborted["status"] == "ABORT"
    replay = {"idempotency_key": "k"}
    deployment_id = run["deployment_id"]
    first = await client.post(f"/deployments/{deployment_id}/create_flow_run", json=replay)
    again = await client.post(f"/deployments/{deployment_id}/create_flow_run", json=replay)
    assert (first.status_code, again.status_code) == (201, 200)
    assert await names(client, {"any_resource": {"id": [f"prefect.flow-run.{run['id']}"]}}) == [
        "prefect.flow-run.Scheduled",
        "prefect.flow-run.Pending",
    ]
    keyed = f"prefect.flow-run.{first.json()['id']}"
    assert await names(client, {"resource": {"id": [keyed]}}) == ["prefect.flow-run.Scheduled"]


async def test_a_paused_state_carries_pause_reschedule(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    await propose(client, run["id"], "PENDING")
    await propose(client, run["id"], "RUNNING")
    await propose(client, run["id"], "PAUSED", state_details={"pause_reschedule": True})
    (paused,) = (await read_events(client, {"event": {"name": ["prefect.flow-run.Paused"]}}))[
        "events"
    ]
    assert paused["payload"]["validated_state"] == {
        "type": "PAUSED",
        "name": "Paused",
        "pause_reschedule": "true",
    }


async def test_long_state_messages_are_shortened_in_the_event(client: httpx.AsyncClient) -> None:
    run = await new_run(client)
    await propose(client, run["id"], "CANCELLED", message="x" * 100_100)
    (cancelled,) = (await read_events(client, {"event": {"name": ["prefect.flow-run.Cancelled"]}}))[
        "events"
    ]
    message = cancelled["resource"]["prefect.state-message"]
    assert message == "x" * 50_000 + "...100 additional characters..." + "x" * 50_000
    assert event_build._truncated("y" * 100_001) == "y" * 100_001  # longer when "shortened"


# --- the bus --------------------------------------------------------------------------------


def test_emit_without_a_running_flusher_does_nothing() -> None:
    idle = events_service.EventBus()
    idle.emit({"id": uuid.uuid4()})
    assert not idle.active
    assert len(idle._queue) == 0


@pytest.fixture
def small_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_service, "MAX_QUEUED", 3)


async def test_beyond_the_cap_the_oldest_events_are_dropped_and_counted(
    small_queue: None, database: Database
) -> None:
    local = events_service.EventBus()
    local.start(database, clock=now)
    try:
        assert local._task is not None
        local._task.cancel()  # hold the flusher so the queue fills
        for number in range(5):
            local.emit({"number": number})
        assert list(local._queue) == [{"number": 2}, {"number": 3}, {"number": 4}]
        assert local.dropped == 2
    finally:
        local._queue.clear()
        await local.stop()


async def test_stopping_the_app_writes_the_events_still_queued(
    app: FastAPI, database: Database, client: httpx.AsyncClient
) -> None:
    await client.post("/events", json=[event("queued.at.shutdown")])  # not flushed by hand
    await bus.stop()
    async with database.read() as conn:
        stored = (await conn.execute(select(t.event.c.event))).scalars().all()
    assert stored == ["queued.at.shutdown"]
    bus.start(database, clock=now)  # the app fixture stops it again


async def test_duplicate_event_ids_are_stored_once(
    client: httpx.AsyncClient, database: Database
) -> None:
    same = event("twice")
    await post_events(client, same, same)
    await post_events(client, same)
    async with database.read() as conn:
        events_count = (await conn.execute(select(func.count()).select_from(t.event))).scalar()
        resources = (
            await conn.execute(select(func.count()).select_from(t.event_resource))
        ).scalar()
    assert (events_count, resources) == (1, 1)


async def record_task_runs_with(database: Database, record: Recorder) -> None:
    """Restart the app's bus with ``record`` as its task-run recorder (the app stops it)."""
    await bus.stop()
    bus.start(database, recorders={"prefect.task-run.": record}, clock=now)


async def test_task_run_events_are_recorded_once_in_the_events_transaction(
    client: httpx.AsyncClient, database: Database
) -> None:
    recorded: list[tuple[Any, dict[str, Any]]] = []

    async def record(conn: Any, received: dict[str, Any], *, now: dt.datetime) -> None:
        recorded.append((conn, received))

    await record_task_runs_with(database, record)
    task_event = event("prefect.task-run.Running", "prefect.task-run.1", payload={"a": 1})
    await post_events(client, task_event, event("prefect.flow-run.Running"), task_event)
    await post_events(client, task_event)
    assert len(recorded) == 1
    received = recorded[0][1]
    assert received["id"] == uuid.UUID(task_event["id"])
    assert received["event"] == "prefect.task-run.Running"
    assert received["payload"] == {"a": 1}
    assert isinstance(received["occurred"], dt.datetime)
    assert isinstance(received["received"], dt.datetime)


async def test_an_event_that_cannot_be_recorded_is_skipped_and_the_others_kept(
    client: httpx.AsyncClient, database: Database
) -> None:
    async def record(_conn: Any, received: dict[str, Any], *, now: dt.datetime) -> None:
        if received["resource"]["prefect.resource.id"] == "prefect.task-run.bad":
            raise ValueError("cannot record this one")

    await record_task_runs_with(database, record)
    await post_events(
        client,
        event("prefect.task-run.Pending", "prefect.task-run.good"),
        event("prefect.task-run.Pending", "prefect.task-run.bad"),
        event("other.event"),
    )
    stored = await read_events(client, {})
    assert sorted(e["resource"]["prefect.resource.id"] for e in stored["events"]) == [
        "my.resource",
        "prefect.task-run.good",
    ]


# --- POST /events and the reads -------------------------------------------------------------


async def test_post_events_refuses_invalid_events_with_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/events", json=[{"event": "x"}])
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["loc"] == ["body", 0, "occurred"]


async def test_events_page_with_next_page_links(client: httpx.AsyncClient) -> None:
    base = now() - dt.timedelta(minutes=10)
    await post_events(
        client,
        *(event(f"e{i}", occurred=(base + dt.timedelta(seconds=i)).isoformat()) for i in range(5)),
    )
    first = await read_events(client, {"order": "ASC"}, limit=2)
    assert ([e["event"] for e in first["events"]], first["total"]) == (["e0", "e1"], 5)
    assert first["next_page"].startswith("http://deputy.test/api/events/filter/next?page-token=")
    seen = [e["event"] for e in first["events"]]
    link = first["next_page"]
    while link:
        page = await client.get(link)
        assert page.status_code == 200, page.text
        assert page.json()["total"] == 5
        seen += [e["event"] for e in page.json()["events"]]
        link = page.json()["next_page"]
    assert seen == ["e0", "e1", "e2", "e3", "e4"]
    newest_first = await read_events(client, {}, limit=50)
    assert [e["event"] for e in newest_first["events"]] == ["e4", "e3", "e2", "e1", "e0"]
    assert newest_first["next_page"] is None


async def test_a_bad_page_token_is_403(client: httpx.AsyncClient) -> None:
    for token in ("garbage", "", "eyJ4IjogMX0="):
        response = await client.get("/events/filter/next", params={"page-token": token})
        assert (response.status_code, response.json()) == (403, {"detail": "Forbidden"})


async def test_more_than_50_events_per_page_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/events/filter", json={"limit": 51})
    assert response.status_code == 422
    assert response.json()["exception_detail"][0]["loc"] == ["body", "limit"]
    assert (await client.post("/events/filter", json={"filter": None})).status_code == 200
    unknown = await client.post("/events/filter", json={"filter": {"nope": 1}})
    assert unknown.status_code == 422


async def test_events_older_than_the_window_are_not_read(client: httpx.AsyncClient) -> None:
    old = (now() - dt.timedelta(days=200)).isoformat()
    await post_events(client, event("ancient", occurred=old), event("recent"))
    assert await names(client, {}) == ["recent"]
    since = (now() - dt.timedelta(days=365)).isoformat()
    assert await names(client, {"occurred": {"since": since}}) == ["ancient", "recent"]


SAMPLE = [
    event(
        "prefect.flow-run.Running",
        "prefect.flow-run.a",
        related=[
            {
                "prefect.resource.id": "prefect.flow.f1",
                "prefect.resource.role": "flow",
                "prefect.resource.name": "etl",
            },
            {"prefect.resource.id": "prefect.tag.nightly", "prefect.resource.role": "tag"},
        ],
        payload={"detail": "Connection Timeout"},
    ),
    event("prefect.flow-run.Completed", "prefect.flow-run.a"),
    event(
        "prefect.task-run.Running",
        "prefect.task-run.t",
        related=[
            {"prefect.resource.id": "prefect.flow-run.a", "prefect.resource.role": "flow-run"}
        ],
    ),
    event(
        "prefect.worker.started",
        "prefect.worker.process.w1",
        resource={"prefect.resource.id": "prefect.worker.process.w1", "prefect.resource.name": "w"},
    ),
]

FILTERS: list[tuple[dict[str, Any], list[str]]] = [
    ({"event": {"prefix": ["prefect.flow-run."]}}, ["Running", "Completed"]),
    ({"event": {"exclude_prefix": ["prefect.flow-run."]}}, ["task-run.Running", "started"]),
    ({"event": {"name": ["prefect.worker.started"]}}, ["started"]),
    (
        {"event": {"exclude_name": ["prefect.flow-run.Completed"]}},
        ["Running", "task-run.Running", "started"],
    ),
    ({"resource": {"id": ["prefect.flow-run.a"]}}, ["Running", "Completed"]),
    ({"resource": {"id_prefix": ["prefect.worker."]}}, ["started"]),
    ({"resource": {"labels": {"prefect.resource.name": "w*"}}}, ["started"]),
    (
        {"resource": {"labels": {"prefect.resource.id": ["prefect.task-run.?"]}}},
        ["task-run.Running"],
    ),
    (
        {"resource": {"labels": {"prefect.resource.id": "!prefect.flow-run.*"}}},
        ["task-run.Running", "started"],
    ),
    ({"related": {"role": ["flow"]}}, ["Running"]),
    ({"related": {"id": ["prefect.flow-run.a"]}}, ["task-run.Running"]),
    ({"related": {"resources_in_roles": [["prefect.flow.f1", "flow"]]}}, ["Running"]),
    ({"related": [{"role": ["flow"]}, {"id": ["prefect.tag.nightly"]}]}, ["Running"]),
    ({"related": {"labels": {"prefect.resource.name": "et?"}}}, ["Running"]),
    ({"related": {"labels": {"prefect.resource.role": "tag"}}}, ["Running"]),
    ({"related": {"labels": {"prefect.resource.name": []}}}, []),
    (
        {"any_resource": {"id": ["prefect.flow-run.a"]}},
        ["Running", "Completed", "task-run.Running"],
    ),
    ({"any_resource": {"id_prefix": ["prefect.tag."]}}, ["Running"]),
    (
        {"any_resource": [{"id_prefix": ["prefect."]}, {"labels": {"prefect.resource.name": "w"}}]},
        ["started"],
    ),
    ({"text": {"query": "timeout"}}, ["Running"]),
    ({"text": {"query": "nightly -timeout"}}, []),
    ({"text": {"query": "task-run worker"}}, ["task-run.Running", "started"]),
    ({"text": {"query": "+flow-run +completed"}}, ["Completed"]),
]


def _short(name: str) -> str:
    for prefix in ("prefect.flow-run.", "prefect.worker."):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name.removeprefix("prefect.")


@pytest.mark.parametrize(("flt", "expected"), FILTERS, ids=[json.dumps(f) for f, _ in FILTERS])
async def test_filters_select_the_same_events_in_sql_and_in_memory(
    client: httpx.AsyncClient, flt: dict[str, Any], expected: list[str]
) -> None:
    base = now() - dt.timedelta(minutes=1)
    sample = [
        {**e, "id": str(uuid.uuid4()), "occurred": (base + dt.timedelta(seconds=i)).isoformat()}
        for i, e in enumerate(SAMPLE)
    ]
    await post_events(client, *sample)
    assert [_short(n) for n in await names(client, flt)] == expected
    parsed = EventFilter.model_validate({**flt, "order": "ASC"})
    stored = (await read_events(client, {"order": "ASC"}))["events"]
    in_memory = [_short(e["event"]) for e in stored if matches(parsed, event_storage_view(e))]
    assert in_memory == expected


def received(sent: dict[str, Any]) -> dict[str, Any]:
    """An event as sent, as the bus holds it once received."""
    return event_storage_view({"related": [], "payload": {}, **sent, "received": now().isoformat()})


def event_storage_view(wire: dict[str, Any]) -> dict[str, Any]:
    """An event read back through the API, as the bus holds it (parsed times and ids)."""
    return {
        **wire,
        "occurred": dt.datetime.fromisoformat(wire["occurred"]),
        "received": dt.datetime.fromisoformat(wire["received"]),
        "id": uuid.UUID(wire["id"]),
    }


async def test_distinct_resources_keep_the_newest_event_of_each(client: httpx.AsyncClient) -> None:
    base = now() - dt.timedelta(minutes=1)
    await post_events(
        client,
        *(
            event(name, resource, occurred=(base + dt.timedelta(seconds=i)).isoformat())
            for i, (name, resource) in enumerate(
                [("a1", "r.a"), ("b1", "r.b"), ("a2", "r.a"), ("b2", "r.b"), ("c1", "r.c")]
            )
        ),
    )
    page = await read_events(client, {"resource": {"distinct": True}})
    assert [e["event"] for e in page["events"]] == ["c1", "b2", "a2"]
    assert page["total"] == 3


async def test_events_are_counted_by_name_and_resource(client: httpx.AsyncClient) -> None:
    earlier = (now() - dt.timedelta(seconds=5)).isoformat()
    await post_events(
        client,
        event("my.a", "r.1", occurred=earlier),
        event("my.a", "r.2", occurred=earlier),
        event("my.b", "r.1", occurred=earlier),
        event(
            "my.renamed",
            resource={"prefect.resource.id": "r.1", "prefect.resource.name": "new name"},
        ),
    )
    by_event = (await client.post("/events/count-by/event", json={"filter": {}})).json()
    assert [(c["value"], c["label"], c["count"]) for c in by_event] == [
        ("my.a", "my.a", 2),
        ("my.b", "my.b", 1),
        ("my.renamed", "my.renamed", 1),
    ]
    by_resource = (await client.post("/events/count-by/resource", json={"filter": {}})).json()
    assert [(c["value"], c["label"], c["count"]) for c in by_resource] == [
        ("r.1", "new name", 3),
        ("r.2", "r.2", 1),
    ]
    assert set(by_resource[0]) == {"value", "label", "count", "start_time", "end_time"}


async def test_events_are_counted_in_every_time_bucket(client: httpx.AsyncClient) -> None:
    moment = now()
    await post_events(client, event("my.a"), event("my.b"))
    since = (moment - dt.timedelta(hours=2)).isoformat()
    until = (moment + dt.timedelta(minutes=1)).isoformat()
    body = {"filter": {"occurred": {"since": since, "until": until}}, "time_unit": "hour"}
    buckets = (await client.post("/events/count-by/time", json=body)).json()
    assert [b["value"] for b in buckets] == [str(i) for i in range(len(buckets))]
    assert len(buckets) in (3, 4)
    assert sum(b["count"] for b in buckets) == 2
    assert buckets[-1]["count"] == 2 or buckets[-2]["count"] == 2
    start = dt.datetime.fromisoformat(buckets[0]["start_time"])
    assert (start.minute, start.second) == (0, 0)
    assert buckets[0]["label"] == start.isoformat()
    by_day = (await client.post("/events/count-by/day", json={"filter": {}})).json()
    assert len(by_day) == 181
    assert by_day[-1]["count"] == 2
    too_many = {"filter": {}, "time_unit": "minute"}
    refused = await client.post("/events/count-by/time", json=too_many)
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("The given interval would create")
    assert (await client.post("/events/count-by/nothing", json={"filter": {}})).status_code == 422


# --- /events/in ---------------------------------------------------------------------------


async def wait_stored(client: httpx.AsyncClient, flt: dict[str, Any], count: int) -> list[str]:
    """Names of the stored events matching ``flt`` once there are ``count`` (5 s at most)."""
    async with asyncio.timeout(5):
        while True:
            found = await names(client, flt)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)


async def test_events_in_answers_auth_success_then_records_every_event(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with serve(app) as base, prefect_socket(f"{base}/events/in") as websocket:
        for number in range(3):
            await websocket.send(json.dumps(event(f"streamed.{number}")))
        stored = await wait_stored(client, {"event": {"prefix": ["streamed."]}}, 3)
    assert stored == ["streamed.0", "streamed.1", "streamed.2"]


async def test_events_in_skips_invalid_events_and_keeps_reading(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    no_role = event(related=[{"prefect.resource.id": "x"}])
    no_id = {**event(), "resource": {"prefect.resource.name": "n"}}
    async with serve(app) as base, prefect_socket(f"{base}/events/in") as websocket:
        for bad in ("not json", json.dumps({"bad": 1}), json.dumps(no_role), json.dumps(no_id)):
            await websocket.send(bad)
        await websocket.send(json.dumps(event("still.listening")).encode())  # a binary frame
        pong = await websocket.ping()
        async with asyncio.timeout(5):
            await pong
        assert await wait_stored(client, {}, 1) == ["still.listening"]


async def test_events_in_accepts_clients_without_the_prefect_subprotocol(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async with serve(app) as base, prefect_socket(f"{base}/events/in", subprotocol=False) as ws:
        await ws.send(json.dumps(event("legacy.client")))
        assert await wait_stored(client, {}, 1) == ["legacy.client"]


async def test_a_first_message_other_than_auth_closes_with_1008(app: FastAPI) -> None:
    async with serve(app) as base, prefect_socket(f"{base}/events/in", auth=False) as websocket:
        await websocket.send(json.dumps(event()))
        assert await closed_with(websocket) == (1008, "Expected 'auth' message")


# --- /events/out --------------------------------------------------------------------------


def subscription(flt: dict[str, Any], **options: Any) -> str:
    since = (now() - dt.timedelta(minutes=1)).isoformat()
    until = (now() + dt.timedelta(days=365)).isoformat()
    full = {"occurred": {"since": since, "until": until}, **flt}
    return json.dumps({"type": "filter", "filter": full, **options})


async def test_events_out_backfills_then_streams_each_matching_event_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await post_events(client, event("watched.before"), event("ignored.before"))
    async with serve(app) as base, prefect_socket(f"{base}/events/out") as websocket:
        await websocket.send(subscription({"event": {"prefix": ["watched."]}}))
        backfilled = await receive(websocket)
        assert backfilled["type"] == "event"
        assert backfilled["event"]["event"] == "watched.before"
        assert set(backfilled["event"]) == {
            "occurred",
            "event",
            "resource",
            "related",
            "payload",
            "id",
            "follows",
            "received",
        }
        await post_events(client, event("ignored.after"), event("watched.after"))
        assert (await receive(websocket))["event"]["event"] == "watched.after"
        assert await nothing_within(websocket, 0.3)


async def test_events_out_without_backfill_streams_only_new_events(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await post_events(client, event("old"))
    async with serve(app) as base, prefect_socket(f"{base}/events/out") as websocket:
        await websocket.send(subscription({}, backfill=False))
        assert await nothing_within(websocket, 0.3)
        await post_events(client, event("new"))
        assert (await receive(websocket))["event"]["event"] == "new"


async def test_events_out_backfills_at_most_15_minutes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await post_events(
        client,
        event("too.old", occurred=(now() - dt.timedelta(minutes=20)).isoformat()),
        event("recent.enough", occurred=(now() - dt.timedelta(minutes=10)).isoformat()),
    )
    async with serve(app) as base, prefect_socket(f"{base}/events/out") as websocket:
        await websocket.send(subscription({"occurred": {"since": "2020-01-01T00:00:00Z"}}))
        assert (await receive(websocket))["event"]["event"] == "recent.enough"
        assert await nothing_within(websocket, 0.3)


async def test_worker_cancellation_subscription_gets_cancelling_for_its_pool_only(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    mine, other = await new_run(client), await new_run(client)
    pool_id = (await client.get(f"/work_pools/{mine['work_pool_name']}")).json()["id"]
    for run in (mine, other):
        await propose(client, run["id"], "PENDING")
        await propose(client, run["id"], "RUNNING")
    # exactly the filter Prefect 3.9.1's worker sends (EventFilter.model_dump(mode="json"))
    worker_filter: dict[str, Any] = {
        "event": {
            "prefix": None,
            "exclude_prefix": None,
            "name": ["prefect.flow-run.Cancelling"],
            "exclude_name": None,
        },
        "resource": None,
        "related": None,
        "any_resource": {"id": [f"prefect.work-pool.{pool_id}"], "id_prefix": None, "labels": None},
        "id": {"id": []},
        "text": None,
        "order": "DESC",
    }
    async with serve(app) as base, prefect_socket(f"{base}/events/out") as websocket:
        await websocket.send(subscription(worker_filter))
        assert await nothing_within(websocket, 0.2)
        await propose(client, other["id"], "CANCELLING")
        await propose(client, mine["id"], "CANCELLING")
        message = await receive(websocket)
        assert message["event"]["event"] == "prefect.flow-run.Cancelling"
        assert message["event"]["resource"]["prefect.resource.id"] == (
            f"prefect.flow-run.{mine['id']}"
        )
        assert await nothing_within(websocket, 0.3)


async def test_events_out_needs_a_filter_message_and_a_valid_filter(app: FastAPI) -> None:
    async with serve(app) as base:
        async with prefect_socket(f"{base}/events/out") as websocket:
            await websocket.send(json.dumps({"type": "subscribe"}))
            assert await closed_with(websocket) == (1002, "Expected 'filter' message")
        async with prefect_socket(f"{base}/events/out") as websocket:
            await websocket.send(json.dumps({"type": "filter", "filter": {"bogus": 1}}))
            code, reason = await closed_with(websocket)
            assert code == 1002
            assert reason is not None
            assert reason.startswith("Invalid filter: ")
            assert len(reason.encode()) <= 123


async def test_a_subscriber_that_leaves_is_forgotten(app: FastAPI) -> None:
    async with serve(app) as base:
        async with prefect_socket(f"{base}/events/out") as websocket:
            await websocket.send(subscription({}))
            assert await nothing_within(websocket, 0.1)
            assert len(bus._subscribers) == 1
        for _ in range(500):  # 5 s at most
            if not bus._subscribers:
                break
            await asyncio.sleep(0.01)
        assert not bus._subscribers


async def test_a_slow_subscriber_loses_events_beyond_its_backlog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events_service, "SUBSCRIPTION_BACKLOG", 2)
    local = events_service.EventBus()
    until = now() + dt.timedelta(days=1)
    async with local.subscribe(EventFilter.model_validate({"occurred": {"until": until}})) as queue:
        local._fan_out([received(event(f"e{i}")) for i in range(4)])
        assert [queue.get_nowait()["event"] for _ in range(queue.qsize())] == ["e0", "e1"]


def test_page_tokens_round_trip() -> None:
    flt = EventFilter.model_validate({"event": {"name": ["x"]}})
    token = event_storage._page_token(flt, total=10, page_size=4, offset=0)
    assert token is not None
    parsed, total, size, offset = event_storage._from_page_token(token)
    assert (parsed, total, size, offset) == (flt, 10, 4, 4)
    assert event_storage._page_token(flt, total=8, page_size=4, offset=4) is None
