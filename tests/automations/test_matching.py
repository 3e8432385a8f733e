"""Which events reach an event trigger, which it counts, and their bucket key.

Each rule is checked by hand, then ``test_same_answers_as_prefect`` asks Prefect 3.9.1's own
``EventTrigger`` (``covers`` behind its trigger index, ``expects``, ``starts_after``,
``bucketing_key``, ``meets_threshold``) about every case and compares.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from deputy.automations.matching import (
    bucketing_key,
    covers,
    covers_name,
    expects,
    holds_expect_events,
    interested_triggers,
    is_immediate,
    meets_threshold,
    resource_label,
    starts_after,
    triggering_labels,
)
from deputy.schemas.triggers import EventTrigger
from prefect_models import run_prefect

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def trigger(**fields: Any) -> EventTrigger:
    return EventTrigger.model_validate({"posture": "Reactive", **fields})


def event(
    name: str = "x",
    resource: dict[str, str] | None = None,
    related: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "event": name,
        "occurred": T0,
        "resource": resource or {"prefect.resource.id": "r.1"},
        "related": related or [],
        "payload": {},
        "id": uuid.uuid4(),
    }


FLOW_RUN = {"prefect.resource.id": "prefect.flow-run.1", "prefect.resource.name": "fast"}
RELATED = [
    {"prefect.resource.id": "prefect.flow.9", "prefect.resource.role": "flow", "name": "f"},
    {"prefect.resource.id": "prefect.tag.a", "prefect.resource.role": "tag"},
    {"prefect.resource.id": "prefect.tag.b", "prefect.resource.role": "tag"},
    {"prefect.resource.id": "prefect.deployment.2", "prefect.resource.role": "deployment"},
]


# --- names -------------------------------------------------------------------------------


def test_an_empty_expect_covers_and_counts_every_event() -> None:
    t = trigger()
    assert covers_name(t, "anything.at.all")
    assert expects(t, "anything.at.all")
    assert not starts_after(t, "anything.at.all")


def test_expect_globs() -> None:
    t = trigger(expect=["prefect.flow-run.*"])
    assert covers_name(t, "prefect.flow-run.Completed")
    assert expects(t, "prefect.flow-run.Completed")
    assert not covers_name(t, "prefect.task-run.Completed")
    assert not expects(t, "prefect.task-run.Completed")
    # case sensitive
    assert not covers_name(t, "Prefect.flow-run.Completed")


def test_after_events_reach_the_trigger_but_are_not_counted() -> None:
    t = trigger(after=["start"], expect=["end"])
    assert covers_name(t, "start")
    assert starts_after(t, "start")
    assert not expects(t, "start")
    assert covers_name(t, "end")
    assert expects(t, "end")
    assert not starts_after(t, "end")
    assert not covers_name(t, "other")


def test_an_empty_expect_with_after_counts_every_event() -> None:
    t = trigger(after=["start"])
    assert covers_name(t, "start")
    assert starts_after(t, "start")
    assert expects(t, "start")
    assert covers_name(t, "other")
    assert expects(t, "other")


def test_prefects_event_pattern_quirks() -> None:
    # ``*`` needs at least one character in Prefect's event pattern
    assert not covers_name(trigger(expect=["a.*"]), "a.")
    assert expects(trigger(expect=["a.*"]), "a.")
    # ``?`` and ``[...]`` are literal in it, so such a glob never reaches the trigger...
    assert not covers_name(trigger(expect=["a.b?"]), "a.bc")
    assert not covers_name(trigger(expect=["a.[bc]"]), "a.b")
    # ...unless another pattern lets the event through
    assert covers_name(trigger(expect=["a.b?", "a.*"]), "a.bc")


def test_negated_names() -> None:
    t = trigger(expect=["!prefect.log.write"])
    assert expects(t, "anything")
    assert not expects(t, "prefect.log.write")
    # Prefect's event pattern takes the ``!`` literally: nothing reaches this trigger
    assert not covers_name(t, "anything")


# --- resources ---------------------------------------------------------------------------


def test_match_on_the_resource() -> None:
    assert covers(
        trigger(match={"prefect.resource.id": "prefect.flow-run.*"}), event("x", FLOW_RUN)
    )
    assert not covers(
        trigger(match={"prefect.resource.id": "prefect.task-run.*"}), event("x", FLOW_RUN)
    )
    assert covers(trigger(match={"prefect.resource.name": ["slow", "fa?t"]}), event("x", FLOW_RUN))
    assert covers(trigger(match={"prefect.resource.name": "!slow"}), event("x", FLOW_RUN))
    assert not covers(trigger(match={"prefect.resource.name": "!fast"}), event("x", FLOW_RUN))


def test_a_missing_label_matches_nothing_not_even_a_negation() -> None:
    assert not covers(trigger(match={"color": "*"}), event("x", FLOW_RUN))
    assert not covers(trigger(match={"color": "!red"}), event("x", FLOW_RUN))
    assert not covers(trigger(match={"color": []}), event("x", FLOW_RUN))


def test_every_match_related_specification_must_be_met() -> None:
    one = trigger(match_related={"prefect.resource.role": "tag", "prefect.resource.id": "*.b"})
    assert covers(one, event("x", FLOW_RUN, RELATED))
    both = trigger(
        match_related=[
            {"prefect.resource.id": "prefect.tag.a"},
            {"prefect.resource.id": "prefect.flow.*"},
        ]
    )
    assert covers(both, event("x", FLOW_RUN, RELATED))
    unmet = trigger(
        match_related=[
            {"prefect.resource.id": "prefect.tag.a"},
            {"prefect.resource.id": "prefect.work-pool.*"},
        ]
    )
    assert not covers(unmet, event("x", FLOW_RUN, RELATED))
    # labels of one related resource must all fit that same resource
    split = trigger(
        match_related={"prefect.resource.role": "flow", "prefect.resource.id": "*.tag.a"}
    )
    assert not covers(split, event("x", FLOW_RUN, RELATED))
    # an empty specification fits an event without related resources
    assert covers(trigger(match_related=[{}]), event("x", FLOW_RUN))
    assert not covers(trigger(match_related={"a": "*"}), event("x", FLOW_RUN))


def test_interested_triggers_keep_their_order() -> None:
    a, b, c = trigger(expect=["x"]), trigger(expect=["y"]), trigger()
    assert interested_triggers([a, b, c], event("x")) == [a, c]


# --- buckets and thresholds --------------------------------------------------------------


def test_for_each_keys_are_sorted_and_read_related_resources_by_role() -> None:
    t = trigger(
        for_each=["related:tag:prefect.resource.id", "prefect.resource.name", "related:flow:name"]
    )
    e = event("x", FLOW_RUN, RELATED)
    # sorted labels: prefect.resource.name, related:flow:name, related:tag:prefect.resource.id
    assert bucketing_key(t, e) == ("fast", "f", "prefect.tag.a")  # the first tag
    assert triggering_labels(t, bucketing_key(t, e)) == {
        "prefect.resource.name": "fast",
        "related:flow:name": "f",
        "related:tag:prefect.resource.id": "prefect.tag.a",
    }


def test_missing_labels_give_empty_key_parts() -> None:
    e = event("x", FLOW_RUN, RELATED)
    assert bucketing_key(trigger(for_each=["color"]), e) == ("",)
    assert bucketing_key(trigger(for_each=["related:work-pool:prefect.resource.id"]), e) == ("",)
    # the first resource with the role lacks the label: no look at the next one
    assert resource_label(e, "related:deployment:name") is None
    assert bucketing_key(trigger(), e) == ()


def test_thresholds() -> None:
    reactive = trigger(threshold=3)
    assert [meets_threshold(reactive, n) for n in (2, 3, 4)] == [False, True, True]
    proactive = trigger(posture="Proactive", threshold=3)
    assert [meets_threshold(proactive, n) for n in (2, 3, 4)] == [True, False, False]
    assert is_immediate(trigger())
    assert not is_immediate(trigger(within=5))
    assert not is_immediate(proactive)
    assert holds_expect_events(trigger(posture="Proactive", after=["a"]))
    assert not holds_expect_events(trigger(after=["a"]))
    assert not holds_expect_events(proactive)


# --- against Prefect ---------------------------------------------------------------------

TRIGGERS: list[dict[str, Any]] = [
    {},
    {"expect": ["prefect.flow-run.*"]},
    {"expect": ["a.*"]},
    {"expect": ["a.b?", "a.[bc]"]},
    {"expect": ["a.b?", "a.*"]},
    {"expect": ["!prefect.log.write"]},
    {"expect": ["prefect.flow-run.Completed"]},
    {"after": ["start"], "expect": ["end"]},
    {"after": ["start"]},
    {"after": ["hb"], "expect": ["hb", "prefect.flow-run.Failed"], "posture": "Proactive"},
    {"match": {"prefect.resource.id": "prefect.flow-run.*"}},
    {"match": {"prefect.resource.name": ["slow", "fa?t"]}},
    {"match": {"prefect.resource.name": "!fast"}},
    {"match": {"color": "!red"}},
    {"match_related": {"prefect.resource.role": "tag", "prefect.resource.id": "*.b"}},
    {"match_related": [{"prefect.resource.id": "prefect.tag.a"}, {"prefect.resource.id": "x"}]},
    {"match_related": {"prefect.resource.role": "flow", "prefect.resource.id": "*.tag.a"}},
    {"for_each": ["related:tag:prefect.resource.id", "prefect.resource.name", "color"]},
    {"for_each": ["related:deployment:name", "related:flow:name", "a:b"]},
    {"threshold": 3, "posture": "Proactive"},
    {"threshold": 2},
]
NAMES = [
    "x",
    "a.",
    "a.b",
    "a.bc",
    "a.bcd",
    "start",
    "end",
    "hb",
    "prefect.log.write",
    "prefect.flow-run.Completed",
    "prefect.flow-run.CompletedLater",
    "prefect.flow-run.Failed",
]
RESOURCES: list[tuple[dict[str, str], list[dict[str, str]]]] = [
    (FLOW_RUN, RELATED),
    ({"prefect.resource.id": "prefect.flow-run.2", "prefect.resource.name": "slow"}, []),
    ({"prefect.resource.id": "other", "color": "red"}, RELATED[1:]),
]


def test_same_answers_as_prefect() -> None:
    cases = [
        (t, name, resource, related)
        for t in TRIGGERS
        for name in NAMES
        for resource, related in RESOURCES
    ]
    answers = run_prefect(
        """
        import json, sys, uuid, fnmatch
        from datetime import datetime, timezone
        from prefect.server.events.schemas.automations import EventTrigger
        from prefect.server.events.schemas.events import ReceivedEvent

        answers = []
        for body, name, resource, related in json.load(sys.stdin):
            t = EventTrigger.model_validate({"posture": "Reactive", **body})
            e = ReceivedEvent(
                occurred=datetime(2025, 1, 1, tzinfo=timezone.utc), event=name,
                resource=resource, related=related, id=uuid.uuid4(),
            )
            # the trigger index of prefect.server.events.triggers, then covers()
            keys = {"*"} if not t.expect else t.expect | t.after
            indexed = any(fnmatch.fnmatchcase(name, key) for key in keys)
            answers.append([
                indexed and t.covers(e), t.expects(name), t.starts_after(name),
                list(t.bucketing_key(e)), [t.meets_threshold(n) for n in range(5)],
            ])
        print(json.dumps(answers))
        """,
        json.dumps(cases),
    )
    for (body, name, resource, related), answer in zip(cases, answers, strict=True):
        t = trigger(**body)
        e = event(name, resource, related)
        ours = [
            covers(t, e),
            expects(t, name),
            starts_after(t, name),
            list(bucketing_key(t, e)),
            [meets_threshold(t, n) for n in range(5)],
        ]
        assert ours == answer, (body, name, resource)


@pytest.mark.parametrize("name", ["", "a"])
def test_names_never_reaching_an_empty_pattern(name: str) -> None:
    # Prefect's ``.+`` needs a character: an empty name reaches no trigger
    assert covers_name(trigger(), name) is bool(name)
