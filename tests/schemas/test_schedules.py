"""Schedule models: what is accepted, refused (with which error) and answered.

Expected dumps and error messages were recorded from Prefect 3.9.1's server schemas
(``prefect.server.schemas.schedules`` / ``actions`` / ``core``, Python 3.11) for the same input.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel, ValidationError

from deputy.schemas.schedules import (
    MAX_RRULE_LENGTH,
    CronSchedule,
    DeploymentSchedule,
    DeploymentScheduleCreate,
    DeploymentScheduleUpdate,
    IntervalSchedule,
    RRuleSchedule,
    load_schedule,
    with_dtstart,
)

INVALID_ZONE = (
    'Value error, Invalid timezone: "Nowhere/Land" (specify in IANA tzdata format, for '
    "example, America/New_York)"
)


def dump(model: type[BaseModel], body: Any) -> dict[str, Any]:
    return model.model_validate(body).model_dump(mode="json")


def errors(model: type[BaseModel], body: Any) -> list[tuple[str, tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return [(e["type"], e["loc"], e["msg"]) for e in caught.value.errors(include_url=False)]


# --- interval ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"interval": 3600, "anchor_date": "2020-01-01T00:00:00Z"},
            {"interval": 3600.0, "anchor_date": "2020-01-01T00:00:00Z", "timezone": "UTC"},
        ),
        (
            {"interval": 3600.5, "anchor_date": "2020-01-01T00:00:00.123456Z"},
            {"interval": 3600.5, "anchor_date": "2020-01-01T00:00:00.123456Z", "timezone": "UTC"},
        ),
        # ISO 8601 durations and "HH:MM:SS" strings; a naive anchor is UTC.
        (
            {"interval": "PT1H", "anchor_date": "2020-01-01T00:00:00"},
            {"interval": 3600.0, "anchor_date": "2020-01-01T00:00:00Z", "timezone": "UTC"},
        ),
        (
            {"interval": "1 day, 01:00:00", "anchor_date": "2020-01-01"},
            {"interval": 90000.0, "anchor_date": "2020-01-01T00:00:00Z", "timezone": "UTC"},
        ),
        # An offset is kept as sent, but is no timezone: the timezone becomes UTC.
        (
            {"interval": "01:00:00", "anchor_date": "2020-01-01T00:00:00+02:00"},
            {"interval": 3600.0, "anchor_date": "2020-01-01T00:00:00+02:00", "timezone": "UTC"},
        ),
        (
            {
                "interval": "P1D",
                "anchor_date": "2020-01-01T00:00:00",
                "timezone": "America/New_York",
            },
            {
                "interval": 86400.0,
                "anchor_date": "2020-01-01T00:00:00Z",
                "timezone": "America/New_York",
            },
        ),
        # "" is accepted and kept (and fails when run times are asked for).
        (
            {"interval": 60, "anchor_date": "2020-01-01T00:00:00Z", "timezone": ""},
            {"interval": 60.0, "anchor_date": "2020-01-01T00:00:00Z", "timezone": ""},
        ),
        # Forms pydantic does not read, accepted through Prefect's pendulum fallback.
        (
            {"interval": 60, "anchor_date": "20200101T000000"},
            {"interval": 60.0, "anchor_date": "2020-01-01T00:00:00Z", "timezone": "UTC"},
        ),
        (
            {"interval": 60, "anchor_date": "2020-W01-1"},
            {"interval": 60.0, "anchor_date": "2019-12-30T00:00:00Z", "timezone": "UTC"},
        ),
        (
            {"interval": 60, "anchor_date": "2020-032"},
            {"interval": 60.0, "anchor_date": "2020-02-01T00:00:00Z", "timezone": "UTC"},
        ),
        (
            {"interval": 60, "anchor_date": "2020-01-01T00:00:00+0530"},
            {"interval": 60.0, "anchor_date": "2020-01-01T00:00:00+05:30", "timezone": "UTC"},
        ),
    ],
)
def test_interval_dump(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert dump(IntervalSchedule, body) == expected
    assert dump(IntervalSchedule, expected) == expected  # stored and read back unchanged


def test_interval_anchor_defaults_to_now() -> None:
    before = dt.datetime.now(dt.UTC)
    schedule = IntervalSchedule.model_validate({"interval": 60})
    assert before <= schedule.anchor_date <= dt.datetime.now(dt.UTC)
    assert schedule.timezone == "UTC"


def test_interval_timezone_from_a_zoned_anchor() -> None:
    anchor = dt.datetime(2024, 1, 1, 9, tzinfo=dt.UTC).astimezone(ZoneInfo("Europe/Berlin"))
    assert IntervalSchedule(interval=dt.timedelta(hours=1), anchor_date=anchor).timezone == (
        "Europe/Berlin"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"interval": 0, "anchor_date": "2020-01-01T00:00:00"},
            [("value_error", ("interval",), "Value error, interval must be positive")],
        ),
        (
            {"interval": -5, "anchor_date": "2020-01-01T00:00:00"},
            [("value_error", ("interval",), "Value error, interval must be positive")],
        ),
        (
            {"interval": 0.0000001, "anchor_date": "2020-01-01T00:00:00"},
            [("value_error", ("interval",), "Value error, interval must be positive")],
        ),
        (
            {"interval": "abc"},
            [
                (
                    "time_delta_parsing",
                    ("interval",),
                    "Input should be a valid timedelta, invalid digit in duration",
                )
            ],
        ),
        (
            {"interval": 60, "anchor_date": "2020-01-01T00:00:00", "timezone": "Nowhere/Land"},
            [("value_error", (), INVALID_ZONE)],
        ),
        (
            {"interval": 60, "anchor_date": "2020-01-01T00:00:00", "foo": 1},
            [("extra_forbidden", ("foo",), "Extra inputs are not permitted")],
        ),
        (
            {"interval": 60, "anchor_date": "garbage"},
            [("value_error", ("anchor_date",), "Value error, Unable to parse string [garbage]")],
        ),
        (
            {"interval": 60, "anchor_date": True},
            [("value_error", ("anchor_date",), "value is not a valid datetime")],
        ),
        (
            {"interval": 60, "anchor_date": None},
            [("value_error", ("anchor_date",), "value is not a valid datetime")],
        ),
    ],
)
def test_interval_refused(body: dict[str, Any], expected: list[Any]) -> None:
    assert errors(IntervalSchedule, body) == expected


# --- cron -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"cron": "0 0 * * *"}, {"cron": "0 0 * * *", "timezone": None, "day_or": True}),
        (
            {"cron": "0 9 * * 1-5", "timezone": "America/New_York", "day_or": False},
            {"cron": "0 9 * * 1-5", "timezone": "America/New_York", "day_or": False},
        ),
        # croniter's extras: a seconds field, L, nth weekday, @-aliases.
        ({"cron": "0 0 * * * 30"}, {"cron": "0 0 * * * 30", "timezone": None, "day_or": True}),
        ({"cron": "0 0 L * *"}, {"cron": "0 0 L * *", "timezone": None, "day_or": True}),
        ({"cron": "0 0 * * 5#2"}, {"cron": "0 0 * * 5#2", "timezone": None, "day_or": True}),
        ({"cron": "@daily"}, {"cron": "@daily", "timezone": None, "day_or": True}),
    ],
)
def test_cron_dump(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert dump(CronSchedule, body) == expected


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("not a cron", 'Value error, Invalid cron string: "not a cron"'),
        ("", 'Value error, Invalid cron string: ""'),
        ("60 0 * * *", 'Value error, Invalid cron string: "60 0 * * *"'),
        ("@reboot", 'Value error, Invalid cron string: "@reboot"'),
        # Hashed needs an id croniter is never given; random is refused explicitly.
        ("H 0 * * *", 'Value error, Invalid cron string: "H 0 * * *"'),
        (
            "R 0 * * *",
            'Value error, Random and Hashed expressions are unsupported, received: "R 0 * * *"',
        ),
        # Newer croniter reads these; the croniter Prefect 3.9.1 vendors does not.
        ("0 0 15W * *", 'Value error, Invalid cron string: "0 0 15W * *"'),
        ("0 0 * * 7 *", 'Value error, Invalid cron string: "0 0 * * 7 *"'),
    ],
)
def test_cron_refused(cron: str, message: str) -> None:
    assert errors(CronSchedule, {"cron": cron}) == [("value_error", ("cron",), message)]


def test_cron_zero_day_is_accepted_as_prefect_does() -> None:
    assert CronSchedule(cron="0 0 0 * * *").cron == "0 0 0 * * *"


def test_cron_timezone() -> None:
    assert errors(CronSchedule, {"cron": "0 0 * * *", "timezone": "Nowhere/Land"}) == [
        ("value_error", (), INVALID_ZONE)
    ]
    assert CronSchedule(cron="0 0 * * *", timezone="").timezone == ""


# --- rrule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"rrule": "FREQ=DAILY"}, {"rrule": "FREQ=DAILY", "timezone": "UTC"}),
        # The TZID stays in the text; it does not become the timezone.
        (
            {"rrule": "DTSTART;TZID=America/New_York:20240101T090000\nRRULE:FREQ=DAILY;COUNT=3"},
            {
                "rrule": "DTSTART;TZID=America/New_York:20240101T090000\nRRULE:FREQ=DAILY;COUNT=3",
                "timezone": "UTC",
            },
        ),
        (
            {"rrule": "FREQ=DAILY", "timezone": None},
            {"rrule": "FREQ=DAILY", "timezone": None},
        ),
        # The timezone check is an unanchored pattern of zone names: this passes.
        (
            {"rrule": "FREQ=DAILY", "timezone": "xxUTCxx"},
            {"rrule": "FREQ=DAILY", "timezone": "xxUTCxx"},
        ),
    ],
)
def test_rrule_dump(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert dump(RRuleSchedule, body) == expected


@pytest.mark.parametrize(
    ("rrule", "message"),
    [
        ("FREQ=SOMETIMES", "Invalid RRule string \"FREQ=SOMETIMES\": invalid 'FREQ': SOMETIMES"),
        ("", 'Invalid RRule string "": empty string'),
        (
            "FREQ=DAILY;BYHOUR=25",
            'Invalid RRule string "FREQ=DAILY;BYHOUR=25": hour must be in 0..23',
        ),
        (
            "DTSTART:20240101T090000\nRRULE:FREQ=DAILY;UNTIL=20240105T000000Z",
            'Invalid RRule string "DTSTART:20240101T090000\nRRULE:FREQ=DAILY;'
            'UNTIL=20240105T000000Z": RRULE UNTIL values must be specified in UTC when DTSTART '
            "is timezone-aware",
        ),
        (
            "RDATE:" + ",".join(["20240101T000000"] * 420),
            'Invalid RRule string "RDATE:20240101T000000,20240101T000000,20..."\n'
            "Max length is 6500, got 6725",
        ),
    ],
)
def test_rrule_refused(rrule: str, message: str) -> None:
    assert errors(RRuleSchedule, {"rrule": rrule}) == [
        ("value_error", ("rrule",), f"Value error, {message}")
    ]


@pytest.mark.parametrize("timezone", ["utc", "localtime", "", "Nowhere/Land"])
def test_rrule_timezone_refused(timezone: str) -> None:
    [(kind, loc, message)] = errors(RRuleSchedule, {"rrule": "FREQ=DAILY", "timezone": timezone})
    assert (kind, loc) == ("string_pattern_mismatch", ("timezone",))
    assert message.startswith("String should match pattern 'Africa/Abidjan|Africa/Accra|")


def test_rrule_extra_field_refused() -> None:
    assert errors(RRuleSchedule, {"rrule": "FREQ=DAILY", "x": 1}) == [
        ("extra_forbidden", ("x",), "Extra inputs are not permitted")
    ]


# --- one of the three -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "kind"),
    [
        (
            {"interval": 60.0, "anchor_date": "2020-01-01T00:00:00Z", "timezone": "UTC"},
            IntervalSchedule,
        ),
        ({"cron": "0 0 * * *", "timezone": None, "day_or": True}, CronSchedule),
        ({"rrule": "FREQ=DAILY", "timezone": "UTC"}, RRuleSchedule),
    ],
)
def test_load_schedule_by_shape(stored: dict[str, Any], kind: type[BaseModel]) -> None:
    schedule = load_schedule(stored)
    assert type(schedule) is kind
    assert schedule.model_dump(mode="json") == stored


def test_union_errors_name_each_kind() -> None:
    assert errors(DeploymentScheduleCreate, {"schedule": {"cron": "bad"}}) == [
        (
            "missing",
            ("schedule", "function-after[validate_timezone(), IntervalSchedule]", "interval"),
            "Field required",
        ),
        (
            "extra_forbidden",
            ("schedule", "function-after[validate_timezone(), IntervalSchedule]", "cron"),
            "Extra inputs are not permitted",
        ),
        (
            "value_error",
            ("schedule", "function-after[validate_timezone(), CronSchedule]", "cron"),
            'Value error, Invalid cron string: "bad"',
        ),
        ("missing", ("schedule", "RRuleSchedule", "rrule"), "Field required"),
        (
            "extra_forbidden",
            ("schedule", "RRuleSchedule", "cron"),
            "Extra inputs are not permitted",
        ),
    ]


# --- deployment schedules ---------------------------------------------------------------


def test_create_defaults_and_dtstart() -> None:
    assert dump(DeploymentScheduleCreate, {"schedule": {"rrule": "FREQ=DAILY"}}) == {
        "active": True,
        "schedule": {"rrule": "DTSTART:20200101T000000\nFREQ=DAILY", "timezone": "UTC"},
        "max_scheduled_runs": None,
        "parameters": {},
        "slug": None,
        "replaces": None,
    }


def test_create_keeps_everything_sent() -> None:
    body = {
        "schedule": {"cron": "0 0 * * *", "timezone": "Europe/Berlin", "day_or": False},
        "active": False,
        "max_scheduled_runs": 50,
        "parameters": {"a": 1},
        "slug": "s",
        "replaces": "r",
    }
    assert dump(DeploymentScheduleCreate, body) == body


@pytest.mark.parametrize(
    ("rrule", "now", "timezone", "expected"),
    [
        (
            "FREQ=MINUTELY;INTERVAL=7",
            dt.datetime(2024, 7, 1, 12, 34, 56, tzinfo=dt.UTC),
            "America/New_York",
            "DTSTART:20240701T083400\nFREQ=MINUTELY;INTERVAL=7",
        ),
        (
            "FREQ=SECONDLY;INTERVAL=13",
            dt.datetime(2024, 7, 1, 12, 34, 56, tzinfo=dt.UTC),
            None,
            "DTSTART:20240701T123455\nFREQ=SECONDLY;INTERVAL=13",
        ),
        ("FREQ=MINUTELY;COUNT=5", None, None, "DTSTART:20200101T000000\nFREQ=MINUTELY;COUNT=5"),
        ("FREQ=HOURLY", None, None, "DTSTART:20200101T000000\nFREQ=HOURLY"),
        (
            "FREQ=MINUTELY\nEXDATE:20240101T000000",
            None,
            None,
            "DTSTART:20200101T000000\nFREQ=MINUTELY\nEXDATE:20240101T000000",
        ),
        ("dtstart:20240101T000000\nFREQ=DAILY", None, None, "dtstart:20240101T000000\nFREQ=DAILY"),
        ("bad", None, None, "bad"),
    ],
)
def test_with_dtstart(
    rrule: str, now: dt.datetime | None, timezone: str | None, expected: str
) -> None:
    assert with_dtstart(rrule, timezone=timezone, now=now) == expected


def test_dtstart_can_make_a_rule_too_long() -> None:
    rrule = "RDATE:" + ",".join(["20240101T000000"] * 405)
    assert len(rrule) <= MAX_RRULE_LENGTH
    assert RRuleSchedule(rrule=rrule).rrule == rrule
    assert errors(DeploymentScheduleCreate, {"schedule": {"rrule": rrule}}) == [
        (
            "value_error",
            ("schedule", "rrule"),
            'Value error, Invalid RRule string "DTSTART:20200101T000000\nRDATE:20240101T0..."\n'
            "Max length is 6500, got 6509",
        )
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"max_scheduled_runs": 0},
            [("greater_than", ("max_scheduled_runs",), "Input should be greater than 0")],
        ),
        (
            {"max_scheduled_runs": 51},
            [
                (
                    "value_error",
                    ("max_scheduled_runs",),
                    "Value error, `max_scheduled_runs` must be less than or equal to 50.",
                )
            ],
        ),
        (
            {"parameters": None},
            [("dict_type", ("parameters",), "Input should be a valid dictionary")],
        ),
        ({"extra": 1}, [("extra_forbidden", ("extra",), "Extra inputs are not permitted")]),
    ],
)
def test_create_refused(body: dict[str, Any], expected: list[Any]) -> None:
    schedule = {"interval": 60, "anchor_date": "2020-01-01T00:00:00Z"}
    assert errors(DeploymentScheduleCreate, {"schedule": schedule, **body}) == expected


def test_create_needs_a_schedule() -> None:
    assert errors(DeploymentScheduleCreate, {}) == [("missing", ("schedule",), "Field required")]


def test_update() -> None:
    empty: dict[str, Any] = {
        "active": None,
        "schedule": None,
        "max_scheduled_runs": None,
        "parameters": {},
        "slug": None,
        "replaces": None,
    }
    assert dump(DeploymentScheduleUpdate, {}) == empty
    assert dump(DeploymentScheduleUpdate, {"schedule": None}) == empty
    assert dump(DeploymentScheduleUpdate, {"schedule": {"rrule": "FREQ=HOURLY"}})["schedule"] == {
        "rrule": "DTSTART:20200101T000000\nFREQ=HOURLY",
        "timezone": "UTC",
    }
    assert errors(DeploymentScheduleUpdate, {"max_scheduled_runs": -1}) == [
        ("greater_than", ("max_scheduled_runs",), "Input should be greater than 0")
    ]


def test_deployment_schedule_response() -> None:
    stored = {
        "id": str(uuid.UUID(int=1)),
        "created": "2024-01-01T00:00:00Z",
        "updated": "2024-01-01T00:00:00+00:00",
        "deployment_id": str(uuid.UUID(int=2)),
        "schedule": {
            "interval": 60.0,
            "anchor_date": "2020-01-01T00:00:00+02:00",
            "timezone": "UTC",
        },
        "active": True,
        "max_scheduled_runs": None,
        "parameters": {},
        "slug": None,
    }
    assert dump(DeploymentSchedule, stored) == {**stored, "updated": "2024-01-01T00:00:00Z"}
