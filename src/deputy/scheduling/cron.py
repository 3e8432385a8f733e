"""Cron schedules: the wall-clock times a cron expression names, in the schedule's timezone.

As Prefect 3.9.1: croniter walks local wall times; a time that falls in a spring-forward gap
runs at the same offset as before it (02:30 becomes 03:30 EDT), a repeated fall-back time
runs once, at its first occurrence. Times are de-duplicated as instants.
"""

from __future__ import annotations

import datetime as dt
import heapq
import zoneinfo
from collections.abc import Iterator
from itertools import islice, takewhile

from whenever import ZonedDateTime

from deputy.scheduling.local import MAX_CANDIDATES, utc, wall, zone
from deputy.schemas.schedules import CronSchedule

_SECOND = dt.timedelta(seconds=1)


def _wall_times(schedule: CronSchedule, after: dt.datetime) -> Iterator[dt.datetime]:
    """The expression's wall times after ``after``, until croniter finds none (a year field
    that has run out, or a day that never exists)."""
    from croniter import CroniterBadDateError, croniter

    matches = croniter(schedule.cron, after, day_or=schedule.day_or)
    while True:
        try:
            moment: dt.datetime = matches.get_next(dt.datetime)
        except CroniterBadDateError:
            return
        yield moment


def _first_occurrence(naive: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """A repeated time's first occurrence; a skipped one at the offset before the gap."""
    return naive.replace(tzinfo=tz, fold=0)


def cron_times(
    schedule: CronSchedule, start: dt.datetime, end: dt.datetime | None, count: int
) -> list[dt.datetime]:
    """Up to ``count`` local occurrences from ``start`` (see ``schedule_times``)."""
    tz = zone(schedule.timezone or "UTC")
    start = start.astimezone(tz)
    after = wall(start) - _SECOND
    if start.microsecond:
        after += _SECOND

    here = ZonedDateTime(start)
    transition = here.add(seconds=1).prev_transition()
    change = 0.0  # seconds the clocks moved at the last transition (negative: back)
    since = 0.0
    if transition is not None:
        change = (transition.offset - transition.subtract(seconds=1).offset).total("seconds")
        since = (here - transition).total("seconds")
        if 0 <= since < -change:
            # In the second pass of a repeated hour: its wall times all mean the first pass,
            # which is over, so look only after it (without spending the candidate budget).
            after = wall(transition.to_stdlib()) + dt.timedelta(seconds=-change) - _SECOND

    candidates: Iterator[dt.datetime] = (
        _first_occurrence(moment, tz) for moment in _wall_times(schedule, after)
    )
    if transition is not None and 0 <= since < change:
        # Just after a gap: wall times inside it run after the gap, i.e. after ``start``,
        # though croniter, walking from ``start``'s wall time, would never name them.
        gap_end = wall(transition.to_stdlib())
        skipped = takewhile(
            lambda moment: moment < gap_end,
            _wall_times(schedule, after - dt.timedelta(seconds=change)),
        )
        candidates = heapq.merge(
            (_first_occurrence(moment, tz) for moment in skipped), candidates, key=utc
        )

    first, last = utc(start), utc(end) if end is not None else None
    found: dict[dt.datetime, dt.datetime] = {}
    for candidate in islice(candidates, MAX_CANDIDATES + 2):
        instant = utc(candidate)
        if last is not None and instant > last:
            break
        if instant >= first:
            found.setdefault(instant, candidate)
        if len(found) >= count:
            break
    return list(found.values())
