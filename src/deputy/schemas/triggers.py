"""Automation triggers as clients send them: event, compound and sequence triggers.

Field for field with Prefect 3.9.1's server triggers, with the same defaults when dumped
(``model_dump(mode="json")``): a generated ``id``, ``within`` in seconds, empty ``match`` /
``match_related`` / ``after`` / ``expect`` / ``for_each``, ``threshold`` 1, and ``within`` 10
seconds for a proactive trigger sent without one. Unknown keys are ignored, as in Prefect.
Error types, locations and messages are Prefect's too, down to the union branch names
(``function-after[validate_require(), CompoundTrigger]``) that show in a 422.

``expect``, ``after`` and ``for_each`` are sets in Prefect, answered in arbitrary order; here
they keep the order they were sent in, without repeats.

deputy refuses a few values Prefect stores and then misbehaves on (``threshold`` below 1,
``within`` beyond ten years, composite triggers without triggers or with a negative
``within``): see "Where deputy is stricter than Prefect" in ``deputy.schemas.automations``.
"""

from __future__ import annotations

import datetime as dt
import enum
import fnmatch
import uuid
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetPydanticSchema,
    RootModel,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema

#: The shortest window a proactive trigger may wait for its events (and its default).
PROACTIVE_MINIMUM_WITHIN = dt.timedelta(seconds=10)
#: The longest ``within`` (or ``schedule_after``) deputy accepts: ten years.
MAX_DURATION = dt.timedelta(days=3653)
#: The largest ``threshold`` deputy accepts (the largest 32-bit signed integer).
MAX_THRESHOLD = 2**31 - 1


class Posture(enum.StrEnum):
    """Reactive triggers answer to events that happen, proactive ones to events that don't."""

    Reactive = "Reactive"
    Proactive = "Proactive"
    Metric = "Metric"

    def __repr__(self) -> str:
        # Shows in Prefect's messages: "Input should be Posture.Reactive or ...".
        return f"{type(self).__name__}.{self.value}"


# --- durations ---------------------------------------------------------------------------


def too_long(field: str, value: dt.timedelta) -> str:
    """The message refusing a duration beyond :data:`MAX_DURATION`."""
    seconds = value.total_seconds()
    given = f"{seconds:.0f}" if seconds.is_integer() else str(seconds)
    return (
        f"`{field}` must be at most {MAX_DURATION.total_seconds():.0f} seconds "
        f"({MAX_DURATION.days} days, about ten years), not {given}"
    )


def _at_most_ten_years(value: dt.timedelta, info: ValidationInfo) -> dt.timedelta:
    if value > MAX_DURATION:
        raise ValueError(too_long(info.field_name or "within", value))
    return value


def _composite_window(value: dt.timedelta, info: ValidationInfo) -> dt.timedelta:
    """0 to ten years. Checked only when the rest of the trigger so far is valid: a body
    that is not a composite trigger at all gets Prefect's errors, without more."""
    if "type" not in info.data or "triggers" not in info.data:
        return value
    if value < dt.timedelta(0):
        raise ValueError(f"`{info.field_name}` must not be negative")
    return _at_most_ten_years(value, info)


_DURATION_IN = WithJsonSchema(
    {"anyOf": [{"type": "number"}, {"type": "string", "format": "duration"}]},
    mode="validation",
)
_DURATION_OUT = WithJsonSchema({"type": "number"}, mode="serialization")

#: An event trigger's window: seconds or an ISO 8601 duration, 0 to ten years.
EventWithin = Annotated[
    dt.timedelta,
    Field(ge=dt.timedelta(0)),
    AfterValidator(_at_most_ten_years),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "format": "duration"}]},
        mode="validation",
    ),
    _DURATION_OUT,
]
#: A composite trigger's window: 0 to ten years (Prefect takes any duration, even negative).
CompositeWithin = Annotated[
    dt.timedelta,
    AfterValidator(_composite_window),
    _DURATION_IN,
    _DURATION_OUT,
]

_TIMEDELTA = TypeAdapter(dt.timedelta)


# --- label sets and resource specifications ----------------------------------------------


def _keep_order(value: Any, handler: core_schema.ValidatorFunctionWrapHandler) -> list[str]:
    """Validate as a set (Prefect's errors), answer a list in the order sent."""
    validated: set[str] = handler(value)
    if isinstance(value, list | tuple):
        ordered = [item for item in dict.fromkeys(value) if item in validated]
        if len(ordered) == len(validated):
            return ordered
    return sorted(validated)


#: A set of strings that keeps the order it was sent in.
StringSet = Annotated[
    list[str],
    GetPydanticSchema(
        lambda _source, _handler: core_schema.no_info_wrap_validator_function(
            _keep_order,
            core_schema.set_schema(core_schema.str_schema()),
            serialization=core_schema.plain_serializer_function_ser_schema(list),
        )
    ),
]


def label_matches(pattern: str, value: str | None) -> bool:
    """Whether a label's value fits a pattern: a glob (``*``, ``?``, ``[...]``, case
    sensitive), negated by a leading ``!``. An absent label fits nothing."""
    if value is None:
        return False
    if pattern.startswith("!"):
        return not fnmatch.fnmatchcase(value, pattern[1:])
    return fnmatch.fnmatchcase(value, pattern)


class ResourceSpecification(RootModel[dict[str, str | list[str]]]):
    """Label patterns a resource must fit: one pattern or a list (any of them) per label."""

    def patterns(self) -> list[tuple[str, list[str]]]:
        return [
            (label, [value] if isinstance(value, str) else value)
            for label, value in self.root.items()
        ]

    def matches_every_resource(self) -> bool:
        return not self.root

    def matches_every_resource_of_kind(self, kind: str) -> bool:
        """Whether this matches every resource whose id starts with ``kind.``: nothing
        specified, or only ``prefect.resource.id`` with the pattern ``<kind>.*``."""
        if self.matches_every_resource():
            return True
        if len(self.root) != 1 or not self.root.get("prefect.resource.id"):
            return False
        ids = self.root["prefect.resource.id"]
        return f"{kind}.*" in ([ids] if isinstance(ids, str) else ids)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether one resource (its labels) fits every label's patterns."""
        return all(
            any(label_matches(pattern, labels.get(label)) for pattern in patterns)
            for label, patterns in self.patterns()
        )

    def includes(self, resources: Iterable[Mapping[str, str]]) -> bool:
        """Whether any of ``resources`` fits (always, when nothing is specified)."""
        return self.matches_every_resource() or any(self.matches(r) for r in resources)


ResourceSpecificationDict = dict[str, str | list[str]]


def _specification(value: Any) -> Any:
    return ResourceSpecification.model_validate(value) if isinstance(value, dict) else value


def _empty_specification() -> ResourceSpecification:
    return ResourceSpecification({})


# --- triggers ----------------------------------------------------------------------------


class Trigger(BaseModel):
    """What all triggers share: a kind and an id (replaced by the server on create/update)."""

    model_config = ConfigDict(extra="ignore", ser_json_timedelta="float")

    type: str
    id: uuid.UUID = Field(default_factory=uuid.uuid4, description="The unique ID of this trigger")

    def all_triggers(self) -> list[Trigger]:
        """This trigger and every trigger inside it, outermost first."""
        return [self]

    def reset_ids(self) -> None:
        """Give this trigger and every trigger inside it a new id, as the server does."""
        for trigger in self.all_triggers():
            trigger.id = uuid.uuid4()


class ResourceTrigger(Trigger):
    """A trigger that filters events by the labels of their resources."""

    match: ResourceSpecification | ResourceSpecificationDict = Field(
        default_factory=_empty_specification,
        description="Labels for resources which this trigger will match.",
    )
    match_related: (
        ResourceSpecification
        | ResourceSpecificationDict
        | list[ResourceSpecification | ResourceSpecificationDict]
    ) = Field(
        default_factory=_empty_specification,
        description="Labels for related resources which this trigger will match.",
    )

    @field_validator("match", mode="before")
    @classmethod
    def _coerce_match(cls, value: Any) -> Any:
        return _specification(value)

    @field_validator("match_related", mode="before")
    @classmethod
    def _coerce_match_related(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [_specification(item) for item in value]
        return _specification(value)

    def match_specification(self) -> ResourceSpecification:
        return ResourceSpecification.model_validate(self.match)

    def related_specifications(self) -> list[ResourceSpecification]:
        """``match_related`` as a list (an object is a list of one)."""
        related = (
            self.match_related if isinstance(self.match_related, list) else [self.match_related]
        )
        return [ResourceSpecification.model_validate(item) for item in related]


def _threshold_in_range(value: int) -> int:
    if value < 1:
        raise ValueError(
            "`threshold` must be at least 1: it is the number of events that fire a reactive "
            "trigger, or the number a proactive trigger expects"
        )
    if value > MAX_THRESHOLD:
        raise ValueError(f"`threshold` must be at most {MAX_THRESHOLD}")
    return value


def _proactive_window(data: Any) -> Any:
    """Prefect's rule for ``within`` before the fields are read: ``null`` is refused, and a
    proactive trigger waits at least 10 seconds (10 when ``within`` is absent or zero)."""
    if not isinstance(data, dict):
        return data
    if "within" in data and data["within"] is None:
        raise ValueError("`within` should be a valid timedelta")
    within = data.get("within")
    if within is not None and not isinstance(within, dt.timedelta):
        try:
            within = _TIMEDELTA.validate_python(within)
        except ValidationError:
            return data  # the field reports it
        data = {**data, "within": within}
    if data.get("posture") == Posture.Proactive:
        if not within:
            data = {**data, "within": PROACTIVE_MINIMUM_WITHIN}
        elif within < PROACTIVE_MINIMUM_WITHIN:
            raise ValueError(
                "`within` for Proactive triggers must be greater than or equal to 10 seconds"
            )
    return data


class EventTrigger(ResourceTrigger):
    """Fires on the presence (reactive) or absence (proactive) of events within a window."""

    type: Literal["event"] = "event"
    after: StringSet = Field(
        default_factory=list,
        description="Events (trailing * wildcards allowed) that must be seen first.",
    )
    expect: StringSet = Field(
        default_factory=list,
        description="Events (trailing * wildcards allowed) the trigger counts; empty: any.",
    )
    for_each: StringSet = Field(
        default_factory=list,
        description="Labels whose values split the counting into separate buckets "
        "(``related:<role>:<label>`` reads a related resource).",
    )
    posture: Literal[Posture.Reactive, Posture.Proactive] = Field(
        description="Reactive: fire on the expected events; Proactive: on their absence."
    )
    threshold: Annotated[int, AfterValidator(_threshold_in_range)] = Field(
        default=1, description="Events needed to fire (reactive) or expected (proactive)."
    )
    within: EventWithin = Field(
        default=dt.timedelta(0),
        description="The window the events are counted over, in seconds; at least 10 for "
        "a proactive trigger.",
    )

    @model_validator(mode="before")
    @classmethod
    def _within_for_posture(cls, data: Any) -> Any:
        return _proactive_window(data)


def _has_triggers(value: list[Any]) -> list[Any]:
    if not value:
        raise ValueError("a compound or sequence trigger needs at least one trigger")
    return value


class CompositeTrigger(Trigger):
    """Fires when enough of its triggers fired within ``within``."""

    type: Literal["compound", "sequence"]
    triggers: Annotated[list[TriggerTypes], AfterValidator(_has_triggers)]
    within: CompositeWithin | None

    def all_triggers(self) -> list[Trigger]:
        return [self, *(t for child in self.triggers for t in child.all_triggers())]


class CompoundTrigger(CompositeTrigger):
    """Fires when ``require`` of its triggers ("any", "all" or a number) fired."""

    type: Literal["compound"] = "compound"
    require: int | Literal["any", "all"]

    @model_validator(mode="after")
    def validate_require(self) -> Self:
        # The name shows in error locations ("function-after[validate_require(), ...]").
        if isinstance(self.require, int):
            if self.require < 1:
                raise ValueError("require must be at least 1")
            if self.require > len(self.triggers):
                raise ValueError("require must be less than or equal to the number of triggers")
        return self


class SequenceTrigger(CompositeTrigger):
    """Fires when all of its triggers fired, in their order."""

    type: Literal["sequence"] = "sequence"


#: The triggers a client may create on Prefect's open-source server, in Prefect's order
#: (which decides the order of errors in a 422). Each branch is labelled as Prefect's 422s
#: name it: pydantic's own label for a recursive model depends on the order models are
#: built in, and is sometimes ``function-after[validate_require(), function-after[...]]``.
TriggerTypes = (
    Annotated[EventTrigger, Tag("EventTrigger")]
    | Annotated[CompoundTrigger, Tag("function-after[validate_require(), CompoundTrigger]")]
    | Annotated[SequenceTrigger, Tag("SequenceTrigger")]
)

CompoundTrigger.model_rebuild()
SequenceTrigger.model_rebuild()
