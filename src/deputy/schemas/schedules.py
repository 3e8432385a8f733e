"""Schedule wire models: interval, cron and RRule schedules, and deployment schedules.

Validation, defaults and serialisation follow Prefect 3.9.1's server (on Python 3.11/3.12),
quirks included, because clients read back what they sent. The run-time arithmetic is in
``deputy.scheduling``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import re
import uuid
import zoneinfo
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

#: Longest RRule string accepted.
MAX_RRULE_LENGTH = 6500
#: Largest ``max_scheduled_runs`` (Prefect's ``deployment_schedule_max_scheduled_runs``).
MAX_SCHEDULED_RUNS_LIMIT = 50
#: Where an RRule without DTSTART starts, as a floating (zone-less) local time.
DEFAULT_RRULE_START = dt.datetime(2020, 1, 1)  # noqa: DTZ001


@functools.cache
def iana_timezones() -> frozenset[str]:
    """Zone names this machine knows (system zoneinfo and the ``tzdata`` package).

    Read on first use: scanning the zone files takes tens of milliseconds."""
    return frozenset(zoneinfo.available_timezones())


def invalid_timezone_message(name: str) -> str:
    return (
        f'Invalid timezone: "{name}" (specify in IANA tzdata format, for example, America/New_York)'
    )


# --- interval -------------------------------------------------------------------------


def _positive_interval(value: dt.timedelta) -> dt.timedelta:
    if value <= dt.timedelta(0):
        raise ValueError("interval must be positive")
    return value


#: Seconds, or any duration string pydantic reads ("PT1H", "01:00:00", "1 day, 1:00:00").
PositiveInterval = Annotated[
    dt.timedelta,
    AfterValidator(_positive_interval),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string"}]},
        mode="validation",
    ),
]

_ISO_DATETIME = re.compile(
    r"(?:\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:[.,]\d+)?)?)?)?"
    r"|\d{8}(?:T\d{2}(?:\d{2}(?:\d{2}(?:[.,]\d+)?)?)?)?"
    r"|\d{4}-?W\d{2}-?\d)"
    r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)?"
)
_ORDINAL_DATE = re.compile(r"(\d{4})-(\d{3})")
_YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})")
_WEEK = re.compile(r"(\d{4})-?W(\d{2})")


def _ordinal_date(year: int, day: int) -> dt.datetime:
    first = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    if not 1 <= day <= dt.date(year, 12, 31).timetuple().tm_yday:
        raise ValueError(day)
    return first + dt.timedelta(days=day - 1)


def _parse_lenient(text: str) -> dt.datetime:
    """The ISO 8601 forms Prefect also accepts for ``anchor_date`` beyond pydantic's own
    (basic format, week and ordinal dates, year-month, ``now``)."""
    if text == "now":
        return dt.datetime.now(dt.UTC)
    try:
        if match := _ORDINAL_DATE.fullmatch(text):
            return _ordinal_date(int(match[1]), int(match[2]))
        if match := _YEAR_MONTH.fullmatch(text):
            return dt.datetime(int(match[1]), int(match[2]), 1, tzinfo=dt.UTC)
        if match := _WEEK.fullmatch(text):
            return dt.datetime.fromisocalendar(int(match[1]), int(match[2]), 1)
        if _ISO_DATETIME.fullmatch(text):
            return dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        pass
    raise ValueError(f"Unable to parse string [{text}]")


def _anchor_datetime(value: Any, handler: ValidatorFunctionWrapHandler) -> dt.datetime:
    """A datetime as pydantic reads it, else a lenient ISO 8601 parse; naive means UTC."""
    try:
        parsed: dt.datetime = handler(value)
    except ValidationError:
        if not isinstance(value, str):
            raise PydanticCustomError("value_error", "value is not a valid datetime") from None
        parsed = _parse_lenient(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


AnchorDate = Annotated[dt.datetime, WrapValidator(_anchor_datetime)]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class IntervalSchedule(BaseModel):
    """Runs every ``interval`` counted from ``anchor_date``.

    ``timezone`` decides how days are counted: the days of an interval of a day or more are
    added on the local wall clock (a daily run keeps its local time across DST changes),
    shorter intervals are elapsed time. Without one it is taken from the anchor, which from
    JSON only ever has a UTC offset, so it becomes "UTC"."""

    model_config = ConfigDict(extra="forbid", ser_json_timedelta="float")

    interval: PositiveInterval
    anchor_date: AnchorDate = Field(default_factory=_utc_now, examples=["2020-01-01T00:00:00Z"])
    timezone: str | None = Field(default=None, examples=["America/New_York"])

    @model_validator(mode="after")
    def validate_timezone(self) -> Self:
        # The validator's name shows in error locations ("function-after[...]"), as Prefect's.
        if self.timezone is not None:
            _check_timezone(self.timezone)
        else:
            key = getattr(self.anchor_date.tzinfo, "key", None)
            self.timezone = key if key in iana_timezones() else "UTC"
        return self


def _check_timezone(name: str) -> None:
    """An IANA zone name, or "" (accepted, and read as UTC by cron schedules)."""
    if name and name not in iana_timezones():
        raise ValueError(invalid_timezone_message(name))


# --- cron -----------------------------------------------------------------------------


def _check_cron(text: str) -> str:
    """croniter's syntax, without its random ("R") and hashed ("H") fields."""
    from croniter import croniter  # imported on use: it costs start-up time

    if not croniter.is_valid(text):
        raise ValueError(f'Invalid cron string: "{text}"')
    if any(field.casefold() in ("r", "h") for field in text.split()):
        raise ValueError(f'Random and Hashed expressions are unsupported, received: "{text}"')
    return text


class CronSchedule(BaseModel):
    """Runs at the wall-clock times a cron expression names, in ``timezone`` (UTC if none).

    ``day_or`` false makes day-of-month and day-of-week both required (fcron style) instead
    of either being enough (classic cron)."""

    model_config = ConfigDict(extra="forbid")

    cron: str = Field(examples=["0 0 * * *"])
    timezone: str | None = Field(default=None, examples=["America/New_York"])
    day_or: bool = Field(
        default=True,
        description="Whether a day matching day-of-month OR day-of-week is enough (cron's rule).",
    )

    @model_validator(mode="after")
    def validate_timezone(self) -> Self:
        if self.timezone is not None:
            _check_timezone(self.timezone)
        return self

    _cron_valid = field_validator("cron")(_check_cron)


# --- rrule ----------------------------------------------------------------------------


@functools.cache
def timezone_pattern() -> str:
    """Prefect checks an RRule's timezone with an unanchored regex of every zone name: any
    text containing one passes (so "xxUTCxx" does), "localtime" is left out."""
    return "|".join(sorted(name for name in iana_timezones() if "localtime" not in name))


@functools.cache
def _timezone_regex() -> re.Pattern[str]:
    return re.compile(timezone_pattern())


def _match_timezone_pattern(value: str) -> str:
    if not _timezone_regex().search(value):
        raise PydanticCustomError(
            "string_pattern_mismatch",
            "String should match pattern '{pattern}'",
            {"pattern": timezone_pattern()},
        )
    return value


class _TimezonePattern:
    """The pattern check, built on first use rather than at import (see ``iana_timezones``)."""

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            _match_timezone_pattern, handler(source)
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "pattern": timezone_pattern()}


RRuleTimezone = Annotated[str, _TimezonePattern()]


def _check_rrule(text: str) -> str:
    """Parsable by dateutil (its message is passed on), and at most 6500 characters."""
    from dateutil.rrule import rrulestr

    try:
        rrulestr(text, cache=True)
    except ValueError as exc:
        raise ValueError(f'Invalid RRule string "{text}": {exc}') from None
    if len(text) > MAX_RRULE_LENGTH:
        raise ValueError(
            f'Invalid RRule string "{text[:40]}..."\n'
            f"Max length is {MAX_RRULE_LENGTH}, got {len(text)}"
        )
    return text


class RRuleSchedule(BaseModel):
    """Runs at the occurrences of an iCalendar (RFC 5545) recurrence rule or rule set.

    The rule's wall times are read in ``timezone``; a TZID on DTSTART is not used for that.
    Without DTSTART the rule starts at 2020-01-01 00:00 local time."""

    model_config = ConfigDict(extra="forbid")

    rrule: str
    timezone: RRuleTimezone | None = Field(default="UTC", examples=["America/New_York"])

    _rrule_valid = field_validator("rrule")(_check_rrule)


Schedule = IntervalSchedule | CronSchedule | RRuleSchedule

_SCHEDULE_ADAPTER: TypeAdapter[Schedule] = TypeAdapter(Schedule)


def load_schedule(data: Any) -> Schedule:
    """A schedule from its stored JSON (``model_dump(mode="json")``), e.g. a database row.

    No DTSTART is added here: that happens once, when a deployment schedule is created."""
    return _SCHEDULE_ADAPTER.validate_python(data)


# --- DTSTART for new RRule schedules ----------------------------------------------------


def with_dtstart(rrule: str, *, timezone: str | None = None, now: dt.datetime | None = None) -> str:
    """The rule with an explicit DTSTART line, as Prefect stores new RRule schedules.

    A rule without one would be walked from 2020-01-01 on every evaluation. Rules that
    already name one are kept. Second- and minute-frequency rules without COUNT start at
    the latest occurrence not after ``now`` (same occurrences, far less work); every other
    rule, and any rule set, is pinned to 2020-01-01 00:00 so its occurrences do not move.
    """
    if "DTSTART" in rrule.upper():
        return rrule
    from dateutil import rrule as rr

    try:
        parsed = rr.rrulestr(rrule, dtstart=DEFAULT_RRULE_START, cache=False)
    except (ValueError, TypeError):
        return rrule
    start = DEFAULT_RRULE_START
    freq, interval = getattr(parsed, "_freq", None), getattr(parsed, "_interval", None)
    if (
        isinstance(parsed, rr.rrule)
        and getattr(parsed, "_count", None) is None
        and freq in (rr.SECONDLY, rr.MINUTELY)
        and isinstance(interval, int)
    ):
        period = interval * (1 if freq == rr.SECONDLY else 60)
        local_now = _naive_local(now or dt.datetime.now(dt.UTC), timezone)
        elapsed = (local_now - DEFAULT_RRULE_START).total_seconds()
        if elapsed > 0:
            start += dt.timedelta(seconds=int(elapsed // period) * period)
    return f"DTSTART:{start:%Y%m%dT%H%M%S}\n{rrule}"


def _naive_local(moment: dt.datetime, timezone: str | None) -> dt.datetime:
    """``moment``'s wall time in ``timezone`` (UTC when missing or unknown)."""
    zone: dt.tzinfo = dt.UTC
    if timezone:
        with contextlib.suppress(ValueError, zoneinfo.ZoneInfoNotFoundError):
            zone = zoneinfo.ZoneInfo(timezone)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(zone).replace(tzinfo=None)


def _anchored(schedule: Schedule) -> Schedule:
    if isinstance(schedule, RRuleSchedule):
        anchored = with_dtstart(schedule.rrule, timezone=schedule.timezone)
        if anchored != schedule.rrule:
            return RRuleSchedule(rrule=anchored, timezone=schedule.timezone)
    return schedule


#: A schedule in a request body: RRules get their DTSTART (see ``with_dtstart``).
AnchoredSchedule = Annotated[Schedule, AfterValidator(_anchored)]


# --- deployment schedules ---------------------------------------------------------------


def _within_limit(value: int | None) -> int | None:
    if value is not None and value > MAX_SCHEDULED_RUNS_LIMIT:
        raise ValueError(
            f"`max_scheduled_runs` must be less than or equal to {MAX_SCHEDULED_RUNS_LIMIT}."
        )
    return value


MaxScheduledRuns = Annotated[PositiveInt | None, AfterValidator(_within_limit)]


class DeploymentScheduleCreate(BaseModel):
    """A schedule to add to a deployment; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")

    active: bool = True
    schedule: AnchoredSchedule
    max_scheduled_runs: MaxScheduledRuns = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    slug: str | None = None
    #: The slug of an existing schedule this one takes over (a rename).
    replaces: str | None = None


class DeploymentScheduleUpdate(BaseModel):
    """Changes to a deployment schedule; a field left out (or null) is kept as it is."""

    model_config = ConfigDict(extra="forbid")

    active: bool | None = None
    schedule: AnchoredSchedule | None = None
    max_scheduled_runs: MaxScheduledRuns = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    slug: str | None = None
    replaces: str | None = None


class DeploymentSchedule(BaseModel):
    """A deployment schedule as the API answers it."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    deployment_id: uuid.UUID | None = None
    schedule: Schedule
    active: bool = True
    max_scheduled_runs: MaxScheduledRuns = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    slug: str | None = None
