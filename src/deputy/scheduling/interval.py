"""Interval schedules: ``anchor_date + k * interval`` in the schedule's timezone.

Prefect 3.9.1 (Python 3.11/3.12, where its server uses pendulum) adds intervals with a
day part on the local wall clock and shorter ones as elapsed time; a local time that does
not exist moves forward by the gap, a repeated one means its later occurrence. Times are
compared and de-duplicated by wall clock, so in the repeated hour of a fall-back an hourly
schedule fires once, not twice (unlike what Prefect's documentation says).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable

from whenever import ZonedDateTime

from deputy.scheduling.local import MAX_CANDIDATES, utc, wall, zone
from deputy.schemas.schedules import IntervalSchedule


def later_local(naive: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """A wall-clock time made local: inside a gap it moves forward by the gap's length; a
    repeated time means its second occurrence."""
    before = tz.utcoffset(naive.replace(fold=0))
    after = tz.utcoffset(naive.replace(fold=1))
    if before is not None and after is not None and after > before:
        naive += after - before
    return naive.replace(tzinfo=tz, fold=1)


def add(moment: dt.datetime, tz: zoneinfo.ZoneInfo, days: int, seconds: float) -> dt.datetime:
    """Whole days on the wall clock (with any seconds along), else elapsed seconds."""
    if days:
        naive = moment.replace(tzinfo=None) + dt.timedelta(days=days, seconds=seconds)
        return later_local(naive, tz)
    return (utc(moment) + dt.timedelta(seconds=seconds)).astimezone(tz)


def seek_days(
    anchor: dt.datetime,
    start: dt.datetime,
    days: int,
    advance: Callable[[dt.datetime, int], dt.datetime],
) -> dt.datetime:
    """The first occurrence at or after ``start`` of a whole-day interval, stepped from the
    anchor: one step per occurrence would be exact but slow, and a gap can shift the wall
    time of every later occurrence, so jump to just before each offset change and step
    across it."""
    current = anchor
    while utc(current) < utc(start):
        boundary = start
        transition = ZonedDateTime(current).next_transition()
        if transition is not None:
            edge = transition.to_stdlib()
            if utc(edge) < utc(start):
                boundary = edge
        steps = max(1, (boundary.date() - current.date()).days // days - 1)
        current = advance(current, days * steps)
    return current


def interval_times(
    schedule: IntervalSchedule, start: dt.datetime, end: dt.datetime | None, count: int
) -> list[dt.datetime]:
    """Up to ``count`` local occurrences from ``start`` (see ``schedule_times``)."""
    timezone = schedule.timezone if schedule.timezone is not None else "UTC"
    tz = zone(timezone)
    anchor = schedule.anchor_date.astimezone(tz)
    start = start.astimezone(tz)
    stop = wall(end.astimezone(tz)) if end is not None else None
    days = schedule.interval.days
    total = schedule.interval.total_seconds()
    seconds = total - days * 86400
    whole_days = days != 0 and seconds == 0

    def jump(k: int) -> dt.datetime:
        """k intervals from the anchor, in one addition."""
        if days == 0 or seconds == 0:
            return add(anchor, tz, days * k, seconds * k)
        return add(anchor, tz, 0, total * k)

    offset = 0
    if whole_days and wall(start) >= wall(anchor) and timezone != "UTC":
        current = seek_days(anchor, start, days, lambda moment, n: add(moment, tz, n, 0))
    else:
        offset = int((utc(start) - utc(anchor)).total_seconds() / total)
        current = jump(offset)
        while wall(current) > wall(start):
            offset -= 1
            current = jump(offset)

    # Before a whole-day anchor, occurrences count back from the anchor rather than forward
    # from an earlier one, so a gap on the way does not shift them.
    from_anchor = whole_days and wall(start) < wall(anchor)

    def following(moment: dt.datetime) -> dt.datetime:
        nonlocal offset
        if from_anchor and offset < 0:
            offset += 1
            return jump(offset)
        return add(moment, tz, days, seconds)

    while wall(current) < wall(start):
        current = following(current)

    found: dict[dt.datetime, dt.datetime] = {}
    for attempt in range(MAX_CANDIDATES + 2):
        if stop is not None and wall(current) > stop:
            break
        found.setdefault(wall(current), current)
        if len(found) >= count or attempt > MAX_CANDIDATES:
            break
        current = following(current)
    return list(found.values())
