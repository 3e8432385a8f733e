"""Concurrency leases: taken with slots, renewed by clients, released, reclaimed on expiry.

Leases live in the database, so they survive restarts and every server process sees the same
ones. A lease is one ``concurrency_lease`` row per limit it holds slots on, all sharing the
lease's id (the key is ``(id, concurrency_limit_id)``): renewing, releasing and reaping work on
the id and so on every limit of the lease at once. Releasing and reclaiming are
``DELETE ... RETURNING``: whoever deletes a lease's rows gives its slots back, exactly once,
however many processes release or reap it at the same moment.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from deputy.db import tables as t
from deputy.db.dialect import greatest
from deputy.errors import DetailError
from deputy.services.concurrency import limits as concurrency_limits

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from deputy.db.connection import Connection

_lease = t.concurrency_lease.c
_limit = t.concurrency_limit_v2.c


class LeaseGone(DetailError):
    status_code = 410


async def renew_lease(
    conn: Connection, lease_id: uuid.UUID, duration_seconds: float, now: dt.datetime
) -> None:
    """Push the lease's expiry ``duration_seconds`` past now; 410 if it expired or is gone."""
    result = await conn.execute(
        update(t.concurrency_lease)
        .where(_lease.id == lease_id, _lease.expiration > now)
        .values(expiration=now + dt.timedelta(seconds=duration_seconds), updated=now)
    )
    if result.rowcount == 0:
        raise LeaseGone("Lease not found - it may have expired or been revoked")


async def reclaim_expired_leases(conn: Connection, now: dt.datetime, batch: int) -> int:
    """Delete up to ``batch`` expired leases and give their slots back (never below zero)."""
    expired = (
        t.concurrency_lease.select()
        .with_only_columns(_lease.id)
        .where(_lease.expiration <= now)
        .order_by(_lease.expiration)
        .limit(batch)
    )
    return await give_back_leases(conn, now, _lease.id.in_(expired.scalar_subquery()))


async def give_back_leases(conn: Connection, at: dt.datetime, *where: ColumnElement[bool]) -> int:
    """Delete the lease rows matching ``where`` and give their slots back, one UPDATE per
    limit, never below zero; the number of rows deleted. ``DELETE ... RETURNING`` makes
    whoever deletes a row the one who gives its slots back."""
    deleted = (
        await conn.execute(
            delete(t.concurrency_lease)
            .where(*where)
            .returning(_lease.concurrency_limit_id, _lease.slots)
        )
    ).all()
    freed: dict[uuid.UUID, int] = {}
    for limit_id, slots in deleted:
        freed[limit_id] = freed.get(limit_id, 0) + slots
    for limit_id, slots in freed.items():
        await conn.execute(
            update(t.concurrency_limit_v2)
            .where(_limit.id == limit_id)
            .values(active_slots=greatest(conn, _limit.active_slots - slots, 0), updated=at)
        )
    return len(deleted)


#: Leases taken through the v1 tag API: its clients never renew, so they last about a century.
V1_LEASE_SECONDS = 100 * 365 * 86400.0


async def create_lease(
    conn: Connection,
    holdings: list[tuple[uuid.UUID, int]],
    duration_seconds: float,
    holder: dict[str, Any] | None,
    at: dt.datetime,
) -> uuid.UUID:
    """A lease holding ``slots`` on each ``(limit id, slots)``; slots must already be taken."""
    lease_id = uuid.uuid4()
    expiration = at + dt.timedelta(seconds=duration_seconds)
    rows = [
        {
            "id": lease_id,
            "created": at,
            "updated": at,
            "concurrency_limit_id": limit_id,
            "slots": slots,
            "expiration": expiration,
            "holder": holder,
        }
        for limit_id, slots in holdings
    ]
    if rows:
        await conn.execute(t.concurrency_lease.insert(), rows)
    return lease_id


async def acquire_with_lease(
    conn: Connection,
    names: list[str],
    slots: int,
    mode: concurrency_limits.Mode,
    duration_seconds: float,
    holder: dict[str, Any] | None,
    *,
    now: dt.datetime,
) -> tuple[concurrency_limits.Acquisition, uuid.UUID]:
    """Take the slots and a lease over every limit named.

    Inactive limits are part of the lease with no slots, so the client (told about them, as
    Prefect tells it) can renew and release the lease as usual. When no limit is named there
    is nothing to hold: a lease id is answered but nothing is stored.
    """
    acquisition = await concurrency_limits.acquire(conn, names, slots, mode, now)
    if not acquisition.taken or not acquisition.limits:
        return acquisition, uuid.uuid4()
    holdings = [(row.id, slots if row.active else 0) for row in acquisition.limits]
    lease_id = await create_lease(conn, holdings, duration_seconds, holder, now)
    return acquisition, lease_id


async def release_lease(
    conn: Connection, lease_id: uuid.UUID, *, record_occupancy: bool = True, now: dt.datetime
) -> bool:
    """Delete the lease and give its slots back, with how long they were held as the
    occupancy; False when there was no such lease (already released or reclaimed)."""
    released = (
        await conn.execute(
            delete(t.concurrency_lease)
            .where(_lease.id == lease_id)
            .returning(_lease.concurrency_limit_id, _lease.slots, _lease.created)
        )
    ).all()
    for row in released:
        occupancy = (now - row.created).total_seconds() if record_occupancy else None
        await concurrency_limits.give_back(
            conn,
            [row.concurrency_limit_id],
            row.slots,
            now,
            occupancy_seconds=occupancy,
            only_active=False,
        )
    return bool(released)


async def task_run_holders(
    conn: Connection, limit_ids: list[uuid.UUID], at: dt.datetime
) -> dict[uuid.UUID, list[str]]:
    """For each limit, the task runs holding a live lease on it, oldest first."""
    holders: dict[uuid.UUID, list[str]] = {limit_id: [] for limit_id in limit_ids}
    if not limit_ids:
        return holders
    rows = await conn.execute(
        select(_lease.concurrency_limit_id, _lease.holder)
        .where(_lease.concurrency_limit_id.in_(limit_ids), _lease.expiration > at)
        .order_by(_lease.created)
    )
    for limit_id, holder in rows:
        if isinstance(holder, dict) and holder.get("type") == "task_run" and holder.get("id"):
            holders[limit_id].append(str(holder["id"]))
    return holders


async def leases_held_by(
    conn: Connection, limit_ids: list[uuid.UUID], holder_id: uuid.UUID
) -> list[uuid.UUID]:
    """The leases on any of these limits whose holder has this id."""
    rows = await conn.execute(
        select(_lease.id)
        .where(
            _lease.concurrency_limit_id.in_(limit_ids),
            _lease.holder["id"].as_string() == str(holder_id),
        )
        .distinct()
    )
    return list(rows.scalars())
