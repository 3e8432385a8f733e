"""Event wire models: events as clients send and read them, and the filters over them.

Field for field with Prefect 3.9.1's ``Event``, ``ReceivedEvent``, ``EventFilter`` (and its
parts), ``EventPage`` and ``EventCount``. Filters refuse unknown keys, as Prefect's do.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deputy.schemas.core import DateTime
from deputy.schemas.filters import FilterBody
from deputy.schemas.logs import TextSearch

#: Longest event name accepted (Prefect's ``server.events.maximum_event_name_length``).
MAXIMUM_EVENT_NAME_LENGTH = 1024
#: Most related resources one event may name (``server.events.maximum_related_resources``).
MAXIMUM_RELATED_RESOURCES = 100
#: Most labels one resource may carry (``server.events.maximum_labels_per_resource``).
MAXIMUM_LABELS_PER_RESOURCE = 500

#: Resource labels: ``prefect.resource.id`` and any other string labels.
Labels = dict[str, str]
#: A label pattern: one glob or several (``*``, ``?``; a leading ``!`` negates).
ResourceSpecification = dict[str, str | list[str]]


class Event(BaseModel):
    """An event as a client sends it (``POST /events``, ``/events/in``)."""

    model_config = ConfigDict(extra="ignore")

    occurred: DateTime
    event: str = Field(max_length=MAXIMUM_EVENT_NAME_LENGTH)
    resource: Labels
    related: list[Labels] = Field(default_factory=list, max_length=MAXIMUM_RELATED_RESOURCES)
    payload: dict[str, Any] = Field(default_factory=dict)
    id: uuid.UUID
    follows: uuid.UUID | None = None


class ReceivedEvent(BaseModel):
    """An event as stored and answered."""

    occurred: dt.datetime
    event: str
    resource: Labels
    related: list[Labels] = Field(default_factory=list)
    payload: dict[str, Any] = Field(default_factory=dict)
    id: uuid.UUID
    follows: uuid.UUID | None = None
    received: dt.datetime


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _default_since() -> dt.datetime:
    """Start of today (UTC), 180 days ago: Prefect's default look-back."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=180)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class EventOccurredFilter(_Strict):
    since: DateTime = Field(default_factory=_default_since)
    until: DateTime = Field(default_factory=_now)


class EventNameFilter(_Strict):
    prefix: list[str] | None = None
    exclude_prefix: list[str] | None = None
    name: list[str] | None = None
    exclude_name: list[str] | None = None


class EventResourceFilter(_Strict):
    id: list[str] | None = None
    id_prefix: list[str] | None = None
    labels: ResourceSpecification | None = None
    distinct: bool = False


class EventRelatedFilter(_Strict):
    id: list[str] | None = None
    role: list[str] | None = None
    resources_in_roles: list[tuple[str, str]] | None = None
    labels: ResourceSpecification | None = None


class EventAnyResourceFilter(_Strict):
    id: list[str] | None = None
    id_prefix: list[str] | None = None
    labels: ResourceSpecification | None = None


class EventIDFilter(_Strict):
    id: list[uuid.UUID] | None = None


class EventOrder(enum.StrEnum):
    ASC = "ASC"
    DESC = "DESC"


class EventFilter(_Strict):
    occurred: EventOccurredFilter = Field(default_factory=EventOccurredFilter)
    event: EventNameFilter | None = None
    resource: EventResourceFilter | None = None
    related: EventRelatedFilter | list[EventRelatedFilter] | None = None
    any_resource: EventAnyResourceFilter | list[EventAnyResourceFilter] | None = None
    id: EventIDFilter = Field(default_factory=EventIDFilter)
    text: TextSearch | None = None
    order: EventOrder = EventOrder.DESC

    def related_filters(self) -> list[EventRelatedFilter]:
        if self.related is None:
            return []
        return self.related if isinstance(self.related, list) else [self.related]

    def any_resource_filters(self) -> list[EventAnyResourceFilter]:
        if self.any_resource is None:
            return []
        return self.any_resource if isinstance(self.any_resource, list) else [self.any_resource]


#: Most events one page of ``/events/filter`` answers (Prefect's ``INTERACTIVE_PAGE_SIZE``).
EVENT_PAGE_SIZE = 50


class EventFilterBody(FilterBody):
    """The body of ``POST /events/filter``."""

    filter: EventFilter | None = None
    limit: int = Field(default=EVENT_PAGE_SIZE, ge=0, le=EVENT_PAGE_SIZE)


class EventPage(BaseModel):
    events: list[ReceivedEvent]
    total: int
    next_page: str | None


class Countable(enum.StrEnum):
    day = "day"
    time = "time"
    event = "event"
    resource = "resource"


class TimeUnit(enum.StrEnum):
    week = "week"
    day = "day"
    hour = "hour"
    minute = "minute"
    second = "second"


class EventCountBody(FilterBody):
    """The body of ``POST /events/count-by/{countable}``."""

    filter: EventFilter
    time_unit: TimeUnit = TimeUnit.day
    time_interval: float = Field(default=1.0, ge=0.01)


class EventCount(BaseModel):
    value: str
    label: str
    count: int
    start_time: dt.datetime
    end_time: dt.datetime
