"""Global (v2) concurrency limits: create, read, update, delete, and slots taken and given back.

Whether a slot is free is decided by the database, never by a read followed by a write.
Slots are taken by one conditional statement::

    UPDATE concurrency_limit_v2 SET active_slots = <active after decay> + :n, ...
    WHERE id IN (...) AND active AND <active after decay> + :n <= "limit"

and its row count tells whether every limit had room. When several limits are asked for at
once the statement runs in a savepoint, rolled back unless every one of them had room: a
request takes its slots on all of its limits or on none. Slots given back never go below zero.

Rate limits (``slot_decay_per_second`` > 0) lose ``floor(decay * seconds since updated)``
active slots as time passes; denied slots decay likewise (concurrency limits at one per
average occupancy). Every statement that moves ``updated`` first stores the decayed counts, so
no decay is ever lost. Inactive limits are read and named in answers but never block.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Integer, case, cast, delete, extract, func, literal, select, update
from sqlalchemy.sql.elements import ColumnElement

from deputy.db import tables as t
from deputy.db.types import Timestamp
from deputy.errors import DetailError, NotFound, Unprocessable
from deputy.orchestration.task_policy import TAG_SLOT_WAIT_SECONDS, clamped_poisson_interval
from deputy.schemas.concurrency_limits import (
    TAG_PREFIX,
    ConcurrencyLimitV2Create,
    ConcurrencyLimitV2Update,
)
from deputy.services.events import lifecycle as lifecycle_events

if TYPE_CHECKING:
    from deputy.db.connection import Connection

_limit = t.concurrency_limit_v2.c

LIMIT_NOT_FOUND = "Concurrency Limit not found"
SLOTS_OVER_LIMIT = "Slots requested is greater than the limit"

#: Longest a client is told to wait for a ``tag:`` limit / any other limit without decay
#: (Prefect's ``tag_concurrency_slot_wait_seconds`` and
#: ``maximum_concurrency_slot_wait_seconds`` defaults).
MAX_SLOT_WAIT_SECONDS = 30.0
#: The average occupancy is a moving average over ``limit * OCCUPANCY_SAMPLES`` releases.
OCCUPANCY_SAMPLES = 2
MIN_OCCUPANCY_SECONDS = 0.1

Mode = Literal["concurrency", "rate_limit"]


class Locked(DetailError):
    """423: no slot free now; ``Retry-After`` says when to try again."""

    status_code = 423

    def __init__(self, message: str = "Locked", retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.headers = {"Retry-After": str(retry_after)}


class _NoRoom(Exception):
    """Rolls back the savepoint of an increment that some limit had no room for."""


# --- decay, as SQL ------------------------------------------------------------------------


def _is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def _greatest(conn: Connection, *values: Any) -> ColumnElement[Any]:
    return func.max(*values) if _is_sqlite(conn) else func.greatest(*values)


def _least(conn: Connection, *values: Any) -> ColumnElement[Any]:
    return func.min(*values) if _is_sqlite(conn) else func.least(*values)


def _floor(conn: Connection, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """Floor of a value that is never negative (SQLite's CAST truncates, which is the same)."""
    return cast(value, Integer) if _is_sqlite(conn) else func.floor(value)


def _seconds_since_updated(conn: Connection, at: dt.datetime) -> ColumnElement[Any]:
    moment = literal(at, Timestamp())
    if _is_sqlite(conn):
        elapsed = (func.julianday(moment) - func.julianday(_limit.updated)) * 86400.0
    else:
        elapsed = extract("epoch", moment - _limit.updated)
    return _greatest(conn, elapsed, 0.0)


def active_after_decay(conn: Connection, at: dt.datetime) -> ColumnElement[Any]:
    decayed = _limit.active_slots - _floor(
        conn, _limit.slot_decay_per_second * _seconds_since_updated(conn, at)
    )
    return _greatest(conn, decayed, 0)


def denied_after_decay(conn: Connection, at: dt.datetime) -> ColumnElement[Any]:
    """Denied slots fade at the decay rate, or for a concurrency limit at one per average
    occupancy (capped like the wait a client is told)."""
    longest_wait = case(
        (func.substr(_limit.name, 1, len(TAG_PREFIX)) == TAG_PREFIX, TAG_SLOT_WAIT_SECONDS),
        else_=MAX_SLOT_WAIT_SECONDS,
    )
    occupancy = _greatest(
        conn, MIN_OCCUPANCY_SECONDS, _least(conn, _limit.avg_slot_occupancy_seconds, longest_wait)
    )
    rate = case(
        (_limit.slot_decay_per_second > 0.0, _limit.slot_decay_per_second),
        else_=1.0 / occupancy,
    )
    decayed = _limit.denied_slots - _floor(conn, rate * _seconds_since_updated(conn, at))
    return _greatest(conn, decayed, 0)


def touched(conn: Connection, at: dt.datetime) -> dict[str, Any]:
    """Values that move ``updated`` to ``at`` without losing the decay up to then."""
    return {
        "active_slots": active_after_decay(conn, at),
        "denied_slots": denied_after_decay(conn, at),
        "updated": at,
    }


# --- reading ------------------------------------------------------------------------------


def _where(id_or_name: uuid.UUID | str) -> ColumnElement[bool]:
    """A UUID names a limit by id (as in Prefect, a limit named like a UUID is read by id)."""
    if isinstance(id_or_name, str):
        try:
            id_or_name = uuid.UUID(id_or_name)
        except ValueError:
            return _limit.name == id_or_name
    return _limit.id == id_or_name


def _with_decay(conn: Connection, at: dt.datetime) -> Any:
    """Limit rows as answered: ``active_slots`` after decay."""
    return select(
        _limit.id,
        _limit.created,
        _limit.updated,
        _limit.active,
        _limit.name,
        _limit.limit,
        active_after_decay(conn, at).label("active_slots"),
        _limit.slot_decay_per_second,
    )


async def read_limit(conn: Connection, id_or_name: uuid.UUID | str, *, now: dt.datetime) -> Any:
    row = (await conn.execute(_with_decay(conn, now).where(_where(id_or_name)))).first()
    if row is None:
        raise NotFound(LIMIT_NOT_FOUND)
    return row


async def read_limits(conn: Connection, *, offset: int, limit: int, now: dt.datetime) -> list[Any]:
    query = _with_decay(conn, now).order_by(_limit.name).offset(offset).limit(limit)
    return list((await conn.execute(query)).all())


async def read_limits_by_name(
    conn: Connection, names: list[str], at: dt.datetime, *, lock: bool = False
) -> list[Any]:
    """The limits with these names (in id order, locked on PostgreSQL when ``lock``), with
    their active slots after decay as ``decayed_active``."""
    query = (
        select(t.concurrency_limit_v2, active_after_decay(conn, at).label("decayed_active"))
        .where(_limit.name.in_(list(dict.fromkeys(names))))
        .order_by(_limit.id)
    )
    if lock and not _is_sqlite(conn):
        query = query.with_for_update(of=t.concurrency_limit_v2)
    return list((await conn.execute(query)).all())


# --- create, update, delete ---------------------------------------------------------------


async def create_limit(
    conn: Connection, body: ConcurrencyLimitV2Create, *, now: dt.datetime
) -> Any:
    """Insert the limit; a name already taken is the integrity conflict (409)."""
    insert = (
        t.concurrency_limit_v2.insert()
        .values(
            id=uuid.uuid4(),
            created=now,
            updated=now,
            avg_slot_occupancy_seconds=2.0,
            **body.model_dump(),
        )
        .returning(*t.concurrency_limit_v2.c)
    )
    row = (await conn.execute(insert)).one()
    lifecycle_events.global_limit_changed("created", row, now=now)
    return row


async def update_limit(
    conn: Connection,
    id_or_name: uuid.UUID | str,
    body: ConcurrencyLimitV2Update,
    *,
    now: dt.datetime,
) -> None:
    """Change the keys sent (an explicit null on a required column is a 409, as in Prefect)."""
    values = {**touched(conn, now), **body.model_dump(exclude_unset=True)}
    values["updated"] = now
    statement = update(t.concurrency_limit_v2).where(_where(id_or_name)).values(**values)
    row = (await conn.execute(statement.returning(*t.concurrency_limit_v2.c))).first()
    if row is None:
        raise NotFound(LIMIT_NOT_FOUND)
    lifecycle_events.global_limit_changed("updated", row, now=now)


async def delete_limit(
    conn: Connection,
    id_or_name: uuid.UUID | str,
    *,
    not_found: str = LIMIT_NOT_FOUND,
    now: dt.datetime,
) -> None:
    """Delete the limit; its leases go with it (a deployment using it is left without)."""
    statement = delete(t.concurrency_limit_v2).where(_where(id_or_name))
    row = (await conn.execute(statement.returning(*t.concurrency_limit_v2.c))).first()
    if row is None:
        raise NotFound(not_found)
    lifecycle_events.global_limit_changed("deleted", row, now=now)


# --- slots --------------------------------------------------------------------------------


async def increment(
    conn: Connection, limit_ids: list[uuid.UUID], slots: int, at: dt.datetime
) -> bool:
    """Take ``slots`` on every one of these (active) limits, or on none; True when taken."""
    if not limit_ids:
        return True
    taken = active_after_decay(conn, at) + slots
    statement = (
        update(t.concurrency_limit_v2)
        .where(_limit.id.in_(limit_ids), _limit.active.is_(True), taken <= _limit.limit)
        .values(active_slots=taken, denied_slots=denied_after_decay(conn, at), updated=at)
    )
    if len(limit_ids) == 1:
        return bool((await conn.execute(statement)).rowcount == 1)
    try:
        async with conn.begin_nested():
            if (await conn.execute(statement)).rowcount != len(limit_ids):
                raise _NoRoom
    except _NoRoom:
        return False
    return True


async def give_back(
    conn: Connection,
    limit_ids: list[uuid.UUID],
    slots: int,
    at: dt.datetime,
    *,
    occupancy_seconds: float | None = None,
    only_active: bool = True,
) -> None:
    """Return ``slots`` to these limits (never below zero); a positive ``occupancy_seconds``
    moves each limit's average slot occupancy towards it."""
    if not limit_ids or slots <= 0:
        return
    values = touched(conn, at)
    values["active_slots"] = _greatest(conn, active_after_decay(conn, at) - slots, 0)
    if occupancy_seconds:
        per_slot = max(occupancy_seconds / slots, MIN_OCCUPANCY_SECONDS)
        samples = _limit.limit * OCCUPANCY_SAMPLES
        average = _limit.avg_slot_occupancy_seconds
        values["avg_slot_occupancy_seconds"] = case(
            (_limit.limit > 0, average + per_slot / samples - average / samples),
            else_=average,
        )
    statement = update(t.concurrency_limit_v2).where(_limit.id.in_(limit_ids))
    if only_active:
        statement = statement.where(_limit.active.is_(True))
    await conn.execute(statement.values(**values))


@dataclass
class Acquisition:
    """What an increment found: every limit named (active or not), and whether their slots
    were taken; when not, how long the client should wait."""

    limits: list[Any]
    retry_after: float | None = None

    @property
    def taken(self) -> bool:
        return self.retry_after is None


async def acquire(
    conn: Connection, names: list[str], slots: int, mode: Mode, at: dt.datetime
) -> Acquisition:
    """Take ``slots`` on every active limit named. Names without a limit are skipped, so a
    request naming none takes nothing and succeeds (the task engine relies on that).

    When some limit has no room, nothing is taken, the refusal is counted in the limits'
    ``denied_slots`` (so the caller must commit) and ``retry_after`` is set.
    """
    limits = await read_limits_by_name(conn, names, at, lock=True)
    active = [row for row in limits if row.active]
    if any(row.limit < slots for row in active):
        raise Unprocessable(SLOTS_OVER_LIMIT)
    if mode == "rate_limit":
        non_decaying = [row.name for row in active if row.slot_decay_per_second == 0.0]
        if non_decaying:
            raise Unprocessable(
                "Only concurrency limits with slot decay can be used for rate limiting. The "
                "following limits do not have a decay configured: "
                f"{','.join(non_decaying)!r}"
            )
    active_ids = [row.id for row in active]
    if await increment(conn, active_ids, slots, at):
        return Acquisition(limits)
    denied = {**touched(conn, at), "denied_slots": denied_after_decay(conn, at) + slots}
    await conn.execute(
        update(t.concurrency_limit_v2)
        .where(_limit.id.in_(active_ids), _limit.active.is_(True))
        .values(**denied)
    )
    return Acquisition(limits, retry_after=_retry_after(active, slots))


async def decrement(
    conn: Connection,
    names: list[str],
    slots: int,
    occupancy_seconds: float | None,
    *,
    now: dt.datetime,
) -> list[Any]:
    """Give ``slots`` back to every active limit named; answers every limit named."""
    limits = await read_limits_by_name(conn, names, now)
    await give_back(
        conn,
        [row.id for row in limits if row.active],
        slots,
        now,
        occupancy_seconds=occupancy_seconds,
    )
    return limits


def _retry_after(active: list[Any], slots: int) -> float:
    """Prefect's estimate of when a slot frees up, from the most crowded limit, with jitter."""

    def crowding(row: Any) -> float:
        waiting = float(slots + row.denied_slots)
        return waiting if row.slot_decay_per_second > 0 else waiting / row.limit

    worst = max(active, key=crowding)
    if worst.slot_decay_per_second > 0:
        average = crowding(worst) / worst.slot_decay_per_second
    else:
        longest = (
            TAG_SLOT_WAIT_SECONDS if worst.name.startswith(TAG_PREFIX) else MAX_SLOT_WAIT_SECONDS
        )
        per_slot = min(worst.avg_slot_occupancy_seconds, longest)
        average = min(per_slot * crowding(worst), longest)
    return clamped_poisson_interval(average)
