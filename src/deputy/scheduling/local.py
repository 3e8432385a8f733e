"""Local-time helpers shared by the schedule kinds."""

from __future__ import annotations

import datetime as dt
import zoneinfo

#: Candidate times one call looks at, at most (Prefect's ``MAX_ITERATIONS``).
MAX_CANDIDATES = 1000


def as_aware(moment: dt.datetime) -> dt.datetime:
    """Naive means UTC, as in Prefect."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone; a ValueError for a name that validation let through but no zone has
    (Prefect fails on those too)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError) as exc:
        raise ValueError(f"Unknown timezone {name!r}") from exc


def wall(moment: dt.datetime) -> dt.datetime:
    """The local wall-clock reading, which is what Prefect's schedules compare and de-duplicate
    on: Python compares datetimes sharing one tzinfo object by their wall clocks."""
    return moment.replace(tzinfo=None, fold=0)


def utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC)
