"""Deployment schedules through the API, and the scheduler: exactly one run per slot.

The schedule arithmetic itself (cron, interval, RRule, DST) is tested without a database in
tests/scheduling/test_times.py; here hourly interval schedules anchored on a full hour keep
the expected slots easy to state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select, update

from databases import counted_statements
from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.services import scheduler
from deputy.services.common import now
from deputy.settings import Settings
from factories import create_deployment, create_work_pool

HOURLY = {"interval": 3600, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}
HALF_HOURLY = {"interval": 1800, "anchor_date": "2026-01-01T00:00:00Z", "timezone": "UTC"}
DEFAULT = scheduler.Horizon()


def _hours_ahead(count: int, step: dt.timedelta = dt.timedelta(hours=1)) -> list[dt.datetime]:
    """The next ``count`` slots of a schedule anchored on midnight with this step."""
    moment = now()
    anchor = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    first = anchor + step * -(-(moment - anchor) // step)
    return [first + step * index for index in range(count)]


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _runs(client: httpx.AsyncClient, deployment_id: str) -> list[dict[str, Any]]:
    body = {
        "deployments": {"id": {"any_": [deployment_id]}},
        "sort": "EXPECTED_START_TIME_ASC",
    }
    response = await client.post("/flow_runs/filter", json=body)
    assert response.status_code == 200, response.text
    runs: list[dict[str, Any]] = response.json()
    return runs


async def _slots(client: httpx.AsyncClient, deployment_id: str) -> list[dt.datetime]:
    return [_time(run["expected_start_time"]) for run in await _runs(client, deployment_id)]


async def _scheduled_deployment(
    client: httpx.AsyncClient, *schedule_bodies: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    bodies = list(schedule_bodies) or [{"schedule": HOURLY}]
    return await create_deployment(client, schedules=bodies, **fields)


async def test_a_deployment_created_with_a_schedule_answers_it_and_has_its_runs_at_once(
    client: httpx.AsyncClient,
) -> None:
    pool = await create_work_pool(client)
    deployment = await _scheduled_deployment(
        client,
        {"schedule": HOURLY, "slug": "hourly", "parameters": {"y": 2}},
        work_pool_name=pool["name"],
        parameters={"x": 1, "y": 1},
        tags=["team"],
    )
    (schedule,) = deployment["schedules"]
    assert list(schedule) == [
        "id",
        "created",
        "updated",
        "deployment_id",
        "schedule",
        "active",
        "max_scheduled_runs",
        "parameters",
        "slug",
    ]
    assert schedule["deployment_id"] == deployment["id"]
    assert (schedule["active"], schedule["slug"], schedule["parameters"]) == (
        True,
        "hourly",
        {"y": 2},
    )
    assert schedule["schedule"]["interval"] == 3600.0
    runs = await _runs(client, deployment["id"])
    # Prefect's minimum: three runs, the last at least an hour ahead.
    assert [_time(r["expected_start_time"]) for r in runs] == _hours_ahead(3)
    first = runs[0]
    assert first["auto_scheduled"] is True
    assert first["tags"] == ["auto-scheduled", "team"]
    assert first["parameters"] == {"x": 1, "y": 2}
    assert first["work_queue_name"] == "default"
    assert first["work_pool_name"] == pool["name"]
    assert first["created_by"] == {
        "id": schedule["id"],
        "type": "SCHEDULE",
        "display_value": "hourly",
    }
    assert first["labels"]["prefect.deployment.id"] == deployment["id"]
    assert (first["state"]["type"], first["state"]["name"]) == ("SCHEDULED", "Scheduled")
    assert first["state"]["message"] == "Flow run scheduled"
    assert first["next_scheduled_start_time"] == first["expected_start_time"]
    assert _time(first["state"]["state_details"]["scheduled_time"]) == _hours_ahead(1)[0]


async def test_schedule_endpoints_read_add_update_and_delete(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    base = f"/deployments/{deployment['id']}/schedules"
    assert (await client.get(base)).json() == []
    created = await client.post(base, json=[{"schedule": HOURLY, "slug": "a"}])
    assert created.status_code == 201, created.text
    (schedule,) = created.json()
    assert len(await _runs(client, deployment["id"])) == 3

    patched = await client.patch(f"{base}/{schedule['id']}", json={"active": False})
    assert patched.status_code == 204
    (read,) = (await client.get(base)).json()
    assert (read["active"], read["slug"]) == (False, "a")
    assert await _runs(client, deployment["id"]) == []  # an inactive schedule has no runs

    await client.patch(f"{base}/{schedule['id']}", json={"active": True})
    assert len(await _runs(client, deployment["id"])) == 3
    deleted = await client.delete(f"{base}/{schedule['id']}")
    assert deleted.status_code == 204
    assert (await client.get(base)).json() == []
    assert await _runs(client, deployment["id"]) == []


async def test_schedule_endpoints_answer_prefects_errors(client: httpx.AsyncClient) -> None:
    deployment = await create_deployment(client)
    base = f"/deployments/{deployment['id']}/schedules"
    missing = f"/deployments/{uuid.uuid4()}/schedules"
    assert (await client.get(missing)).json() == {"detail": "Deployment not found."}
    assert (await client.post(missing, json=[{"schedule": HOURLY}])).status_code == 404
    unknown = await client.patch(f"{base}/{uuid.uuid4()}", json={"active": False})
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Schedule not found."})
    assert (await client.delete(f"{base}/{uuid.uuid4()}")).status_code == 404
    await client.post(base, json=[{"schedule": HOURLY, "slug": "a"}])
    again = await client.post(base, json=[{"schedule": HALF_HOURLY, "slug": "a"}])
    assert again.status_code == 409
    assert again.json() == {"detail": "Schedule slugs must be unique within a deployment."}
    bad = await client.post(base, json=[{"schedule": {"interval": 0}}])
    assert bad.status_code == 422
    assert bad.json()["exception_message"] == "Invalid request received."


async def test_editing_a_schedule_keeps_matching_runs_and_replaces_the_rest_at_once(
    client: httpx.AsyncClient,
) -> None:
    deployment = await _scheduled_deployment(client, {"schedule": HALF_HOURLY})
    (schedule,) = deployment["schedules"]
    before = {
        _time(r["expected_start_time"]): r["id"] for r in await _runs(client, deployment["id"])
    }
    url = f"/deployments/{deployment['id']}/schedules/{schedule['id']}"
    assert (await client.patch(url, json={"schedule": HOURLY})).status_code == 204
    after = {
        _time(r["expected_start_time"]): r["id"] for r in await _runs(client, deployment["id"])
    }
    assert list(after) == _hours_ahead(3)
    kept = set(before) & set(after)
    assert kept, "the full hours were in both plans"
    assert all(before[slot] == after[slot] for slot in kept)  # same runs, not re-created


async def test_two_schedules_firing_at_the_same_time_make_one_run_per_slot(
    client: httpx.AsyncClient,
) -> None:
    deployment = await _scheduled_deployment(
        client, {"schedule": HOURLY, "slug": "a"}, {"schedule": HALF_HOURLY, "slug": "b"}
    )
    slots = await _slots(client, deployment["id"])
    assert len(slots) == len(set(slots))
    assert set(_hours_ahead(3)) <= set(slots)


async def test_pausing_removes_waiting_auto_runs_and_resuming_plans_from_now(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _scheduled_deployment(client)
    manual = await client.post(f"/deployments/{deployment['id']}/create_flow_run", json={})
    base = f"/deployments/{deployment['id']}"
    paused = await client.post(f"{base}/pause_deployment")
    assert (paused.status_code, paused.json()) == (200, None)
    remaining = await _runs(client, deployment["id"])
    assert [r["id"] for r in remaining] == [manual.json()["id"]]  # manual runs stay
    assert (await client.get(base)).json()["paused"] is True
    # A scheduler pass leaves a paused deployment alone.
    await _make_due(database, deployment["id"])
    assert await scheduler.run_scheduler(database, DEFAULT, batch=100, clock=now) == 0

    assert (await client.post(f"{base}/resume_deployment")).status_code == 200
    auto = [r for r in await _runs(client, deployment["id"]) if r["auto_scheduled"]]
    assert [_time(r["expected_start_time"]) for r in auto] == _hours_ahead(3)
    assert all(_time(r["expected_start_time"]) >= now() - dt.timedelta(seconds=5) for r in auto)
    missing = await client.post(f"/deployments/{uuid.uuid4()}/pause_deployment")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Deployment not found"})


async def test_an_upsert_without_schedules_removes_them_as_prefect_does(
    client: httpx.AsyncClient,
) -> None:
    deployment = await _scheduled_deployment(client)
    body = {"name": deployment["name"], "flow_id": deployment["flow_id"]}
    again = await client.post("/deployments/", json=body)
    assert again.status_code == 200
    assert again.json()["schedules"] == []
    assert await _runs(client, deployment["id"]) == []


async def test_a_patch_with_slugs_updates_schedules_in_place(client: httpx.AsyncClient) -> None:
    deployment = await _scheduled_deployment(client, {"schedule": HOURLY, "slug": "a"})
    (original,) = deployment["schedules"]
    url = f"/deployments/{deployment['id']}"
    body = {
        "schedules": [{"slug": "a", "schedule": HALF_HOURLY}, {"slug": "b", "schedule": HOURLY}]
    }
    assert (await client.patch(url, json=body)).status_code == 204
    read = {s["slug"]: s for s in (await client.get(url)).json()["schedules"]}
    assert read["a"]["id"] == original["id"]  # updated in place
    assert read["a"]["schedule"]["interval"] == 1800.0
    assert set(read) == {"a", "b"}

    renamed = {"schedules": [{"slug": "c", "replaces": "a"}, {"slug": "b"}]}
    assert (await client.patch(url, json=renamed)).status_code == 204
    read = {s["slug"]: s for s in (await client.get(url)).json()["schedules"]}
    assert read["c"]["id"] == original["id"]
    assert set(read) == {"b", "c"}

    unslugged = await client.patch(url, json={"schedules": [{"schedule": HOURLY}]})
    assert unslugged.status_code == 422
    assert unslugged.json() == {
        "detail": "Please provide a slug for each schedule in your request to ensure "
        "schedules are updated correctly."
    }
    nothing = await client.patch(url, json={"schedules": [{"slug": "new"}]})
    assert nothing.json() == {
        "detail": "Unable to create new deployment schedules without a schedule configuration."
    }


async def test_a_patch_without_slugs_replaces_every_schedule(client: httpx.AsyncClient) -> None:
    deployment = await _scheduled_deployment(client, {"schedule": HOURLY})
    url = f"/deployments/{deployment['id']}"
    assert (
        await client.patch(url, json={"schedules": [{"schedule": HALF_HOURLY}]})
    ).status_code == 204
    (schedule,) = (await client.get(url)).json()["schedules"]
    assert schedule["id"] != deployment["schedules"][0]["id"]
    slots = await _slots(client, deployment["id"])
    assert slots == _hours_ahead(len(slots), dt.timedelta(minutes=30))


async def test_max_scheduled_runs_caps_a_schedules_future_runs(client: httpx.AsyncClient) -> None:
    deployment = await _scheduled_deployment(
        client, {"schedule": HALF_HOURLY, "max_scheduled_runs": 2}
    )
    assert await _slots(client, deployment["id"]) == _hours_ahead(2, dt.timedelta(minutes=30))


async def test_schedule_endpoint_backfills_a_past_window_once(client: httpx.AsyncClient) -> None:
    deployment = await _scheduled_deployment(client)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    body = {
        "start_time": start.isoformat(),
        "end_time": (start + dt.timedelta(hours=5, minutes=30)).isoformat(),
        "min_runs": 1,
        "max_runs": 100,
        "min_time": 6 * 3600,
    }
    url = f"/deployments/{deployment['id']}/schedule"
    for _ in range(2):
        response = await client.post(url, json=body)
        assert (response.status_code, response.json()) == (200, None)
    slots = await _slots(client, deployment["id"])
    backfilled = [slot for slot in slots if slot < now()]
    assert backfilled == [start + dt.timedelta(hours=h) for h in range(6)]


async def _make_due(database: Database, deployment_id: str) -> None:
    async with database.write() as conn:
        await conn.execute(
            update(t.deployment_schedule)
            .where(t.deployment_schedule.c.deployment_id == uuid.UUID(deployment_id))
            .values(refill_at=now() - dt.timedelta(seconds=1))
        )


async def _count_runs(database: Database) -> int:
    async with database.read() as conn:
        count = (await conn.execute(select(func.count()).select_from(t.flow_run))).scalar_one()
    return int(count)


async def test_an_idle_scheduler_pass_is_one_query_however_many_deployments(
    client: httpx.AsyncClient, database: Database
) -> None:
    for _ in range(30):
        await _scheduled_deployment(client)
    with counted_statements(database) as statements:
        assert await scheduler.run_scheduler(database, DEFAULT, batch=100, clock=now) == 0
    assert len(statements) == 1, statements


async def test_the_scheduler_tops_up_a_schedule_when_its_refill_time_comes(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _scheduled_deployment(client)
    more = scheduler.Horizon(min_runs=10, max_runs=100)
    assert await scheduler.run_scheduler(database, more, batch=100, clock=now) == 0  # not due yet
    await _make_due(database, deployment["id"])
    assert await scheduler.run_scheduler(database, more, batch=100, clock=now) == 7
    assert await _slots(client, deployment["id"]) == _hours_ahead(10)
    refill_moved_on = await scheduler.run_scheduler(database, more, batch=100, clock=now)
    assert refill_moved_on == 0


async def test_two_scheduler_loops_at_once_never_duplicate_a_run(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    deployments = [await _scheduled_deployment(client) for _ in range(10)]
    for deployment in deployments:
        await _make_due(database, deployment["id"])
    before = await _count_runs(database)
    other = Database(settings)  # a second server process on the same database
    more = scheduler.Horizon(min_runs=10, max_runs=100)
    try:
        inserted = await asyncio.gather(
            scheduler.run_scheduler(database, more, batch=100, clock=now),
            scheduler.run_scheduler(other, more, batch=100, clock=now),
        )
    finally:
        await other.dispose()
    assert sum(inserted) == 10 * 7
    assert await _count_runs(database) == before + 70
    for deployment in deployments:
        assert await _slots(client, deployment["id"]) == _hours_ahead(10)


async def test_edits_racing_scheduler_passes_leave_exactly_the_current_plan(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    """The edit-a-schedule race (PrefectHQ/prefect#17703): schedule edits interleaved with
    scheduler passes in another process leave one run per slot, all from the last edit."""
    deployment = await _scheduled_deployment(client)
    (schedule,) = deployment["schedules"]
    url = f"/deployments/{deployment['id']}/schedules/{schedule['id']}"
    other = Database(settings)
    more = scheduler.Horizon(min_runs=6, max_runs=100)

    async def edits() -> None:
        for index in range(12):
            body = {"schedule": HALF_HOURLY if index % 2 else HOURLY}
            assert (await client.patch(url, json=body)).status_code == 204

    async def passes() -> None:
        for _ in range(12):
            await _make_due(other, deployment["id"])
            await scheduler.run_scheduler(other, more, batch=100, clock=now)

    try:
        await asyncio.gather(edits(), passes())
    finally:
        await other.dispose()
    slots = await _slots(client, deployment["id"])
    assert len(slots) == len(set(slots))
    # The last edit set half-hourly: the waiting runs are consecutive half-hour slots, none
    # left over from an hourly plan further ahead.
    assert len(slots) >= 3
    assert slots == _hours_ahead(len(slots), dt.timedelta(minutes=30))


async def test_deleting_a_deployment_deletes_its_schedules(
    client: httpx.AsyncClient, database: Database
) -> None:
    deployment = await _scheduled_deployment(client)
    assert (await client.delete(f"/deployments/{deployment['id']}")).status_code == 204
    async with database.read() as conn:
        left = (
            await conn.execute(select(func.count()).select_from(t.deployment_schedule))
        ).scalar_one()
    assert left == 0
    assert await _runs(client, deployment["id"]) == []


async def test_a_schedule_that_cannot_be_computed_makes_no_runs_and_no_500(
    client: httpx.AsyncClient, database: Database
) -> None:
    """An empty timezone passes validation (as in Prefect) but names no zone: that schedule
    makes no runs, the deployment's other schedules still do, and the scheduler goes on."""
    broken = {"schedule": {"interval": 3600, "timezone": ""}, "slug": "broken"}
    deployment = await _scheduled_deployment(client, broken, {"schedule": HOURLY, "slug": "ok"})
    assert {s["slug"] for s in deployment["schedules"]} == {"broken", "ok"}
    runs = await _runs(client, deployment["id"])
    assert {r["created_by"]["display_value"] for r in runs} == {"ok"}
    await _make_due(database, deployment["id"])
    assert await scheduler.run_scheduler(database, DEFAULT, batch=100, clock=now) == 0


async def test_hostile_schedule_inputs_get_a_4xx_or_nothing_never_a_500(
    client: httpx.AsyncClient,
) -> None:
    """Values at the edges of what datetimes and timedeltas hold: refused with Prefect's 422
    envelope where the value itself is unusable, otherwise answered with what fits."""
    deployment = await _scheduled_deployment(client)
    url = f"/deployments/{deployment['id']}/schedule"
    refused = [{"min_time": 1e308}, {"min_runs": -1}, {"max_runs": 10**30}, {"min_time": "x"}]
    for body in refused:
        response = await client.post(url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["exception_message"] == "Invalid request received."
    edges = [
        {"start_time": "9999-12-31T23:00:00Z"},
        {"start_time": "0001-01-01T00:00:00Z", "end_time": "0001-01-01T05:00:00Z"},
        {"min_time": -5},
        {"max_runs": 0},
    ]
    for body in edges:
        response = await client.post(url, json=body)
        assert (response.status_code, response.json()) == (200, None), body
    far = [
        {"interval": 60, "anchor_date": "9999-12-31T23:59:00Z"},
        {"interval": 60, "anchor_date": "0001-01-01T00:00:00Z"},
        {"interval": 86400 * 365 * 5000},
    ]
    added = await client.post(
        f"/deployments/{deployment['id']}/schedules", json=[{"schedule": s} for s in far]
    )
    assert added.status_code == 201, added.text
