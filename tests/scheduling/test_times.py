"""Run times of interval, cron and RRule schedules, DST included.

Every expected list was recorded from Prefect 3.9.1 (its server schedule classes on Python
3.11, ``sorted(schedule._get_dates_generator(n, start, end))`` converted to UTC) for the
same schedule and window, unless a test says otherwise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from deputy.scheduling import MAX_CANDIDATES, schedule_times
from deputy.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule, Schedule


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)


def times(*texts: str) -> list[dt.datetime]:
    return [dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC) for text in texts]


def cron(expression: str, timezone: str | None = None, **extra: Any) -> CronSchedule:
    return CronSchedule(cron=expression, timezone=timezone, **extra)


def interval(seconds: float, anchor: str, timezone: str | None = None) -> IntervalSchedule:
    return IntervalSchedule.model_validate(
        {"interval": seconds, "anchor_date": anchor, "timezone": timezone}
    )


def rrule(text: str, timezone: str = "UTC") -> RRuleSchedule:
    return RRuleSchedule(rrule=text, timezone=timezone)


NY = "America/New_York"
BERLIN = "Europe/Berlin"

# (schedule, start, end, count, expected): recorded from Prefect 3.9.1.
CASES: dict[str, tuple[Schedule, dt.datetime, dt.datetime | None, int, list[dt.datetime]]] = {
    # Daily 02:30 in New York: on 2024-03-10 02:30 does not exist and runs at 03:30 EDT
    # (the offset before the gap); on 2024-11-03 02:30 exists once, in EST.
    "cron 02:30 New York spring forward": (
        cron("30 2 * * *", NY),
        utc(2024, 3, 8),
        None,
        4,
        times("2024-03-08T07:30", "2024-03-09T07:30", "2024-03-10T07:30", "2024-03-11T06:30"),
    ),
    "cron 02:30 New York fall back": (
        cron("30 2 * * *", NY),
        utc(2024, 11, 1),
        None,
        4,
        times("2024-11-01T06:30", "2024-11-02T06:30", "2024-11-03T07:30", "2024-11-04T07:30"),
    ),
    # 01:30 happens twice on 2024-11-03: cron runs at the first (EDT) one only.
    "cron 01:30 New York repeated hour": (
        cron("30 1 * * *", NY),
        utc(2024, 11, 1),
        None,
        4,
        times("2024-11-01T05:30", "2024-11-02T05:30", "2024-11-03T05:30", "2024-11-04T06:30"),
    ),
    "cron 02:30 Berlin spring forward": (
        cron("30 2 * * *", BERLIN),
        utc(2024, 3, 29),
        None,
        4,
        times("2024-03-29T01:30", "2024-03-30T01:30", "2024-03-31T01:30", "2024-04-01T00:30"),
    ),
    "cron 02:30 Berlin fall back": (
        cron("30 2 * * *", BERLIN),
        utc(2024, 10, 25),
        None,
        4,
        times("2024-10-25T00:30", "2024-10-26T00:30", "2024-10-27T00:30", "2024-10-28T01:30"),
    ),
    # Hourly cron fires on each new wall-clock hour: the repeated 01:00 once, so two hours
    # pass between 01:00 EDT and 02:00 EST.
    "cron hourly New York fall back": (
        cron("0 * * * *", NY),
        utc(2024, 11, 3, 3),
        utc(2024, 11, 3, 9),
        100,
        times(
            "2024-11-03T03:00",
            "2024-11-03T04:00",
            "2024-11-03T05:00",
            "2024-11-03T07:00",
            "2024-11-03T08:00",
            "2024-11-03T09:00",
        ),
    ),
    # The skipped 02:00 runs at 03:00 EDT, the same instant as 03:00 itself: one run.
    "cron hourly New York spring forward": (
        cron("0 * * * *", NY),
        utc(2024, 3, 10, 4),
        utc(2024, 3, 10, 9),
        100,
        times(
            "2024-03-10T04:00",
            "2024-03-10T05:00",
            "2024-03-10T06:00",
            "2024-03-10T07:00",
            "2024-03-10T08:00",
            "2024-03-10T09:00",
        ),
    ),
    "cron hourly Berlin fall back": (
        cron("0 * * * *", BERLIN),
        utc(2024, 10, 26, 22),
        utc(2024, 10, 27, 3),
        100,
        times(
            "2024-10-26T22:00",
            "2024-10-26T23:00",
            "2024-10-27T00:00",
            "2024-10-27T02:00",
            "2024-10-27T03:00",
        ),
    ),
    # Starting inside the second pass of the repeated hour: nothing until it is over.
    "cron starting in the repeated hour": (
        cron("*/20 * * * *", NY),
        utc(2024, 11, 3, 6, 10),
        None,
        4,
        times("2024-11-03T07:00", "2024-11-03T07:20", "2024-11-03T07:40", "2024-11-03T08:00"),
    ),
    # Every second from inside the repeated hour: its wall times all mean the first pass,
    # which is over; they are skipped without using up the candidate budget.
    "cron every second from the repeated hour": (
        cron("* * * * * *", NY),
        utc(2024, 11, 3, 6, 10),
        None,
        3,
        times("2024-11-03T07:00:00", "2024-11-03T07:00:01", "2024-11-03T07:00:02"),
    ),
    # Starting at 03:10 EDT just after the gap: the skipped 02:30 (run at 03:30) still counts.
    "cron starting just after the gap": (
        cron("30 2 * * *", NY),
        utc(2024, 3, 10, 7, 10),
        None,
        2,
        times("2024-03-10T07:30", "2024-03-11T06:30"),
    ),
    # The 13th OR a Friday (classic cron) ...
    "cron day_or true": (
        cron("0 0 13 * 5", "UTC", day_or=True),
        utc(2024, 9, 1),
        None,
        5,
        times(
            "2024-09-06T00:00",
            "2024-09-13T00:00",
            "2024-09-20T00:00",
            "2024-09-27T00:00",
            "2024-10-04T00:00",
        ),
    ),
    # ... or only Friday the 13th.
    "cron day_or false": (
        cron("0 0 13 * 5", "UTC", day_or=False),
        utc(2024, 9, 1),
        None,
        3,
        times("2024-09-13T00:00", "2024-12-13T00:00", "2025-06-13T00:00"),
    ),
    "cron without timezone is UTC": (
        cron("0 9 * * 1-5"),
        utc(2024, 6, 7, 9),
        None,
        3,
        times("2024-06-07T09:00", "2024-06-10T09:00", "2024-06-11T09:00"),
    ),
    "interval anchored in the past": (
        interval(3600, "2020-01-01T00:15:00Z"),
        utc(2024, 6, 1, 12, 30),
        None,
        3,
        times("2024-06-01T13:15", "2024-06-01T14:15", "2024-06-01T15:15"),
    ),
    # Before a future anchor, occurrences count back from it.
    "interval anchored in the future": (
        interval(86400, "2024-06-10T09:00:00-04:00", NY),
        utc(2024, 6, 1),
        None,
        4,
        times("2024-06-01T13:00", "2024-06-02T13:00", "2024-06-03T13:00", "2024-06-04T13:00"),
    ),
    # A naive anchor is read as UTC (not in the timezone, whatever Prefect's docs say):
    # 09:00 UTC is 04:00 in New York, kept as 04:00 EDT in June.
    "interval naive anchor": (
        interval(86400, "2024-01-01T09:00:00", NY),
        utc(2024, 6, 1),
        None,
        2,
        times("2024-06-01T08:00", "2024-06-02T08:00"),
    ),
    # Daily keeps 09:00 local across both DST changes ...
    "interval daily New York spring forward": (
        interval(86400, "2024-03-01T09:00:00-05:00", NY),
        utc(2024, 3, 9),
        None,
        4,
        times("2024-03-09T14:00", "2024-03-10T13:00", "2024-03-11T13:00", "2024-03-12T13:00"),
    ),
    "interval daily New York fall back": (
        interval(86400, "2024-03-01T09:00:00-05:00", NY),
        utc(2024, 11, 2),
        None,
        3,
        times("2024-11-02T13:00", "2024-11-03T14:00", "2024-11-04T14:00"),
    ),
    # ... but without a timezone the anchor's offset means UTC, and 14:00 UTC stays.
    "interval daily without timezone": (
        interval(86400, "2024-03-01T09:00:00-05:00"),
        utc(2024, 3, 9),
        None,
        3,
        times("2024-03-09T14:00", "2024-03-10T14:00", "2024-03-11T14:00"),
    ),
    # A daily 02:30 moves to 03:30 on the spring-forward day and stays at 03:30 for good.
    "interval daily 02:30 across the gap": (
        interval(86400, "2024-03-01T02:30:00-05:00", NY),
        utc(2024, 3, 9),
        None,
        3,
        times("2024-03-09T07:30", "2024-03-10T07:30", "2024-03-11T07:30"),
    ),
    "interval daily 02:30 months after the gap": (
        interval(86400, "2024-03-01T02:30:00-05:00", NY),
        utc(2024, 7, 1),
        None,
        2,
        times("2024-07-01T07:30", "2024-07-02T07:30"),
    ),
    # Hourly follows UTC; the second 01:00 (EST) has the wall time of the first and is
    # dropped as a duplicate, so 06:00 UTC is missing.
    "interval hourly New York fall back": (
        interval(3600, "2024-11-03T00:00:00-04:00", NY),
        utc(2024, 11, 3, 3),
        None,
        5,
        times(
            "2024-11-03T03:00",
            "2024-11-03T04:00",
            "2024-11-03T05:00",
            "2024-11-03T07:00",
            "2024-11-03T08:00",
        ),
    ),
    "interval hourly Berlin spring forward": (
        interval(3600, "2024-03-31T00:00:00+01:00", BERLIN),
        utc(2024, 3, 30, 23),
        None,
        4,
        times("2024-03-30T23:00", "2024-03-31T00:00", "2024-03-31T01:00", "2024-03-31T02:00"),
    ),
    "interval weekly Berlin before its anchor": (
        interval(7 * 86400, "2024-03-25T10:00:00+01:00", BERLIN),
        utc(2024, 3, 20),
        None,
        3,
        times("2024-03-25T09:00", "2024-04-01T08:00", "2024-04-08T08:00"),
    ),
    "interval end is inclusive": (
        interval(600, "2024-01-01T00:00:00Z"),
        utc(2024, 1, 1, 0, 5),
        utc(2024, 1, 1, 0, 30),
        100,
        times("2024-01-01T00:10", "2024-01-01T00:20", "2024-01-01T00:30"),
    ),
    "rrule COUNT": (
        rrule("DTSTART:20240101T090000\nRRULE:FREQ=DAILY;COUNT=3", NY),
        utc(2023, 12, 1),
        None,
        10,
        times("2024-01-01T14:00", "2024-01-02T14:00", "2024-01-03T14:00"),
    ),
    "rrule COUNT partly past": (
        rrule("DTSTART:20240101T090000\nRRULE:FREQ=DAILY;COUNT=3", NY),
        utc(2024, 1, 2, 14),
        None,
        10,
        times("2024-01-02T14:00", "2024-01-03T14:00"),
    ),
    "rrule UNTIL": (
        rrule(
            "DTSTART:20240101T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20240115T090000", BERLIN
        ),
        utc(2024, 1, 1),
        None,
        10,
        times(
            "2024-01-01T08:00",
            "2024-01-03T08:00",
            "2024-01-08T08:00",
            "2024-01-10T08:00",
            "2024-01-15T08:00",
        ),
    ),
    # DTSTART's TZID is not what counts: the schedule's timezone (default UTC) is.
    "rrule DTSTART TZID with default timezone": (
        rrule("DTSTART;TZID=America/New_York:20240101T090000\nRRULE:FREQ=DAILY;COUNT=2"),
        utc(2023, 12, 1),
        None,
        10,
        times("2024-01-01T09:00", "2024-01-02T09:00"),
    ),
    "rrule DTSTART TZID with another timezone": (
        rrule("DTSTART;TZID=America/New_York:20240101T090000\nRRULE:FREQ=DAILY;COUNT=2", BERLIN),
        utc(2023, 12, 1),
        None,
        10,
        times("2024-01-01T08:00", "2024-01-02T08:00"),
    ),
    # dateutil resolves the skipped 02:30 with the offset after the gap: 01:30 EST.
    "rrule daily 02:30 New York spring forward": (
        rrule("DTSTART:20240308T023000\nRRULE:FREQ=DAILY", NY),
        utc(2024, 3, 8),
        None,
        4,
        times("2024-03-08T07:30", "2024-03-09T07:30", "2024-03-10T06:30", "2024-03-11T06:30"),
    ),
    "rrule hourly New York fall back": (
        rrule("DTSTART:20241103T000000\nRRULE:FREQ=HOURLY", NY),
        utc(2024, 11, 3, 4),
        None,
        4,
        times("2024-11-03T04:00", "2024-11-03T05:00", "2024-11-03T07:00", "2024-11-03T08:00"),
    ),
    "rrule set with EXDATE and RDATE": (
        rrule(
            "DTSTART:20240101T120000\nRRULE:FREQ=WEEKLY;BYDAY=MO\n"
            "EXDATE:20240108T120000\nRDATE:20240110T120000"
        ),
        utc(2024, 1, 1),
        None,
        4,
        times("2024-01-01T12:00", "2024-01-10T12:00", "2024-01-15T12:00", "2024-01-22T12:00"),
    ),
    # Years after DTSTART (dateutil is started closer to the window, whole periods later,
    # which must keep a multi-week or multi-hour step in phase).
    "rrule every third week, years later": (
        rrule("DTSTART:20200107T093000\nRRULE:FREQ=WEEKLY;INTERVAL=3;BYDAY=TU,TH", BERLIN),
        utc(2026, 3, 20),
        None,
        4,
        times("2026-03-24T08:30", "2026-03-26T08:30", "2026-04-14T07:30", "2026-04-16T07:30"),
    ),
    "rrule every fifth hour on Saturdays, years later": (
        rrule("DTSTART:20200101T001500\nRRULE:FREQ=HOURLY;INTERVAL=5;BYDAY=SA", NY),
        utc(2026, 3, 6),
        None,
        6,
        times(
            "2026-03-07T07:15",
            "2026-03-07T12:15",
            "2026-03-07T17:15",
            "2026-03-07T22:15",
            "2026-03-08T03:15",
            "2026-03-14T08:15",
        ),
    ),
    "rrule without DTSTART starts 2020-01-01 local": (
        rrule("FREQ=DAILY;BYHOUR=6", BERLIN),
        utc(2024, 5, 1),
        None,
        2,
        times("2024-05-01T04:00", "2024-05-02T04:00"),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_times_as_prefect(case: str) -> None:
    schedule, start, end, count, expected = CASES[case]
    assert schedule_times(schedule, start=start, end=end, count=count) == expected


def test_times_are_utc_and_ascending() -> None:
    result = schedule_times(cron("30 2 * * *", NY), start=utc(2024, 3, 8), count=4)
    assert all(moment.tzinfo is dt.UTC for moment in result)
    assert result == sorted(result)


def test_naive_bounds_are_utc() -> None:
    schedule = interval(600, "2024-01-01T00:00:00Z")
    naive_start = dt.datetime(2024, 1, 1, 0, 5)  # noqa: DTZ001 (what this test is about)
    naive = schedule_times(schedule, start=naive_start, count=2)
    assert naive == times("2024-01-01T00:10", "2024-01-01T00:20")


def test_count_caps_the_result() -> None:
    result = schedule_times(cron("* * * * *"), start=utc(2024, 1, 1), count=7)
    assert result == [utc(2024, 1, 1, 0, minute) for minute in range(7)]


def test_no_count_no_times() -> None:
    assert schedule_times(cron("* * * * *"), start=utc(2024, 1, 1), count=0) == []


def test_candidate_budget() -> None:
    """As Prefect (recorded from 3.9.1): about 1,000 candidates per call, whatever ``count``."""
    result = schedule_times(interval(1, "2024-01-01T00:00:00Z"), start=utc(2024, 1, 1), count=5000)
    assert len(result) == MAX_CANDIDATES + 2
    assert result[-1] == utc(2024, 1, 1, 0, 16, 41)


def test_exhausted_cron_keeps_what_it_found() -> None:
    """Deliberately not Prefect: its croniter raises once the year field runs out (a 500, or
    an error in the scheduler); here the remaining times are simply all there is."""
    result = schedule_times(cron("0 0 1 1 * 0 2025", BERLIN), start=utc(2024, 3, 10), count=3)
    assert result == times("2024-12-31T23:00")


def test_rrule_after_its_last_occurrence() -> None:
    schedule = rrule("DTSTART:20240101T090000\nRRULE:FREQ=DAILY;COUNT=3")
    assert schedule_times(schedule, start=utc(2024, 2, 1), count=5) == []


def test_unusable_timezone_is_an_error() -> None:
    """Validation lets an empty interval timezone through; Prefect fails on it too."""
    with pytest.raises(ValueError, match="Unknown timezone"):
        schedule_times(interval(60, "2024-01-01T00:00:00Z", ""), start=utc(2024, 1, 1), count=1)
