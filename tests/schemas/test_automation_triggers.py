"""Automation triggers: what is accepted, how it is answered, what is refused and how.

Expected dumps and errors were recorded from Prefect 3.9.1's server models
(``prefect.server.events.schemas.automations``); ``test_same_as_prefect`` asks Prefect's own
models (in ``.venv-prefect``) about every body of ``PARITY_BODIES``.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from deputy.schemas.triggers import (
    MAX_THRESHOLD,
    CompoundTrigger,
    EventTrigger,
    Posture,
    ResourceSpecification,
    SequenceTrigger,
    label_matches,
)
from prefect_models import comparable, deputy_answer, prefect_answers

ID = "7b0a8f7e-9f1b-4c8f-8c67-8d6b5b1d2f3e"
REACTIVE = {"type": "event", "posture": "Reactive", "id": ID}
POSTURES = "Input should be Posture.Reactive or Posture.Proactive"
MINIMUM = "Value error, `within` for Proactive triggers must be greater than or equal to 10 seconds"

Errors = list[tuple[str, tuple[str | int, ...], str]]


def event(body: dict[str, Any]) -> dict[str, Any]:
    dump = EventTrigger.model_validate(body).model_dump(mode="json")
    dump.pop("id")
    return dump


def errors(model: type[Any], body: Any) -> Errors:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return [(e["type"], e["loc"], e["msg"]) for e in caught.value.errors()]


def test_event_trigger_defaults() -> None:
    assert event({"posture": "Reactive"}) == {
        "type": "event",
        "match": {},
        "match_related": {},
        "after": [],
        "expect": [],
        "for_each": [],
        "posture": "Reactive",
        "threshold": 1,
        "within": 0.0,
    }


def test_ids_are_kept_generated_and_reset() -> None:
    assert str(EventTrigger.model_validate(REACTIVE).id) == ID
    first, second = (EventTrigger(posture=Posture.Reactive) for _ in range(2))
    assert first.id.version == 4
    assert first.id != second.id
    inner = CompoundTrigger.model_validate(
        {"require": "any", "within": None, "triggers": [REACTIVE]}
    )
    sequence = SequenceTrigger.model_validate(
        {"id": ID, "within": 60, "triggers": [REACTIVE, inner.model_dump()]}
    )
    before = [trigger.id for trigger in sequence.all_triggers()]
    assert len(before) == 4
    sequence.reset_ids()
    after = [trigger.id for trigger in sequence.all_triggers()]
    assert len(set(after)) == 4
    assert not set(before) & set(after)


@pytest.mark.parametrize(
    ("posture", "within", "seconds"),
    [
        ("Reactive", 5, 5.0),
        ("Reactive", 9.5, 9.5),
        ("Reactive", "PT10S", 10.0),
        ("Reactive", "P1D", 86400.0),
        ("Reactive", "00:00:10", 10.0),
        ("Reactive", True, 1.0),
        ("Proactive", 0, 10.0),
        ("Proactive", "PT0S", 10.0),
        ("Proactive", 10, 10.0),
        ("Proactive", 30, 30.0),
    ],
)
def test_within(posture: str, within: Any, seconds: float) -> None:
    assert event({"posture": posture, "within": within})["within"] == seconds


def test_proactive_trigger_waits_ten_seconds_by_default() -> None:
    assert event({"posture": "Proactive"})["within"] == 10.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"posture": "Proactive", "within": 5}, [("value_error", (), MINIMUM)]),
        ({"posture": "Proactive", "within": 9.5}, [("value_error", (), MINIMUM)]),
        ({"posture": "Proactive", "within": -1}, [("value_error", (), MINIMUM)]),
        (
            {"posture": "Reactive", "within": -1},
            [
                (
                    "greater_than_equal",
                    ("within",),
                    "Input should be greater than or equal to 0 seconds",
                )
            ],
        ),
        (
            {"posture": "Reactive", "within": None},
            [("value_error", (), "Value error, `within` should be a valid timedelta")],
        ),
        (
            {"posture": "Reactive", "within": "10"},
            [
                (
                    "time_delta_parsing",
                    ("within",),
                    'Input should be a valid timedelta, "day" identifier in duration not '
                    "correctly formatted",
                )
            ],
        ),
        (
            {"posture": "Reactive", "within": 1e15},
            [
                (
                    "time_delta_parsing",
                    ("within",),
                    "Input should be a valid timedelta, durations may not exceed 999,999,999 days",
                )
            ],
        ),
        (
            {"posture": "Reactive", "within": []},
            [("time_delta_type", ("within",), "Input should be a valid timedelta")],
        ),
    ],
)
def test_within_errors(body: dict[str, Any], expected: Errors) -> None:
    assert errors(EventTrigger, body) == expected


def test_sets_keep_the_order_sent_without_repeats() -> None:
    dump = event(
        {
            "posture": "Reactive",
            "expect": ["b", "a", "b"],
            "after": ["prefect.flow-run.*"],
            "for_each": ["related:flow:prefect.resource.id", "prefect.resource.id"],
        }
    )
    assert dump["expect"] == ["b", "a"]
    assert dump["after"] == ["prefect.flow-run.*"]
    assert dump["for_each"] == ["related:flow:prefect.resource.id", "prefect.resource.id"]
    # a Python set has no order of its own: it is answered sorted
    assert EventTrigger(posture=Posture.Reactive, expect={"z", "a"}).expect == ["a", "z"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"expect": "x"}, [("set_type", ("expect",), "Input should be a valid set")]),
        ({"expect": None}, [("set_type", ("expect",), "Input should be a valid set")]),
        ({"after": {"a": 1}}, [("set_type", ("after",), "Input should be a valid set")]),
        ({"for_each": [1]}, [("string_type", ("for_each", 0), "Input should be a valid string")]),
        ({"posture": "reactive"}, [("literal_error", ("posture",), POSTURES)]),
        ({"posture": "Metric"}, [("literal_error", ("posture",), POSTURES)]),
        ({"posture": None}, [("literal_error", ("posture",), POSTURES)]),
        ({"threshold": None}, [("int_type", ("threshold",), "Input should be a valid integer")]),
        (
            {"threshold": 3.5},
            [
                (
                    "int_from_float",
                    ("threshold",),
                    "Input should be a valid integer, got a number with a fractional part",
                )
            ],
        ),
        ({"type": "metric"}, [("literal_error", ("type",), "Input should be 'event'")]),
        (
            {"id": "not-a-uuid"},
            [
                (
                    "uuid_parsing",
                    ("id",),
                    "Input should be a valid UUID, invalid character: found `n` at 0",
                )
            ],
        ),
    ],
)
def test_event_trigger_errors(body: dict[str, Any], expected: Errors) -> None:
    assert errors(EventTrigger, {"posture": "Reactive", **body}) == expected


def test_posture_is_required() -> None:
    assert errors(EventTrigger, {}) == [("missing", ("posture",), "Field required")]


@pytest.mark.parametrize(("threshold", "expected"), [("3", 3), (3.0, 3), (True, 1), (7, 7)])
def test_threshold_is_an_integer(threshold: Any, expected: int) -> None:
    assert event({"posture": "Reactive", "threshold": threshold})["threshold"] == expected


def test_match_and_match_related() -> None:
    dump = event(
        {
            "posture": "Reactive",
            "match": {"prefect.resource.id": ["a.*", "b.*"], "x": "y"},
            "match_related": [{"prefect.resource.role": "flow"}, {}],
        }
    )
    assert dump["match"] == {"prefect.resource.id": ["a.*", "b.*"], "x": "y"}
    assert dump["match_related"] == [{"prefect.resource.role": "flow"}, {}]
    assert event({"posture": "Reactive", "match_related": []})["match_related"] == []
    trigger = EventTrigger.model_validate({"posture": "Reactive", "match_related": {"a": "b"}})
    assert [spec.root for spec in trigger.related_specifications()] == [{"a": "b"}]
    assert trigger.match_specification().root == {}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"match": {"a": 1}},
            [
                ("string_type", ("match", "a", "str"), "Input should be a valid string"),
                ("list_type", ("match", "a", "list[str]"), "Input should be a valid list"),
            ],
        ),
        (
            {"match": []},
            [
                (
                    "dict_type",
                    ("match", "ResourceSpecification"),
                    "Input should be a valid dictionary",
                ),
                (
                    "dict_type",
                    ("match", "dict[str,union[str,list[str]]]"),
                    "Input should be a valid dictionary",
                ),
            ],
        ),
        (
            {"match_related": None},
            [
                (
                    "dict_type",
                    ("match_related", "ResourceSpecification"),
                    "Input should be a valid dictionary",
                ),
                (
                    "dict_type",
                    ("match_related", "dict[str,union[str,list[str]]]"),
                    "Input should be a valid dictionary",
                ),
                (
                    "list_type",
                    (
                        "match_related",
                        "list[union[ResourceSpecification,dict[str,union[str,list[str]]]]]",
                    ),
                    "Input should be a valid list",
                ),
            ],
        ),
    ],
)
def test_resource_specification_errors(body: dict[str, Any], expected: Errors) -> None:
    assert errors(EventTrigger, {"posture": "Reactive", **body}) == expected


# --- composite triggers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("require", "expected"), [("any", "any"), ("all", "all"), (1, 1), ("1", 1), (True, 1)]
)
def test_compound_require(require: Any, expected: Any) -> None:
    trigger = CompoundTrigger.model_validate(
        {"triggers": [REACTIVE], "require": require, "within": None}
    )
    assert trigger.model_dump(mode="json") == {
        "type": "compound",
        "id": str(trigger.id),
        "triggers": [EventTrigger.model_validate(REACTIVE).model_dump(mode="json")],
        "within": None,
        "require": expected,
    }


@pytest.mark.parametrize(
    ("require", "expected"),
    [
        (0, [("value_error", (), "Value error, require must be at least 1")]),
        (
            2,
            [
                (
                    "value_error",
                    (),
                    "Value error, require must be less than or equal to the number of triggers",
                )
            ],
        ),
        (
            "some",
            [
                (
                    "int_parsing",
                    ("require", "int"),
                    "Input should be a valid integer, unable to parse string as an integer",
                ),
                (
                    "literal_error",
                    ("require", "literal['any','all']"),
                    "Input should be 'any' or 'all'",
                ),
            ],
        ),
    ],
)
def test_compound_require_errors(require: Any, expected: Errors) -> None:
    body = {"triggers": [REACTIVE], "require": require, "within": 5}
    assert errors(CompoundTrigger, body) == expected


def test_sequence_and_nesting() -> None:
    compound = {"type": "compound", "id": ID, "triggers": [REACTIVE], "require": "all", "within": 1}
    trigger = SequenceTrigger.model_validate({"triggers": [REACTIVE, compound], "within": "PT1M"})
    dump = trigger.model_dump(mode="json")
    assert dump["within"] == 60.0
    assert dump["triggers"][1] == {
        **compound,
        "within": 1.0,
        "triggers": [event(REACTIVE) | {"id": ID}],
    }
    assert errors(SequenceTrigger, {"triggers": [REACTIVE]}) == [
        ("missing", ("within",), "Field required")
    ]


# --- deputy's stricter checks ------------------------------------------------------------

TEN_YEARS = "must be at most 315619200 seconds (3653 days, about ten years)"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"threshold": 0}, "`threshold` must be at least 1"),
        ({"threshold": -1}, "`threshold` must be at least 1"),
        ({"posture": "Proactive", "threshold": 0}, "`threshold` must be at least 1"),
        ({"threshold": MAX_THRESHOLD + 1}, "`threshold` must be at most 2147483647"),
        ({"threshold": 10**20}, "`threshold` must be at most 2147483647"),
        ({"within": 10**12}, f"`within` {TEN_YEARS}, not 1000000000000"),
        ({"posture": "Proactive", "within": "P4000D"}, f"`within` {TEN_YEARS}, not 345600000"),
    ],
)
def test_event_trigger_nonsense_is_refused(body: dict[str, Any], message: str) -> None:
    [(kind, loc, text)] = errors(EventTrigger, {"posture": "Reactive", **body})
    assert (kind, loc[0]) == ("value_error", next(iter(body.keys() - {"posture"})))
    assert text.startswith(f"Value error, {message}")


def test_thresholds_at_the_bounds_are_accepted() -> None:
    assert event({"posture": "Reactive", "threshold": 1})["threshold"] == 1
    assert event({"posture": "Reactive", "threshold": MAX_THRESHOLD})["threshold"] == MAX_THRESHOLD
    assert event({"posture": "Reactive", "within": "P3653D"})["within"] == 315619200.0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"triggers": [], "within": 5},
            ("triggers", "a compound or sequence trigger needs at least one trigger"),
        ),
        ({"triggers": [REACTIVE], "within": -5}, ("within", "`within` must not be negative")),
        (
            {"triggers": [REACTIVE], "within": 10**12},
            ("within", f"`within` {TEN_YEARS}, not 1000000000000"),
        ),
    ],
)
@pytest.mark.parametrize("model", [CompoundTrigger, SequenceTrigger])
def test_composite_nonsense_is_refused(
    model: type[CompoundTrigger | SequenceTrigger],
    body: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    field, message = expected
    assert errors(model, {"require": "all", **body}) == [
        ("value_error", (field,), f"Value error, {message}")
    ]


# --- resource specifications -------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("prefect.flow-run.*", "prefect.flow-run.123", True),
        ("prefect.flow-run.*", "prefect.flow.123", False),
        ("!prefect.flow-run.*", "prefect.flow.123", True),
        ("!prefect.flow-run.*", "prefect.flow-run.1", False),
        ("a?c", "abc", True),
        ("ABC", "abc", False),
        ("*", None, False),
        ("!x", None, False),
    ],
)
def test_label_matches(pattern: str, value: str | None, expected: bool) -> None:
    assert label_matches(pattern, value) is expected


def test_resource_specification_matching() -> None:
    spec = ResourceSpecification({"prefect.resource.id": ["a.*", "b.*"], "env": "prod"})
    assert spec.matches({"prefect.resource.id": "b.1", "env": "prod"})
    assert not spec.matches({"prefect.resource.id": "c.1", "env": "prod"})
    assert not spec.matches({"prefect.resource.id": "a.1"})
    assert spec.includes(
        [{"prefect.resource.id": "c"}, {"prefect.resource.id": "a.2", "env": "prod"}]
    )
    assert not spec.includes([])
    assert ResourceSpecification({}).includes([])


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ({}, True),
        ({"prefect.resource.id": "prefect.flow-run.*"}, True),
        ({"prefect.resource.id": ["x", "prefect.flow-run.*"]}, True),
        ({"prefect.resource.id": "prefect.flow-run.1"}, False),
        ({"prefect.resource.id": "prefect.flow-run.*", "a": "b"}, False),
        ({"prefect.resource.id": ""}, False),
        ({"prefect.resource.role": "flow-run"}, False),
    ],
)
def test_matches_every_resource_of_kind(root: dict[str, Any], expected: bool) -> None:
    spec = ResourceSpecification(root)
    assert spec.matches_every_resource_of_kind("prefect.flow-run") is expected


# --- the same as Prefect -----------------------------------------------------------------

EVENT_VARIANTS: list[dict[str, Any]] = [
    {},
    {"threshold": "3"},
    {"threshold": True},
    {"threshold": 3.5},
    {"posture": "reactive"},
    {"posture": 5},
    {"match": {"a": 1}},
    {"match": {"a": ["x", 1]}},
    {"match": "x"},
    {"match_related": [{"a": "b"}, "x"]},
    {"match_related": {"a": ["b", "c"]}},
    {"expect": ["a", "a", "b"]},
    {"expect": [1]},
    {"type": "event", "extra": 1},
    {"id": ID},
    {"type": None},
    {"within": 5},
    {"within": "P1D"},
    {"within": None},
    {"within": -1},
    {"within": "abc"},
    {"posture": "Proactive"},
    {"posture": "Proactive", "within": 5},
    {"posture": "Proactive", "within": -1},
    {"posture": "Proactive", "within": "PT0S"},
]
COMPOUND_VARIANTS: list[dict[str, Any]] = [
    {"triggers": [REACTIVE], "require": "any", "within": None},
    {"triggers": [REACTIVE], "require": 0, "within": None},
    {"triggers": [REACTIVE], "require": 2, "within": None},
    {"triggers": [REACTIVE], "require": "some", "within": 5},
    {"triggers": [REACTIVE], "require": "all"},
    {"triggers": "x", "require": "all", "within": 1},
    {"triggers": [{"posture": "nope"}], "require": "all", "within": 1},
    {
        "triggers": [{"type": "compound", "triggers": [{"posture": "x"}], "within": 1}],
        "require": "any",
        "within": None,
    },
]
PARITY_BODIES: list[Any] = [
    *({"posture": "Reactive", **extra} for extra in EVENT_VARIANTS),
    {},
    [],
    "x",
    {"type": "metric"},
    *({"type": "compound", **body} for body in COMPOUND_VARIANTS),
    {"type": "sequence", "triggers": [REACTIVE, REACTIVE], "within": "PT1M"},
    {"type": "sequence", "triggers": [REACTIVE]},
    {"triggers": [REACTIVE], "require": "any", "within": 5, "posture": "Reactive"},
    {"triggers": [REACTIVE], "within": 5},
]


def test_same_as_prefect() -> None:
    answers = prefect_answers([("Trigger", body) for body in PARITY_BODIES])
    for body, theirs in zip(PARITY_BODIES, answers, strict=True):
        assert comparable(deputy_answer("Trigger", body)) == comparable(theirs), body
