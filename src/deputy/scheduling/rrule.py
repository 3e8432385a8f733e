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


def localized_rule(text: str, timezone: str) -> Any:
    """The parsed rule (a dateutil ``rrule`` or ``rruleset``) with every date-time in it
    relabelled, wall time kept, with ``timezone``."""
    from dateutil import rrule as rr
    from dateutil.tz import gettz

    rule = rr.rrulestr(text, dtstart=DEFAULT_START, cache=True)
    tz = gettz(timezone)

    def relabel(part: Any) -> Any:
        changes = {"dtstart": part._dtstart.replace(tzinfo=tz)}
        if part._until:
            changes["until"] = part._until.replace(tzinfo=tz)
        return part.replace(**changes)

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
    rule = localized_rule(schedule.rrule, schedule.timezone)
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
