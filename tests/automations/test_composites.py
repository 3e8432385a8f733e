"""Compound and sequence triggers: child firings recorded as data, explicit times."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from deputy.automations.composites import (
    CompositeStep,
    expected_firings,
    fire_upwards,
    on_child_firing,
    parent_of,
    ready_to_fire,
)
from deputy.automations.firings import Firing
from deputy.schemas.triggers import CompositeTrigger, CompoundTrigger, SequenceTrigger

T0 = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def child(name: str) -> dict[str, Any]:
    return {"type": "event", "posture": "Reactive", "expect": [name]}


def compound(require: int | str, n: int = 2, within: float | None = 60) -> CompoundTrigger:
    return CompoundTrigger.model_validate(
        {
            "type": "compound",
            "require": require,
            "within": within,
            "triggers": [child(f"e{i}") for i in range(n)],
        }
    )


def sequence(n: int = 2, within: float | None = 60) -> SequenceTrigger:
    return SequenceTrigger.model_validate(
        {"type": "sequence", "within": within, "triggers": [child(f"e{i}") for i in range(n)]}
    )


def fired(parent: CompositeTrigger, index: int, seconds: float) -> Firing:
    event = {"event": f"e{index}", "occurred": at(seconds), "id": uuid.uuid4()}
    return Firing(
        id=uuid.uuid4(),
        trigger_id=parent.triggers[index].id,
        triggered=at(seconds),
        triggering_event=event,
    )


class Parent:
    """One composite trigger's recorded child firings, in memory."""

    def __init__(self, trigger: CompositeTrigger) -> None:
        self.trigger = trigger
        self.recorded: list[Firing] = []

    def fire(self, index: int, seconds: float) -> CompositeStep:
        step = on_child_firing(
            self.trigger, self.recorded, fired(self.trigger, index, seconds), now=at(seconds)
        )
        self.recorded = list(step.remaining)
        return step


def test_expected_firings() -> None:
    assert expected_firings(compound("any", 3)) == 1
    assert expected_firings(compound("all", 3)) == 3
    assert expected_firings(compound(2, 3)) == 2
    assert expected_firings(sequence(3)) == 3


def test_any_fires_at_once_and_records_nothing() -> None:
    parent = Parent(compound("any"))
    step = parent.fire(1, 0)
    assert step.firing is not None
    assert step.record is None
    assert step.remaining == ()
    assert [f.trigger_id for f in step.firing.triggering_firings] == [parent.trigger.triggers[1].id]
    assert step.firing.triggering_event == step.firing.triggering_firings[0].triggering_event
    assert step.firing.triggered == at(0)


def test_all_waits_for_every_child() -> None:
    parent = Parent(compound("all"))
    first = parent.fire(0, 0)
    assert first.firing is None
    assert first.record is not None
    assert parent.recorded == [first.record]
    second = parent.fire(1, 5)
    assert second.firing is not None
    assert second.consumed == (first.record.id,)
    assert second.remaining == ()
    assert parent.recorded == []
    assert len(second.firing.triggering_firings) == 2
    event = second.firing.triggering_event
    assert event is not None
    assert event["event"] == "e1"
    # as Prefect's ``Firing.all_events``: the parent's event, then each child's
    assert [e["event"] for e in second.firing.all_events()] == ["e1", "e0", "e1"]
    # consumed: the next firing starts over
    assert parent.fire(0, 6).firing is None


def test_a_number_of_children() -> None:
    parent = Parent(compound(2, 3))
    assert parent.fire(2, 0).firing is None
    assert parent.fire(0, 1).firing is not None


def test_a_child_firing_twice_counts_once() -> None:
    parent = Parent(compound("all"))
    first = parent.fire(0, 0)
    again = parent.fire(0, 1)
    assert again.firing is None
    assert first.record is not None
    assert again.replaced == first.record.id
    assert [f.id for f in parent.recorded] == [again.record.id if again.record else None]
    assert parent.fire(1, 2).firing is not None


def test_within_forgets_old_firings() -> None:
    parent = Parent(compound("all", within=10))
    first = parent.fire(0, 0)
    step = parent.fire(1, 10)  # exactly 10 seconds later: still inside
    assert step.firing is not None
    parent.fire(0, 20)
    step = parent.fire(1, 30.5)
    assert step.firing is None
    assert len(step.expired) == 1
    assert first.record is not None
    assert len(parent.recorded) == 1


def test_without_within_nothing_expires() -> None:
    parent = Parent(compound("all", within=None))
    parent.fire(0, 0)
    assert parent.fire(1, 10**6).firing is not None


def test_sequence_in_order() -> None:
    parent = Parent(sequence(3))
    assert parent.fire(0, 0).firing is None
    assert parent.fire(1, 1).firing is None
    step = parent.fire(2, 2)
    assert step.firing is not None
    assert [f.trigger_id for f in step.firing.triggering_firings] == [
        t.id for t in parent.trigger.triggers
    ]


def test_sequence_out_of_order_waits() -> None:
    parent = Parent(sequence(2))
    parent.fire(1, 0)
    assert parent.fire(0, 1).firing is None  # second before first: no
    assert len(parent.recorded) == 2
    step = parent.fire(1, 2)  # the second child again, now after the first
    assert step.firing is not None


def test_sequence_with_equal_times_keeps_the_recorded_order() -> None:
    t = sequence(2)
    one = fired(t, 1, 0)
    zero = fired(t, 0, 0)
    assert not ready_to_fire(t, [one, zero])
    assert ready_to_fire(t, [zero, one])


def test_sequence_of_one_fires_at_once() -> None:
    assert Parent(sequence(1)).fire(0, 0).firing is not None


def test_refuses_a_stranger() -> None:
    parent = compound("all")
    other = fired(compound("all"), 0, 0)
    with pytest.raises(ValueError, match="not a child"):
        on_child_firing(parent, [], other, now=at(0))


def test_parent_firing_ids_are_determined_by_the_children() -> None:
    t = compound("all")
    a, b = fired(t, 0, 0), fired(t, 1, 1)
    first = on_child_firing(t, [a], b, now=at(1))
    again = on_child_firing(t, [a], b, now=at(2))
    assert first.firing is not None
    assert again.firing is not None
    assert first.firing.id == again.firing.id


def test_fire_upwards_through_nested_triggers() -> None:
    root = SequenceTrigger.model_validate(
        {
            "type": "sequence",
            "within": 60,
            "triggers": [
                {
                    "type": "compound",
                    "require": "all",
                    "within": 60,
                    "triggers": [child("a"), child("b")],
                },
                child("c"),
            ],
        }
    )
    inner = root.triggers[0]
    assert isinstance(inner, CompoundTrigger)
    assert parent_of(root, inner.triggers[0].id) is inner
    assert parent_of(root, inner.id) is root
    assert parent_of(root, root.id) is None
    recorded: dict[uuid.UUID, Sequence[Firing]] = {}

    def send(trigger_id: uuid.UUID, seconds: float) -> Firing | None:
        firing = Firing(id=uuid.uuid4(), trigger_id=trigger_id, triggered=at(seconds))
        cascade = fire_upwards(root, firing, recorded, now=at(seconds))
        for parent, step in cascade.steps:
            recorded[parent.id] = step.remaining
        return cascade.fired

    assert send(inner.triggers[0].id, 0) is None
    assert send(inner.triggers[1].id, 1) is None  # the compound fired: first of the sequence
    assert [f.trigger_id for f in recorded[root.id]] == [inner.id]
    result = send(root.triggers[1].id, 2)
    assert result is not None
    assert result.trigger_id == root.id
    assert len(result.all_firings()) == 5  # root, compound, a, b, c


def test_an_event_trigger_as_root_fires_the_automation() -> None:
    t = compound("any").triggers[0]
    firing = Firing(id=uuid.uuid4(), trigger_id=t.id, triggered=at(0))
    cascade = fire_upwards(t, firing, {}, now=at(0))
    assert cascade.fired is firing
    assert cascade.steps == ()
