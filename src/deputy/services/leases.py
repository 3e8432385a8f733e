"""Concurrency leases: renewed by clients, reclaimed when they expire.

Leases live in the database, so they survive restarts and every server process sees the same
ones. Reclaiming is ``DELETE ... RETURNING``: when several processes run the reaper at once,
each expired lease is deleted, and its slots given back, by exactly one of them.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import delete, func, update
from sqlalchemy.ext.asyncio import AsyncConnection

from deputy.db import tables as t
from deputy.errors import DetailError

_lease = t.concurrency_lease.c
_limit = t.concurrency_limit_v2.c


class LeaseGone(DetailError):
    status_code = 410


async def renew_lease(
    conn: AsyncConnection, lease_id: uuid.UUID, duration_seconds: float, now: dt.datetime
) -> None:
    """Push the lease's expiry ``duration_seconds`` past now; 410 if it expired or is gone."""
    result = await conn.execute(
        update(t.concurrency_lease)
        .where(_lease.id == lease_id, _lease.expiration > now)
        .values(expiration=now + dt.timedelta(seconds=duration_seconds), updated=now)
    )
    if result.rowcount == 0:
        raise LeaseGone("Lease not found - it may have expired or been revoked")


async def reclaim_expired_leases(conn: AsyncConnection, now: dt.datetime, batch: int) -> int:
    """Delete up to ``batch`` expired leases and give their slots back (never below zero)."""
    expired = (
        t.concurrency_lease.select()
        .with_only_columns(_lease.id)
        .where(_lease.expiration <= now)
        .order_by(_lease.expiration)
        .limit(batch)
    )
    deleted = (
        await conn.execute(
            delete(t.concurrency_lease)
            .where(_lease.id.in_(expired.scalar_subquery()))
            .returning(_lease.concurrency_limit_id, _lease.slots)
        )
    ).all()
    freed: dict[uuid.UUID, int] = {}
    for limit_id, slots in deleted:
        freed[limit_id] = freed.get(limit_id, 0) + slots
    floor = func.max if conn.dialect.name == "sqlite" else func.greatest
    for limit_id, slots in freed.items():
        await conn.execute(
            update(t.concurrency_limit_v2)
            .where(_limit.id == limit_id)
            .values(active_slots=floor(_limit.active_slots - slots, 0), updated=now)
        )
    return len(deleted)
