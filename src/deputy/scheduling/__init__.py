"""When schedules fire: run times of interval, cron and RRule schedules, as Prefect 3.9.1's
server computes them (on Python 3.11/3.12), DST behaviour included. Pure functions: no
database, no web framework.

Each kind's module is imported when a schedule of that kind is first computed: they load
whenever, croniter or dateutil, which a server without schedules never needs.
"""

from __future__ import annotations

import datetime as dt

from deputy.scheduling.local import MAX_CANDIDATES, as_aware
from deputy.schemas.schedules import CronSchedule, IntervalSchedule, Schedule

__all__ = ["MAX_CANDIDATES", "schedule_times"]


def schedule_times(
    schedule: Schedule, *, start: dt.datetime, end: dt.datetime | None = None, count: int
) -> list[dt.datetime]:
    """At most ``count`` run times at or after ``start`` and, when given, at or before
    ``end``: distinct, ascending, timezone-aware UTC. Naive bounds are read as UTC.

    Like Prefect, a schedule looks at no more than about 1,000 candidate times per call, so a
    very sparse match far away, or a very large ``count``, yields fewer times.
    """
    if count < 1:
        return []
    first = as_aware(start)
    last = as_aware(end) if end is not None else None
    if isinstance(schedule, IntervalSchedule):
        from deputy.scheduling.interval import interval_times

        times = interval_times(schedule, first, last, count)
    elif isinstance(schedule, CronSchedule):
        from deputy.scheduling.cron import cron_times

        times = cron_times(schedule, first, last, count)
    else:
        from deputy.scheduling.rrule import rrule_times

        times = rrule_times(schedule, first, last, count)
    return sorted({moment.astimezone(dt.UTC) for moment in times})
