"""Marking overdue scheduled runs "Late", as Prefect's late-runs service does.

One indexed query finds the candidates (cheap when there are none); each is then moved to
SCHEDULED "Late" through the normal orchestration rules under its row lock, so two server
processes doing this at once write each Late state only once (the second is refused with
"This flow run is already marked late.").
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.orchestration.states import StateDraft
from deputy.schemas.core import StateType
from deputy.services.flow_runs import set_state

_run = t.flow_run.c


async def mark_late_runs(
    database: Database, now: dt.datetime, *, after_seconds: float, batch: int
) -> int:
    """Mark up to ``batch`` runs overdue by ``after_seconds`` Late; returns how many."""
    overdue = (
        select(_run.id)
        .where(
            _run.state_type == StateType.SCHEDULED.value,
            _run.state_name == "Scheduled",
            _run.next_scheduled_start_time <= now - dt.timedelta(seconds=after_seconds),
        )
        .order_by(_run.next_scheduled_start_time)
        .limit(batch)
    )
    async with database.read() as conn:
        candidates = list((await conn.execute(overdue)).scalars())
    if not candidates:
        return 0
    marked = 0
    async with database.write() as conn:
        for run_id in candidates:
            row = await set_state.read_run_for_update(conn, run_id)
            if row is None or row.next_scheduled_start_time is None:
                continue
            late = StateDraft.of(
                StateType.SCHEDULED,
                now,
                name="Late",
                details={"scheduled_time": row.next_scheduled_start_time},
            )
            result = await set_state.orchestrate(
                conn, row, late, force=False, client_version=None, now=now
            )
            marked += int(result.created)
    return marked
