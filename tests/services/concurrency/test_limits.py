"""Concurrency limits: v2 global limits, slots and leases, and the v1 tag limits on top.

Each rule of Prefect 3.9.1's concurrency API is checked through HTTP; the race tests check
that slots never exceed a limit however many requests (and processes) ask at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, select, update

from deputy.db import migrate
from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.orchestration.task_policy import clamped_poisson_interval
from deputy.services.common import now
from deputy.services.concurrency import leases
from deputy.settings import Settings
from factories import create_deployment, create_work_pool, unique
from servers import deputy_server

V2 = "/v2/concurrency_limits"
V1 = "/concurrency_limits"


async def _create(client: httpx.AsyncClient, name: str, limit: int, **fields: Any) -> Any:
    response = await client.post(f"{V2}/", json={"name": name, "limit": limit, **fields})
    assert response.status_code == 201, response.text
    return response.json()


async def _read(client: httpx.AsyncClient, id_or_name: str) -> Any:
    response = await client.get(f"{V2}/{id_or_name}")
    assert response.status_code == 200, response.text
    return response.json()


async def _stored(database: Database, name: str) -> Any:
    """The limit's row as stored (before decay)."""
    async with database.read() as conn:
        query = t.concurrency_limit_v2.select().where(t.concurrency_limit_v2.c.name == name)
        return (await conn.execute(query)).one()


async def _lease_rows(database: Database, lease_id: str) -> list[Any]:
    async with database.read() as conn:
        query = t.concurrency_lease.select().where(t.concurrency_lease.c.id == uuid.UUID(lease_id))
        return list((await conn.execute(query)).all())


async def _lease(client: httpx.AsyncClient, names: list[str], slots: int = 1, **body: Any) -> Any:
    return await client.post(
        f"{V2}/increment-with-lease", json={"names": names, "slots": slots, **body}
    )


# --- v2: create, read, update, delete -----------------------------------------------------


async def test_create_answers_the_full_limit_and_refuses_a_taken_name(
    client: httpx.AsyncClient,
) -> None:
    created = await _create(client, "db", 3, slot_decay_per_second=0.5)
    assert {k: v for k, v in created.items() if k not in ("id", "created", "updated")} == {
        "active": True,
        "name": "db",
        "limit": 3,
        "active_slots": 0,
        "denied_slots": 0,
        "slot_decay_per_second": 0.5,
        "avg_slot_occupancy_seconds": 2.0,
    }
    again = await client.post(f"{V2}/", json={"name": "db", "limit": 1})
    assert again.status_code == 409
    assert again.json()["detail"].startswith("Data integrity conflict.")
    for bad in ({"name": "a/b", "limit": 1}, {"name": "x", "limit": -1}, {"name": "x"}):
        assert (await client.post(f"{V2}/", json=bad)).status_code == 422
    extra = await client.post(f"{V2}/", json={"name": "y", "limit": 1, "nope": 1})
    assert extra.status_code == 422


async def test_read_by_id_or_name_and_not_found(client: httpx.AsyncClient) -> None:
    created = await _create(client, "tag:db", 2)
    by_id, by_name = await _read(client, created["id"]), await _read(client, "tag:db")
    assert by_id == by_name
    assert set(by_id) == {
        "id",
        "created",
        "updated",
        "active",
        "name",
        "limit",
        "active_slots",
        "slot_decay_per_second",
    }
    for missing in ("nope", str(uuid.uuid4())):
        response = await client.get(f"{V2}/{missing}")
        assert response.status_code == 404
        assert response.json() == {"detail": "Concurrency Limit not found"}


async def test_filter_orders_by_name_with_offset_and_limit(client: httpx.AsyncClient) -> None:
    for name in ("c", "a", "b"):
        await _create(client, name, 1)
    everything = (await client.post(f"{V2}/filter", json={})).json()
    assert [limit["name"] for limit in everything] == ["a", "b", "c"]
    page = (await client.post(f"{V2}/filter", json={"offset": 1, "limit": 1})).json()
    assert [limit["name"] for limit in page] == ["b"]
    nulls = await client.post(f"{V2}/filter", json={"offset": None, "limit": None})
    assert len(nulls.json()) == 3
    assert (await client.post(f"{V2}/filter", json={"limit": 201})).status_code == 422


async def test_update_changes_only_the_keys_sent(client: httpx.AsyncClient) -> None:
    created = await _create(client, "db", 2)
    patched = await client.patch(f"{V2}/db", json={"limit": 5, "active": False})
    assert patched.status_code == 204
    read = await _read(client, created["id"])
    assert (read["limit"], read["active"], read["name"]) == (5, False, "db")
    renamed = await client.patch(f"{V2}/{created['id']}", json={"name": "database"})
    assert renamed.status_code == 204
    assert (await _read(client, "database"))["id"] == created["id"]
    missing = await client.patch(f"{V2}/db", json={"limit": 1})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Concurrency Limit not found"})
    assert (await client.patch(f"{V2}/database", json={"limit": -1})).status_code == 422
    null_limit = await client.patch(f"{V2}/database", json={"limit": None})
    assert null_limit.status_code == 409  # as Prefect: the column cannot be null


async def test_delete_by_id_or_name(client: httpx.AsyncClient) -> None:
    first = await _create(client, "first", 1)
    await _create(client, "second", 1)
    assert (await client.delete(f"{V2}/{first['id']}")).status_code == 204
    assert (await client.delete(f"{V2}/second")).status_code == 204
    gone = await client.delete(f"{V2}/second")
    assert (gone.status_code, gone.json()) == (404, {"detail": "Concurrency Limit not found"})


async def test_deleting_a_limit_drops_its_leases(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _create(client, "db", 2)
    lease_id = (await _lease(client, ["db"])).json()["lease_id"]
    assert (await client.delete(f"{V2}/db")).status_code == 204
    assert await _lease_rows(database, lease_id) == []


# --- v2: slots ----------------------------------------------------------------------------


async def test_names_without_a_limit_take_nothing_and_succeed(
    client: httpx.AsyncClient, database: Database
) -> None:
    """What the task engine relies on for tags that have no limit."""
    increment = await client.post(f"{V2}/increment", json={"names": ["tag:x"], "slots": 1})
    assert (increment.status_code, increment.json()) == (200, [])
    with_lease = await _lease(client, ["tag:x", "tag:y"], lease_duration=60)
    assert with_lease.status_code == 200
    body = with_lease.json()
    assert body["limits"] == []
    uuid.UUID(body["lease_id"])
    assert await _lease_rows(database, body["lease_id"]) == []
    released = await client.post(f"{V2}/decrement-with-lease", json={"lease_id": body["lease_id"]})
    assert released.status_code == 204
    decrement = await client.post(f"{V2}/decrement", json={"names": ["tag:x"], "slots": 1})
    assert (decrement.status_code, decrement.json()) == (200, [])


async def test_increment_takes_slots_until_full_then_423_with_retry_after(
    client: httpx.AsyncClient, database: Database
) -> None:
    created = await _create(client, "tag:db", 2)
    body = {"names": ["tag:db"], "slots": 1, "create_if_missing": None, "mode": None}
    for _ in range(2):
        taken = await client.post(f"{V2}/increment", json=body)
        assert taken.status_code == 200
        assert taken.json() == [{"id": created["id"], "name": "tag:db", "limit": 2}]
    refused = await client.post(f"{V2}/increment", json=body)
    assert (refused.status_code, refused.json()) == (423, {"detail": "Locked"})
    # tag limits wait at most 10 s (plus the 30% jitter band)
    assert 0 < float(refused.headers["retry-after"]) <= 13
    stored = await _stored(database, "tag:db")
    assert (stored.active_slots, stored.denied_slots) == (2, 1)


async def test_refusals_before_taking_anything(client: httpx.AsyncClient) -> None:
    await _create(client, "small", 1)
    too_many = await client.post(f"{V2}/increment", json={"names": ["small"], "slots": 2})
    assert (too_many.status_code, too_many.json()) == (
        422,
        {"detail": "Slots requested is greater than the limit"},
    )
    rate = await client.post(
        f"{V2}/increment", json={"names": ["small"], "slots": 1, "mode": "rate_limit"}
    )
    assert rate.status_code == 422
    assert rate.json() == {
        "detail": "Only concurrency limits with slot decay can be used for rate limiting. The "
        "following limits do not have a decay configured: 'small'"
    }
    for body in ({"names": [], "slots": 1}, {"names": ["small"], "slots": 0}):
        assert (await client.post(f"{V2}/increment", json=body)).status_code == 422
    assert (await _read(client, "small"))["active_slots"] == 0


async def test_several_limits_are_taken_all_or_none(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _create(client, "roomy", 5)
    await _create(client, "full", 1, active_slots=1)
    refused = await _lease(client, ["roomy", "full"])
    assert refused.status_code == 423
    assert (await _stored(database, "roomy")).active_slots == 0
    assert (await _stored(database, "full")).denied_slots == 1
    await client.patch(f"{V2}/full", json={"active_slots": 0})
    taken = await _lease(client, ["roomy", "full", "missing"])
    assert taken.status_code == 200
    assert sorted(limit["name"] for limit in taken.json()["limits"]) == ["full", "roomy"]
    rows = await _lease_rows(database, taken.json()["lease_id"])
    assert sorted(row.slots for row in rows) == [1, 1]
    assert (await _read(client, "roomy"))["active_slots"] == 1
    assert (await _read(client, "full"))["active_slots"] == 1


async def test_inactive_limits_never_block_and_are_not_counted(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _create(client, "off", 1, active=False, active_slots=1)
    await _create(client, "on", 3)
    taken = await _lease(client, ["off", "on"], slots=2)
    assert taken.status_code == 200
    assert sorted(limit["name"] for limit in taken.json()["limits"]) == ["off", "on"]
    assert (await _read(client, "off"))["active_slots"] == 1
    assert (await _read(client, "on"))["active_slots"] == 2
    # the lease covers the inactive limit too, holding nothing there
    lease_id = taken.json()["lease_id"]
    held = {row.concurrency_limit_id: row.slots for row in await _lease_rows(database, lease_id)}
    assert sorted(held.values()) == [0, 2]
    renewed = await client.post(f"{V2}/leases/{lease_id}/renew", json={"lease_duration": 60})
    assert renewed.status_code == 204
    await client.patch(f"{V2}/off", json={"active": True})
    released = await client.post(f"{V2}/decrement-with-lease", json={"lease_id": lease_id})
    assert released.status_code == 204
    assert (await _read(client, "off"))["active_slots"] == 1  # nothing was taken there
    assert (await _read(client, "on"))["active_slots"] == 0
    # decrement by name skips inactive limits, as Prefect does
    await client.patch(f"{V2}/off", json={"active": False})
    decremented = await client.post(f"{V2}/decrement", json={"names": ["off"], "slots": 1})
    assert [limit["name"] for limit in decremented.json()] == ["off"]
    assert (await _read(client, "off"))["active_slots"] == 1


async def test_decrement_never_goes_below_zero_and_learns_occupancy(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _create(client, "db", 2, active_slots=1)
    body = {"names": ["db"], "slots": 2, "occupancy_seconds": 10.0}
    released = await client.post(f"{V2}/decrement", json=body)
    assert released.status_code == 200
    stored = await _stored(database, "db")
    assert stored.active_slots == 0
    # a moving average over limit * 2 samples: 2 + (10 / 2) / 4 - 2 / 4
    assert stored.avg_slot_occupancy_seconds == pytest.approx(2.75)
    bad = await client.post(f"{V2}/decrement", json={**body, "occupancy_seconds": 0})
    assert bad.status_code == 422


async def test_a_lease_over_several_limits_is_one_id(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _create(client, "a", 2)
    await _create(client, "b", 2)
    holder = {"type": "task_run", "id": str(uuid.uuid4())}
    taken = await _lease(client, ["a", "b"], holder=holder, lease_duration=60)
    lease_id = taken.json()["lease_id"]
    rows = await _lease_rows(database, lease_id)
    assert len(rows) == 2
    assert all(row.holder == holder for row in rows)
    assert len({row.expiration for row in rows}) == 1
    renewed = await client.post(f"{V2}/leases/{lease_id}/renew", json={"lease_duration": 600})
    assert renewed.status_code == 204
    expirations = {row.expiration for row in await _lease_rows(database, lease_id)}
    assert len(expirations) == 1
    assert expirations.pop() > rows[0].expiration + dt.timedelta(seconds=500)
    for _ in range(2):  # releasing twice gives back once
        released = await client.post(f"{V2}/decrement-with-lease", json={"lease_id": lease_id})
        assert released.status_code == 204
    assert [(await _read(client, name))["active_slots"] for name in "ab"] == [0, 0]
    gone = await client.post(f"{V2}/leases/{lease_id}/renew", json={})
    assert gone.status_code == 410


async def test_expired_leases_over_several_limits_are_reclaimed(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _create(client, "a", 1)
    await _create(client, "b", 1)
    lease_id = (await _lease(client, ["a", "b"], lease_duration=60)).json()["lease_id"]
    async with database.write() as conn:
        await leases.reclaim_expired_leases(conn, now() + dt.timedelta(seconds=61), 100)
    assert await _lease_rows(database, lease_id) == []
    assert [(await _read(client, name))["active_slots"] for name in "ab"] == [0, 0]
    again = await client.post(f"{V2}/decrement-with-lease", json={"lease_id": lease_id})
    assert again.status_code == 204
    assert [(await _read(client, name))["active_slots"] for name in "ab"] == [0, 0]


async def test_bad_holders_and_durations_are_refused(client: httpx.AsyncClient) -> None:
    await _create(client, "db", 1)
    for body in (
        {"holder": {"type": "worker", "id": str(uuid.uuid4())}},
        {"holder": {"type": "task_run", "id": "x"}},
        {"lease_duration": 59},
        {"lease_duration": 86401},
        {"mode": "other"},
    ):
        assert (await _lease(client, ["db"], **body)).status_code == 422, body
    assert (await _read(client, "db"))["active_slots"] == 0


async def _age(database: Database, name: str, seconds: float) -> None:
    """Pretend the limit was last updated ``seconds`` ago."""
    async with database.write() as conn:
        await conn.execute(
            update(t.concurrency_limit_v2)
            .where(t.concurrency_limit_v2.c.name == name)
            .values(updated=now() - dt.timedelta(seconds=seconds))
        )


async def test_rate_limits_decay_and_need_decay(
    client: httpx.AsyncClient, database: Database
) -> None:
    await _create(client, "api", 4, slot_decay_per_second=2.0)
    body = {"names": ["api"], "slots": 4, "mode": "rate_limit"}
    assert (await client.post(f"{V2}/increment", json=body)).status_code == 200
    refused = await client.post(f"{V2}/increment", json={**body, "slots": 1})
    assert refused.status_code == 423
    # one more slot waited for, at 2 per second: about half a second
    assert 0 < float(refused.headers["retry-after"]) <= 1.3 * 1.0
    await _age(database, "api", 1.2)  # floor(2 * 1.2) = 2 slots decayed
    assert (await _read(client, "api"))["active_slots"] == 2
    filtered = (await client.post(f"{V2}/filter", json={})).json()
    assert filtered[0]["active_slots"] == 2
    assert (await client.post(f"{V2}/increment", json={**body, "slots": 2})).status_code == 200
    stored = await _stored(database, "api")
    assert stored.active_slots == 4
    # changing the limit keeps the decay that happened up to then
    await _age(database, "api", 1.0)
    await client.patch(f"{V2}/api", json={"limit": 5})
    assert (await _stored(database, "api")).active_slots == 2


async def test_retry_after_is_jittered_around_the_average() -> None:
    draws = [clamped_poisson_interval(10.0) for _ in range(2000)]
    assert max(draws) <= 13.0
    assert min(draws) > 0
    assert 8.5 < sum(draws) / len(draws) < 11.5
    assert clamped_poisson_interval(0) == 0.0


# --- races --------------------------------------------------------------------------------


async def test_concurrent_increments_never_exceed_the_limit(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    await _create(client, "a", 5)
    await _create(client, "b", 7)
    other = Database(settings)  # a second process's engine on the same file
    try:
        results = await asyncio.gather(
            *(_lease(client, ["a", "b"]) for _ in range(30)),
            *(_taken_directly(other, ["a", "b"]) for _ in range(30)),
        )
    finally:
        await other.dispose()
    granted = [r for r in results if r is True or getattr(r, "status_code", 0) == 200]
    refused = [r for r in results if r is False or getattr(r, "status_code", 0) == 423]
    assert (len(granted), len(refused)) == (5, 55)
    assert (await _read(client, "a"))["active_slots"] == 5
    assert (await _read(client, "b"))["active_slots"] == 5
    async with database.read() as conn:
        rows = await conn.execute(select(func.count()).select_from(t.concurrency_lease))
        assert rows.scalar_one() == 10  # 5 leases, each over both limits


async def _taken_directly(database: Database, names: list[str]) -> bool:
    async with database.write() as conn:
        acquisition, _ = await leases.acquire_with_lease(
            conn, names, 1, "concurrency", 300, None, now=now()
        )
    return acquisition.taken


async def _hold_and_release(
    url: str, names: list[str], attempts: int, holding: list[int], peak: list[int]
) -> int:
    """Try ``attempts`` times to take a lease, hold it briefly, release it; count the wins."""
    wins = 0
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(attempts):
            response = await client.post(
                f"{V2}/increment-with-lease", json={"names": names, "slots": 1}
            )
            if response.status_code == 423:
                await asyncio.sleep(0.005)
                continue
            assert response.status_code == 200, response.text
            wins += 1
            holding[0] += 1
            peak[0] = max(peak[0], holding[0])
            await asyncio.sleep(0.01)
            holding[0] -= 1
            lease_id = response.json()["lease_id"]
            released = await client.post(f"{V2}/decrement-with-lease", json={"lease_id": lease_id})
            assert released.status_code == 204
    return wins


def test_two_processes_never_grant_more_than_the_limit(tmp_path: Path, database_url: str) -> None:
    with (
        deputy_server(tmp_path, database_url) as first,
        deputy_server(tmp_path, database_url) as second,
    ):
        for name, limit in (("tag:a", 3), ("tag:b", 4)):
            created = httpx.post(f"{first.url}{V2}/", json={"name": name, "limit": limit})
            assert created.status_code == 201

        async def race() -> tuple[int, int]:
            holding, peak = [0], [0]
            urls = [first.url, second.url] * 4
            wins = await asyncio.gather(
                *(_hold_and_release(url, ["tag:a", "tag:b"], 8, holding, peak) for url in urls)
            )
            return sum(wins), peak[0]

        wins, peak = asyncio.run(race())
        slots = [
            httpx.get(f"{second.url}{V2}/{name}").json()["active_slots"]
            for name in ("tag:a", "tag:b")
        ]
    assert wins > 0
    assert peak <= 3
    assert slots == [0, 0]


# --- v1: tag limits -----------------------------------------------------------------------


async def test_v1_create_is_an_upsert_of_the_tag_limit(client: httpx.AsyncClient) -> None:
    created = await client.post(f"{V1}/", json={"tag": "db", "concurrency_limit": 1})
    assert created.status_code == 201
    body = created.json()
    assert (body["tag"], body["concurrency_limit"], body["active_slots"]) == ("db", 1, [])
    changed = await client.post(f"{V1}/", json={"tag": "db", "concurrency_limit": 4})
    assert changed.status_code == 200
    assert (changed.json()["id"], changed.json()["concurrency_limit"]) == (body["id"], 4)
    v2 = await _read(client, "tag:db")
    assert (v2["id"], v2["limit"], v2["active"]) == (body["id"], 4, True)
    extra = await client.post(f"{V1}/", json={"tag": "x", "concurrency_limit": 1, "y": 1})
    assert extra.status_code == 422


async def test_v1_reads_only_tag_limits(client: httpx.AsyncClient) -> None:
    tag = (await client.post(f"{V1}/", json={"tag": "db", "concurrency_limit": 2})).json()
    other = await _create(client, "global", 1)
    await _create(client, "aaa", 1)  # sorts before every tag: must not push them off a page
    by_id = await client.get(f"{V1}/{tag['id']}")
    by_tag = await client.get(f"{V1}/tag/db")
    assert by_id.json() == by_tag.json() == {**tag, "updated": by_id.json()["updated"]}
    for missing in (f"{V1}/{other['id']}", f"{V1}/{uuid.uuid4()}", f"{V1}/tag/global"):
        response = await client.get(missing)
        assert (response.status_code, response.json()) == (
            404,
            {"detail": "Concurrency limit not found"},
        )
    await client.post(f"{V1}/", json={"tag": "cache", "concurrency_limit": 1})
    listed = (await client.post(f"{V1}/filter", json={"limit": 1})).json()
    assert [limit["tag"] for limit in listed] == ["cache"]
    listed = (await client.post(f"{V1}/filter", json={"offset": 1, "limit": None})).json()
    assert [limit["tag"] for limit in listed] == ["db"]


async def test_v1_increment_and_decrement_by_task_run(client: httpx.AsyncClient) -> None:
    await client.post(f"{V1}/", json={"tag": "db", "concurrency_limit": 2})
    await client.post(f"{V1}/", json={"tag": "off", "concurrency_limit": 1})
    await client.patch(f"{V2}/tag:off", json={"active": False})
    runs = [str(uuid.uuid4()) for _ in range(3)]
    for run in runs[:2]:
        taken = await client.post(
            f"{V1}/increment", json={"names": ["db", "off", "none"], "task_run_id": run}
        )
        assert taken.status_code == 200
        assert [(limit["name"], limit["limit"]) for limit in taken.json()] == [("db", 2)]
    full = await client.post(f"{V1}/increment", json={"names": ["db"], "task_run_id": runs[2]})
    assert full.status_code == 423
    assert full.json() == {"detail": "Concurrency limit for the db tag has been reached"}
    assert full.headers["retry-after"] == "10.0"
    read = (await client.get(f"{V1}/tag/db")).json()
    assert sorted(read["active_slots"]) == sorted(runs[:2])
    released = await client.post(
        f"{V1}/decrement",
        json={"names": ["db", "none"], "task_run_id": runs[0], "occupancy_seconds": 1.5},
    )
    assert released.status_code == 200
    assert [limit["name"] for limit in released.json()] == ["tag:db"]
    assert (await client.get(f"{V1}/tag/db")).json()["active_slots"] == [runs[1]]
    assert (await _read(client, "tag:db"))["active_slots"] == 1
    # releasing again (or for a run holding nothing) changes nothing
    await client.post(f"{V1}/decrement", json={"names": ["db"], "task_run_id": runs[0]})
    assert (await _read(client, "tag:db"))["active_slots"] == 1


async def test_v1_zero_limit_would_deadlock(client: httpx.AsyncClient) -> None:
    await client.post(f"{V1}/", json={"tag": "db", "concurrency_limit": 1})
    await client.post(f"{V1}/", json={"tag": "zero", "concurrency_limit": 0})
    response = await client.post(
        f"{V1}/increment", json={"names": ["db", "zero"], "task_run_id": str(uuid.uuid4())}
    )
    assert response.status_code == 423
    assert response.json() == {
        "detail": 'The concurrency limit on tag "zero" is 0 and will deadlock if the task '
        "tries to run again."
    }
    assert "retry-after" not in response.headers
    assert (await _read(client, "tag:db"))["active_slots"] == 0


async def test_v1_reset_keeps_only_the_overrides(client: httpx.AsyncClient) -> None:
    await client.post(f"{V1}/", json={"tag": "db", "concurrency_limit": 2})
    for _ in range(2):
        await client.post(f"{V1}/increment", json={"names": ["db"], "task_run_id": unique("r")})
    reset = await client.post(f"{V1}/tag/db/reset", json={})
    assert (reset.status_code, reset.json()) == (200, None)
    assert (await _read(client, "tag:db"))["active_slots"] == 0
    assert (await client.get(f"{V1}/tag/db")).json()["active_slots"] == []
    keep = [str(uuid.uuid4()) for _ in range(3)]
    await client.post(f"{V1}/tag/db/reset", json={"slot_override": keep})
    assert (await _read(client, "tag:db"))["active_slots"] == 2  # never beyond the limit
    assert (await client.get(f"{V1}/tag/db")).json()["active_slots"] == keep[:2]
    released = await client.post(f"{V1}/decrement", json={"names": ["db"], "task_run_id": keep[0]})
    assert released.status_code == 200
    assert (await _read(client, "tag:db"))["active_slots"] == 1
    missing = await client.post(f"{V1}/tag/none/reset", json={"slot_override": None})
    assert (missing.status_code, missing.json()) == (404, {"detail": "Concurrency limit not found"})


async def test_v1_deletes(client: httpx.AsyncClient) -> None:
    tag = (await client.post(f"{V1}/", json={"tag": "db", "concurrency_limit": 2})).json()
    await client.post(f"{V1}/", json={"tag": "other", "concurrency_limit": 2})
    plain = await _create(client, "plain", 1)
    deleted = await client.delete(f"{V1}/{tag['id']}")
    assert (deleted.status_code, deleted.json()) == (200, None)
    assert (await client.delete(f"{V1}/tag/other")).status_code == 200
    # as in Prefect, delete by id removes any v2 limit
    assert (await client.delete(f"{V1}/{plain['id']}")).status_code == 200
    for path in (f"{V1}/{tag['id']}", f"{V1}/tag/other"):
        response = await client.delete(path)
        assert (response.status_code, response.json()) == (
            404,
            {"detail": "Concurrency limit not found"},
        )


# --- deployment limits share the table ----------------------------------------------------


async def test_deployment_limits_are_v2_limits(client: httpx.AsyncClient) -> None:
    pool = await create_work_pool(client)
    deployment = await create_deployment(client, work_pool_name=pool["name"], concurrency_limit=2)
    name = f"deployment:{deployment['id']}"
    limit = await _read(client, name)
    assert limit["id"] == deployment["global_concurrency_limit"]["id"]
    assert limit["limit"] == 2
    v1 = (await client.post(f"{V1}/filter", json={})).json()
    assert v1 == []


# --- migration ----------------------------------------------------------------------------


def _seed(connection: Connection) -> None:
    at = now()
    limits = [uuid.uuid4(), uuid.uuid4()]
    for index, limit_id in enumerate(limits):
        connection.execute(
            t.concurrency_limit_v2.insert().values(
                id=limit_id, created=at, updated=at, name=f"l{index}", limit=5, active_slots=3
            )
        )
    shared = uuid.uuid4()
    lease = {"created": at, "updated": at, "slots": 2, "expiration": at}
    connection.execute(
        t.concurrency_lease.insert(),
        [
            {**lease, "id": shared, "concurrency_limit_id": limits[0]},
            {**lease, "id": shared, "concurrency_limit_id": limits[1]},
            {**lease, "id": uuid.uuid4(), "concurrency_limit_id": limits[0], "slots": 1},
        ],
    )


async def test_migration_keeps_leases_and_downgrade_gives_shared_ones_back(
    tmp_path: Path,
) -> None:
    database = Database(Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}"))
    script = ScriptDirectory.from_config(migrate.alembic_config())
    before = script.get_revision("0006").down_revision
    assert isinstance(before, str)
    try:
        await migrate.upgrade(database)
        await database.run_sync(_seed)
        await database.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), before))

        def counts(connection: Connection) -> tuple[int, list[int]]:
            leases_left = connection.execute(
                select(func.count()).select_from(t.concurrency_lease)
            ).scalar_one()
            slots = connection.execute(
                select(t.concurrency_limit_v2.c.active_slots).order_by(
                    t.concurrency_limit_v2.c.name
                )
            ).scalars()
            return leases_left, list(slots)

        assert await database.run_sync(counts) == (1, [1, 1])
        await database.run_sync(lambda c: command.upgrade(migrate.alembic_config(c), "0006"))
        assert await database.run_sync(counts) == (1, [1, 1])
    finally:
        await database.dispose()
