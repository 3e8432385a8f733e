"""The v1 tag concurrency limits, served on top of v2 limits named ``tag:<tag>``, as Prefect 3
does: a tag limit is that v2 limit, a slot is a lease held by a task run.

The v1 answers show ``active_slots`` as the task runs holding a live lease on the limit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, update

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.errors import NotFound
from deputy.orchestration.task_policy import TAG_SLOT_WAIT_SECONDS
from deputy.schemas.concurrency_limits import (
    TAG_PREFIX,
    minimal_limit_to_wire,
    tag_limit_to_wire,
)
from deputy.services.concurrency import leases
from deputy.services.concurrency import limits as concurrency_limits
from deputy.services.events import lifecycle as lifecycle_events

if TYPE_CHECKING:
    from deputy.db.connection import Connection

_limit = t.concurrency_limit_v2.c
_lease = t.concurrency_lease.c

TAG_LIMIT_NOT_FOUND = "Concurrency limit not found"


def _tag_name(tag: str) -> str:
    return f"{TAG_PREFIX}{tag}"


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


async def _with_holders(
    conn: Connection, rows: list[Any], *, now: dt.datetime
) -> list[dict[str, Any]]:
    holders = await leases.task_run_holders(conn, [row.id for row in rows], now)
    return [tag_limit_to_wire(row, holders[row.id]) for row in rows]


async def upsert_tag_limit(
    conn: Connection, tag: str, limit: int, *, now: dt.datetime
) -> tuple[Any, bool]:
    """Create ``tag:<tag>`` or change its limit, in one statement; True when created."""
    proposed = uuid.uuid4()
    upsert = (
        insert_on_conflict(conn.dialect.name, t.concurrency_limit_v2)
        .values(
            id=proposed,
            created=now,
            updated=now,
            name=_tag_name(tag),
            limit=limit,
            active=True,
            active_slots=0,
            denied_slots=0,
            slot_decay_per_second=0.0,
            avg_slot_occupancy_seconds=2.0,
        )
        .on_conflict_do_update(index_elements=["name"], set_={"limit": limit, "updated": now})
        .returning(*t.concurrency_limit_v2.c)
    )
    row = (await conn.execute(upsert)).one()
    created = row.id == proposed
    # Prefect's v1 routes write v2 limits, and so emit the v2 lifecycle events.
    lifecycle_events.global_limit_changed("created" if created else "updated", row, now=now)
    return (await _with_holders(conn, [row], now=now))[0], created


async def _read_tag_row(conn: Connection, tag: str) -> Any:
    query = t.concurrency_limit_v2.select().where(_limit.name == _tag_name(tag))
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(TAG_LIMIT_NOT_FOUND)
    return row


async def read_tag_limit(conn: Connection, tag: str, *, now: dt.datetime) -> dict[str, Any]:
    return (await _with_holders(conn, [await _read_tag_row(conn, tag)], now=now))[0]


async def read_tag_limit_by_id(
    conn: Connection, limit_id: uuid.UUID, *, now: dt.datetime
) -> dict[str, Any]:
    """Only ``tag:`` limits are v1 limits; any other id is not found."""
    query = t.concurrency_limit_v2.select().where(_limit.id == limit_id)
    row = (await conn.execute(query)).first()
    if row is None or not row.name.startswith(TAG_PREFIX):
        raise NotFound(TAG_LIMIT_NOT_FOUND)
    return (await _with_holders(conn, [row], now=now))[0]


async def read_tag_limits(
    conn: Connection, *, offset: int, limit: int, now: dt.datetime
) -> list[dict[str, Any]]:
    """``tag:`` limits in name order (a range on the unique name index: ';' follows ':')."""
    query = (
        t.concurrency_limit_v2.select()
        .where(_limit.name >= TAG_PREFIX, _limit.name < TAG_PREFIX[:-1] + ";")
        .order_by(_limit.name)
        .offset(offset)
        .limit(limit)
    )
    return await _with_holders(conn, list((await conn.execute(query)).all()), now=now)


async def reset_tag_limit(
    conn: Connection, tag: str, slot_override: list[uuid.UUID] | None, *, now: dt.datetime
) -> None:
    """Drop every lease on the limit and count only the task runs in ``slot_override`` (as
    many as the limit allows), each holding a new lease."""
    row = await _read_tag_row(conn, tag)
    await conn.execute(delete(t.concurrency_lease).where(_lease.concurrency_limit_id == row.id))
    holders = _unique(slot_override or [])[: max(row.limit, 0)]
    for task_run_id in holders:
        await leases.create_lease(
            conn,
            [(row.id, 1)],
            leases.V1_LEASE_SECONDS,
            {"type": "task_run", "id": str(task_run_id)},
            now,
        )
    values = {**concurrency_limits.touched(conn, now), "active_slots": len(holders)}
    await conn.execute(update(t.concurrency_limit_v2).where(_limit.id == row.id).values(**values))


async def delete_tag_limit(conn: Connection, tag: str, *, now: dt.datetime) -> None:
    await concurrency_limits.delete_limit(
        conn, _tag_name(tag), not_found=TAG_LIMIT_NOT_FOUND, now=now
    )


async def delete_limit_by_id(conn: Connection, limit_id: uuid.UUID, *, now: dt.datetime) -> None:
    """Any v2 limit, tag or not, as Prefect's v1 delete does."""
    await concurrency_limits.delete_limit(conn, limit_id, not_found=TAG_LIMIT_NOT_FOUND, now=now)


async def increment_tags(
    conn: Connection, tags: list[str], task_run_id: uuid.UUID, *, now: dt.datetime
) -> list[dict[str, Any]]:
    """Take one slot on every active tag limit for the task run, under one lease that never
    expires; nothing is taken when any limit is full (423) or zero (423, it would deadlock)."""
    tags = _unique(tags)
    rows = await concurrency_limits.read_limits_by_name(
        conn, [_tag_name(tag) for tag in tags], now, lock=True
    )
    by_name = {row.name: row for row in rows}
    for tag in tags:
        row = by_name.get(_tag_name(tag))
        if row is not None and row.limit == 0:
            raise concurrency_limits.Locked(
                f'The concurrency limit on tag "{tag}" is 0 and will deadlock if the task '
                "tries to run again."
            )
    taking = [
        by_name[_tag_name(tag)]
        for tag in tags
        if _tag_name(tag) in by_name and by_name[_tag_name(tag)].active
    ]
    if not taking:
        return []
    if not await concurrency_limits.increment(conn, [row.id for row in taking], 1, now):
        full = next((row for row in taking if row.decayed_active + 1 > row.limit), taking[0])
        raise concurrency_limits.Locked(
            f"Concurrency limit for the {full.name.removeprefix(TAG_PREFIX)} tag has been reached",
            retry_after=TAG_SLOT_WAIT_SECONDS,
        )
    await leases.create_lease(
        conn,
        [(row.id, 1) for row in taking],
        leases.V1_LEASE_SECONDS,
        {"type": "task_run", "id": str(task_run_id)},
        now,
    )
    return [minimal_limit_to_wire(row, row.name.removeprefix(TAG_PREFIX)) for row in taking]


async def decrement_tags(
    conn: Connection, tags: list[str], task_run_id: uuid.UUID, *, now: dt.datetime
) -> list[dict[str, Any]]:
    """Release every lease the task run holds on these tags' limits; answers the limits
    found (named ``tag:<tag>`` here, as Prefect answers)."""
    rows = await concurrency_limits.read_limits_by_name(conn, [_tag_name(tag) for tag in tags], now)
    if rows:
        held = await leases.leases_held_by(conn, [row.id for row in rows], task_run_id)
        for lease_id in held:
            await leases.release_lease(conn, lease_id, record_occupancy=False, now=now)
    return [minimal_limit_to_wire(row) for row in rows]
