"""The background loops a server process runs beside the API.

Each loop is one small function called every N seconds. Every one of them is safe to run in
several server processes at once: their writes are decided under row locks or by
``DELETE ... RETURNING``, so no piece of work is done twice. A failing pass is logged and
retried on the next tick; it never affects API requests. Each pass reads the app's clock and
hands the reading to the services it calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from deputy.db.engine import Database
from deputy.services.common import Clock
from deputy.services.concurrency import leases
from deputy.services.flow_runs import late as late_runs
from deputy.services.scheduler import Horizon, run_scheduler
from deputy.services.work_pools import workers
from deputy.settings import Settings

logger = logging.getLogger("deputy.services")

#: Most items one pass handles, so a backlog is worked off in bounded transactions.
BATCH_SIZE = 200


@dataclass(frozen=True)
class Loop:
    name: str
    interval_seconds: float
    run_once: Callable[[Database], Awaitable[int]]


def loops(settings: Settings, clock: Clock) -> list[Loop]:
    """The loops this process runs, with their configured intervals."""

    async def late(database: Database) -> int:
        return await late_runs.mark_late_runs(
            database, now=clock(), after_seconds=settings.late_runs_after_seconds, batch=BATCH_SIZE
        )

    async def expired_leases(database: Database) -> int:
        async with database.write() as conn:
            return await leases.reclaim_expired_leases(conn, now=clock(), batch=BATCH_SIZE)

    async def statuses(database: Database) -> int:
        """Workers past their heartbeats go OFFLINE; unpolled queues and deployments NOT_READY."""
        async with database.write() as conn:
            now = clock()
            offline = await workers.mark_offline_workers(conn, now=now)
            return offline + await workers.mark_unpolled_not_ready(conn, now=now)

    horizon = Horizon.from_settings(settings)

    async def scheduler(database: Database) -> int:
        return await run_scheduler(database, horizon, batch=BATCH_SIZE, clock=clock)

    return [
        Loop("scheduler", settings.scheduler_interval_seconds, scheduler),
        Loop("late runs", settings.late_runs_interval_seconds, late),
        Loop("concurrency lease reaper", settings.lease_reaper_interval_seconds, expired_leases),
        Loop("worker status", settings.worker_status_interval_seconds, statuses),
    ]


async def run_forever(loop: Loop, database: Database) -> None:
    """Call ``loop.run_once`` every interval until cancelled; errors are logged, not raised."""
    while True:
        try:
            done = await loop.run_once(database)
            if done:
                logger.info("%s: %d handled", loop.name, done)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s pass failed; retrying next interval", loop.name)
        await asyncio.sleep(loop.interval_seconds)


def start(settings: Settings, database: Database, clock: Clock) -> list[asyncio.Task[None]]:
    if not settings.services_enabled:
        return []
    return [
        asyncio.create_task(run_forever(loop, database), name=f"deputy: {loop.name}")
        for loop in loops(settings, clock)
    ]


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
