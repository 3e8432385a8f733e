"""RRule schedules: occurrences of an RFC 5545 rule or rule set, read in the schedule's timezone.

As Prefect 3.9.1: the rule is parsed by dateutil and its wall times (DTSTART, UNTIL, RDATE,
EXDATE) are relabelled with the schedule's timezone through ``dateutil.tz.gettz``, whatever
zone or offset the text gave them; a local time inside a spring-forward gap resolves to the
offset after it (02:30 becomes 01:30 EST, dateutil's rule). Times are de-duplicated by wall
clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from deputy.scheduling.local import MAX_CANDIDATES, utc, wall, zone
from deputy.schemas.schedules import RRuleSchedule

#: Where a rule without DTSTART starts (a date, as Prefect passes it to dateutil).
DEFAULT_START = dt.date(2020, 1, 1)
#: Seconds in one period of the frequencies whose periods all have the same length on the
#: wall clock (dateutil's constants: WEEKLY 2 ... SECONDLY 6).
_PERIOD_SECONDS = {2: 7 * 86400, 3: 86400, 4: 3600, 5: 60, 6: 1}
#: How far before the window a rule moved closer still starts (DST offsets, week periods).
_MARGIN = dt.timedelta(days=8)


def _moved_closer(part: Any, before: dt.datetime) -> Any:
    """The rule starting at its last period boundary on or before ``before`` (a wall time).

    dateutil walks every period from DTSTART, so an hourly rule from 2020 costs a second per
    call. Moving DTSTART by whole periods keeps every later occurrence (the BY* defaults it
    implies are unchanged); rules with COUNT or of varying periods (months, years) are kept.
    """
    period = _PERIOD_SECONDS.get(part._freq)
    if period is None or part._count is not None:
        return part
    step = dt.timedelta(seconds=period * part._interval)
    periods = (before - part._dtstart.replace(tzinfo=None)) // step
    return part.replace(dtstart=part._dtstart + periods * step) if periods > 0 else part


def localized_rule(text: str, timezone: str, after: dt.datetime | None = None) -> Any:
    """The parsed rule (a dateutil ``rrule`` or ``rruleset``) with every date-time in it
    relabelled, wall time kept, with ``timezone``; when only occurrences from the wall time
    ``after`` on matter, its rules start shortly before it (see ``_moved_closer``)."""
    from dateutil import rrule as rr
    from dateutil.tz import gettz

    rule = rr.rrulestr(text, dtstart=DEFAULT_START, cache=True)
    tz = gettz(timezone)

    def relabel(part: Any) -> Any:
        changes = {"dtstart": part._dtstart.replace(tzinfo=tz)}
        if part._until:
            changes["until"] = part._until.replace(tzinfo=tz)
        part = part.replace(**changes)
        return part if after is None else _moved_closer(part, after - _MARGIN)

    if isinstance(rule, rr.rrule):
        return relabel(rule)
    rule._rrule = [relabel(part) for part in rule._rrule]
    rule._exrule = [relabel(part) for part in rule._exrule]
    rule._rdate = [moment.replace(tzinfo=tz) for moment in rule._rdate]
    rule._exdate = [moment.replace(tzinfo=tz) for moment in rule._exdate]
    return rule


def rrule_times(
    schedule: RRuleSchedule, start: dt.datetime, end: dt.datetime | None, count: int
) -> list[dt.datetime]:
    """Up to ``count`` local occurrences from ``start`` (see ``schedule_times``)."""
    if schedule.timezone is None:
        raise ValueError("An RRule schedule needs a timezone")
    tz = zone(schedule.timezone)
    rule = localized_rule(schedule.rrule, schedule.timezone, wall(start.astimezone(tz)))
    last = utc(end) if end is not None else None
    found: dict[dt.datetime, dt.datetime] = {}
    occurrences = rule.xafter(utc(start), count=None, inc=True)
    for attempt, occurrence in enumerate(occurrences):
        local: dt.datetime = occurrence.astimezone(tz)
        if last is not None and utc(local) > last:
            break
        found.setdefault(wall(local), local)
        if len(found) >= count or attempt > MAX_CANDIDATES:
            break
    return list(found.values())
