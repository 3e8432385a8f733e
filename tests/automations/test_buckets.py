"""The bucket state machine of event triggers, driven with explicit times.

``Engine`` below plays the part of the future database engine in memory: it keeps the
bucket of each key and the held events, applies each :class:`Step` / :class:`Tick`, and
collects the firings. Every time is explicit (``T0`` plus seconds): no clock is read.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from deputy.automations.buckets import (
    LOOKBACK,
    Bucket,
    HeldEvent,
    evaluate,
    held_to_keep,
    is_expired,
    on_event,
    on_tick,
)
from deputy.automations.firings import Firing
from deputy.automations.matching import BucketKey, bucketing_key, covers
from deputy.schemas.triggers import EventTrigger
from prefect_models import run_prefect

T0 = dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def trigger(**fields: Any) -> EventTrigger:
    return EventTrigger.model_validate({"posture": "Reactive", **fields})


def make_event(name: str, seconds: float, resource: str = "r.1") -> dict[str, Any]:
    return {
        "event": name,
        "occurred": at(seconds),
        "resource": {"prefect.resource.id": resource},
        "related": [],
        "payload": {},
        "id": uuid.uuid4(),
    }


class Engine:
    """Buckets and held events of one trigger, in memory."""

    def __init__(self, t: EventTrigger) -> None:
        self.trigger = t
        self.buckets: dict[BucketKey, Bucket] = {}
        self.held: dict[BucketKey, list[HeldEvent]] = {}
        self.firings: list[Firing] = []

    def send(self, name: str, seconds: float, resource: str = "r.1") -> list[Firing]:
        return self.deliver(make_event(name, seconds, resource))

    def deliver(self, event: dict[str, Any], now: float | None = None) -> list[Firing]:
        if not covers(self.trigger, event):
            return []
        key = bucketing_key(self.trigger, event)
        clock = event["occurred"] if now is None else at(now)
        step = on_event(
            self.trigger, self.buckets.get(key), event, now=clock, held=self.held.get(key, [])
        )
        if step.hold:
            self.held.setdefault(key, []).append(HeldEvent(event["id"], event["occurred"]))
        self._store(key, step.bucket)
        self.firings.extend(step.firings)
        return list(step.firings)

    def tick(self, seconds: float) -> list[Firing]:
        tick = on_tick(self.trigger, list(self.buckets.values()), at(seconds), held=self.held)
        for key, bucket in tick.buckets.items():
            self._store(key, bucket)
        self.firings.extend(tick.firings)
        return list(tick.firings)

    def _store(self, key: BucketKey, bucket: Bucket | None) -> None:
        if bucket is None:
            self.buckets.pop(key, None)
        else:
            self.buckets[key] = bucket


# --- reactive ----------------------------------------------------------------------------


def test_fires_when_the_threshold_is_exactly_reached() -> None:
    engine = Engine(trigger(expect=["x"], threshold=3, within=60))
    assert engine.send("x", 0) == []
    assert engine.send("x", 10) == []
    [firing] = engine.send("x", 20)
    assert firing.triggering_event is not None
    assert firing.triggering_event["occurred"] == at(20)
    assert firing.triggered == at(20)
    assert firing.triggering_labels == {}
    # the next window starts where the one that fired ends
    bucket = engine.buckets[()]
    assert (bucket.start, bucket.end, bucket.count) == (at(60), at(120), 0)
    assert bucket.triggered_at == at(20)


def test_the_first_window_reaches_back_for_late_events() -> None:
    engine = Engine(trigger(expect=["x"], threshold=2, within=60))
    engine.send("x", 0)
    assert engine.buckets[()].start == T0 - LOOKBACK
    assert engine.send("x", -600) != []  # occurred 10 minutes earlier: still counted
    engine = Engine(trigger(expect=["x"], threshold=2, within=60))
    engine.send("x", 0)
    assert engine.send("x", -901) == []  # beyond the lookback: ignored
    assert engine.buckets[()].count == 1


def test_events_after_a_firing_wait_for_the_window_to_end() -> None:
    engine = Engine(trigger(expect=["x"], threshold=1, within=60))
    assert len(engine.send("x", 0)) == 1
    assert engine.send("x", 30) == []  # inside the window that fired: ignored
    assert engine.buckets[()].count == 0
    assert len(engine.send("x", 61)) == 1  # the next window


def test_window_expiry() -> None:
    engine = Engine(trigger(expect=["x"], threshold=2, within=10))
    engine.send("x", 0)
    assert engine.send("x", 11) == []  # the first window ended with 1: a new one from 11
    bucket = engine.buckets[()]
    assert (bucket.start, bucket.end, bucket.count) == (at(11), at(21), 1)
    assert engine.send("x", 21) == []  # exactly at the end: outside, next window
    assert len(engine.send("x", 25)) == 1


def test_an_event_after_the_window_can_fire_the_next_one_at_once() -> None:
    engine = Engine(trigger(expect=["x"], threshold=1, within=10))
    engine.send("x", 0)  # fires; the next window is [10, 20)
    [firing] = engine.send("x", 25)  # after it: counted in a window from 25, which fires
    assert firing.triggering_event is not None
    assert firing.triggering_event["occurred"] == at(25)
    assert len(engine.firings) == 2
    assert engine.buckets[()].start == at(35)


def test_without_a_window_every_threshold_events_fire() -> None:
    engine = Engine(trigger(expect=["x"], threshold=2))
    fired = [len(engine.send("x", s)) for s in range(6)]
    assert fired == [0, 1, 0, 1, 0, 1]
    one = Engine(trigger(expect=["x"]))
    assert [len(one.send("x", s)) for s in (0, 0, 5)] == [1, 1, 1]
    assert one.buckets == {}


def test_for_each_counts_each_key_apart() -> None:
    engine = Engine(trigger(expect=["x"], threshold=2, within=60, for_each=["prefect.resource.id"]))
    assert engine.send("x", 0, "a") == []
    assert engine.send("x", 1, "b") == []
    [firing] = engine.send("x", 2, "a")
    assert firing.triggering_labels == {"prefect.resource.id": "a"}
    assert engine.buckets[("b",)].count == 1
    [firing] = engine.send("x", 3, "b")
    assert firing.triggering_labels == {"prefect.resource.id": "b"}


def test_unexpected_events_count_nothing() -> None:
    engine = Engine(trigger(expect=["x"], threshold=1, within=60))
    assert engine.send("y", 0) == []
    assert engine.buckets == {}


def test_after_gates_the_counting() -> None:
    engine = Engine(trigger(after=["a"], expect=["b"], within=60))
    assert engine.send("b", 0) == []  # not armed
    assert engine.buckets == {}
    assert engine.send("a", 1) == []
    assert engine.buckets[()].start == at(1)
    assert len(engine.send("b", 2)) == 1
    assert engine.buckets == {}  # disarmed until the next ``a``
    assert engine.send("b", 3) == []
    engine.send("a", 4)
    assert len(engine.send("b", 5)) == 1


def test_an_after_window_that_ended_disarms() -> None:
    engine = Engine(trigger(after=["a"], expect=["b"], within=10))
    engine.send("a", 0)
    assert engine.send("b", 11) == []
    assert engine.buckets == {}


def test_an_event_both_after_and_expected_does_not_count_itself() -> None:
    engine = Engine(trigger(after=["x"], expect=["x"], threshold=2, within=60))
    assert engine.send("x", 0) == []
    assert engine.buckets[()].count == 0
    assert engine.send("x", 1) == []
    assert len(engine.send("x", 2)) == 1


def test_firing_ids_are_determined_by_what_fired() -> None:
    t = trigger(expect=["x"], within=60)
    event = make_event("x", 0)
    first = on_event(t, None, event, now=at(0))
    again = on_event(t, None, event, now=at(5))
    assert first.firings[0].id == again.firings[0].id
    other = on_event(t, None, make_event("x", 0), now=at(0))
    assert other.firings[0].id != first.firings[0].id


# --- proactive ---------------------------------------------------------------------------


def test_proactive_fires_once_when_the_window_ends_short() -> None:
    engine = Engine(trigger(posture="Proactive", expect=["x"], within=30))
    assert engine.tick(0) == []
    assert engine.buckets[()].start == at(0)
    assert engine.tick(29) == []
    [firing] = engine.tick(30)
    assert firing.triggering_event is None
    assert firing.triggered == at(30)
    # never twice for the same window
    assert engine.tick(30) == []
    assert engine.tick(31) == []
    assert engine.tick(59) == []
    assert engine.buckets[()].start == at(30)
    assert engine.buckets[()].triggered_at == at(30)
    assert len(engine.tick(60)) == 1


def test_proactive_does_not_fire_when_the_events_come() -> None:
    engine = Engine(trigger(posture="Proactive", expect=["x"], within=30, threshold=2))
    engine.tick(0)
    engine.send("x", 5)
    engine.send("x", 10)
    assert engine.tick(30) == []
    assert engine.buckets == {}  # satisfied: dropped, the next tick opens a new window
    engine.tick(31)
    assert engine.buckets[()].start == at(31)
    engine.send("x", 40)
    [firing] = engine.tick(61)  # one event of two
    assert firing.triggering_event is not None
    assert firing.triggering_event["occurred"] == at(40)


def test_proactive_next_tick() -> None:
    t = trigger(posture="Proactive", expect=["x"], within=30, for_each=["prefect.resource.id"])
    bucket = Bucket(("a",), at(-20), at(10), 0)
    tick = on_tick(t, [bucket], at(0))
    assert tick.firings == ()
    assert tick.buckets == {}
    assert tick.next_tick == at(10)
    assert on_tick(t, [], at(0)).next_tick == at(30)
    with pytest.raises(ValueError, match="proactive"):
        on_tick(trigger(), [], at(0))


def test_proactive_for_each_after_gating() -> None:
    t = trigger(
        posture="Proactive",
        after=["start"],
        expect=["end"],
        within=30,
        for_each=["prefect.resource.id"],
    )
    engine = Engine(t)
    assert engine.tick(0) == []
    assert engine.buckets == {}  # with for_each, nothing is armed before an ``after`` event
    engine.send("start", 0, "a")
    engine.send("start", 0, "b")
    engine.send("end", 10, "a")
    assert [f.triggering_labels for f in engine.tick(30)] == [{"prefect.resource.id": "b"}]
    [firing] = engine.firings
    assert firing.triggering_event is not None
    assert firing.triggering_event["event"] == "start"
    assert engine.buckets == {}
    assert engine.tick(60) == []


def test_proactive_after_without_for_each_is_armed_by_ticks_as_in_prefect() -> None:
    # Prefect 3.9.1 opens the bucket of a proactive trigger without for_each on each tick,
    # ``after`` or not: such a trigger fires every window until an ``end`` arrives.
    engine = Engine(trigger(posture="Proactive", after=["start"], expect=["end"], within=30))
    engine.tick(0)
    assert len(engine.tick(30)) == 1
    assert engine.buckets == {}
    engine.tick(31)
    engine.send("end", 40)
    assert engine.tick(61) == []


def test_held_events_count_in_windows_that_open_later() -> None:
    t = trigger(
        posture="Proactive",
        after=["start"],
        expect=["end"],
        within=30,
        for_each=["prefect.resource.id"],
    )
    engine = Engine(t)
    end = make_event("end", 10, "a")
    assert engine.deliver(end) == []  # evaluated before the ``start`` that precedes it
    assert [h.event_id for h in engine.held[("a",)]] == [end["id"]]
    engine.send("start", 0, "a")
    assert engine.buckets[("a",)].count == 1
    assert engine.tick(30) == []
    # the same held event is not counted twice
    engine.send("start", 40, "a")
    assert engine.buckets[("a",)].count == 0
    assert engine.deliver(end) == []
    assert engine.buckets[("a",)].count == 0


def test_heartbeats_restart_a_proactive_window() -> None:
    t = trigger(
        posture="Proactive",
        after=["hb"],
        expect=["hb", "done"],
        within=30,
        for_each=["prefect.resource.id"],
    )
    engine = Engine(t)
    engine.send("hb", 0)
    assert engine.buckets[("r.1",)].count == 0
    engine.send("hb", 10)  # the window has its beat: a new one from here
    bucket = engine.buckets[("r.1",)]
    assert (bucket.start, bucket.end, bucket.count) == (at(10), at(40), 0)
    assert bucket.last_operation == "restart"
    assert engine.tick(30) == []
    [firing] = engine.tick(40)  # no beat for 30 seconds
    assert firing.triggering_event is not None
    assert firing.triggering_event["occurred"] == at(10)


def test_a_late_event_is_ignored() -> None:
    t = trigger(expect=["x"], threshold=1, within=60)
    bucket = Bucket((), at(100), at(160), 0)
    step = evaluate(t, bucket, at(99), now=at(200), event=make_event("x", 99))
    assert step.bucket == bucket
    assert step.firings == ()
    assert not step.changed


# --- housekeeping ------------------------------------------------------------------------


def test_expired_buckets() -> None:
    bucket = Bucket((), at(0), at(30), 0)
    assert not is_expired(bucket, at(89))
    assert is_expired(bucket, at(90))


def test_held_events_kept() -> None:
    t = trigger(posture="Proactive", after=["a"], expect=["b"], within=10, threshold=1)
    ids = [uuid.UUID(int=i) for i in range(10)]
    held = [HeldEvent(ids[i], at(i)) for i in range(4)]  # one slot: 0..9 seconds
    kept = held_to_keep(t, held, HeldEvent(ids[4], at(4)))
    assert [h.event_id for h in kept] == [ids[0], ids[4]]  # first and last of the slot
    old = HeldEvent(ids[5], at(-2000))
    assert old not in held_to_keep(t, [old], HeldEvent(ids[6], at(0)))


# --- against Prefect ---------------------------------------------------------------------

#: Event triggers with steps: ``["event", name, seconds, resource, event number]`` (equal
#: numbers: the same event delivered again) or ``["tick", seconds]``.
SCENARIOS: list[tuple[dict[str, Any], list[list[Any]]]] = [
    (
        {"expect": ["x"], "threshold": 3, "within": 60},
        [["x", 0], ["x", 10], ["x", 20], ["x", 30], ["x", 61]],
    ),
    (
        {"expect": ["x"], "threshold": 2, "within": 60},
        [["x", 0], ["x", -600], ["x", -901], ["x", 1]],
    ),
    ({"expect": ["x"], "threshold": 1, "within": 60}, [["x", 0], ["x", 30], ["x", 61]]),
    ({"expect": ["x"], "threshold": 2, "within": 10}, [["x", 0], ["x", 11], ["x", 21], ["x", 25]]),
    ({"expect": ["x"], "threshold": 1, "within": 10}, [["x", 0], ["x", 25], ["x", 26]]),
    ({"expect": ["x"], "threshold": 2}, [["x", s] for s in range(6)]),
    (
        {"expect": ["x"], "threshold": 2, "within": 60, "for_each": ["prefect.resource.id"]},
        [["x", 0, "a"], ["x", 1, "b"], ["x", 2, "a"], ["x", 3, "b"]],
    ),
    (
        {"after": ["a"], "expect": ["b"], "within": 60},
        [["b", 0], ["a", 1], ["b", 2], ["b", 3], ["a", 4], ["b", 5]],
    ),
    ({"after": ["a"], "expect": ["b"], "within": 10}, [["a", 0], ["b", 11], ["b", 12]]),
    ({"after": ["x"], "expect": ["x"], "threshold": 2, "within": 60}, [["x", s] for s in range(5)]),
    (
        {"posture": "Proactive", "expect": ["x"], "within": 30},
        [[0], [29], [30], [30], [31], [59], [60]],
    ),
    (
        {"posture": "Proactive", "expect": ["x"], "within": 30, "threshold": 2},
        [[0], ["x", 5], ["x", 10], [30], [31], ["x", 40], [61]],
    ),
    (
        {
            "posture": "Proactive",
            "after": ["start"],
            "expect": ["end"],
            "within": 30,
            "for_each": ["prefect.resource.id"],
        },
        [[0], ["start", 0, "a"], ["start", 0, "b"], ["end", 10, "a"], [30], [60]],
    ),
    (
        {"posture": "Proactive", "after": ["start"], "expect": ["end"], "within": 30},
        [[0], [30], [31], ["end", 40], [61]],
    ),
    (
        {
            "posture": "Proactive",
            "after": ["start"],
            "expect": ["end"],
            "within": 30,
            "for_each": ["prefect.resource.id"],
        },
        [
            ["end", 10, "a", 1],
            ["start", 0, "a"],
            [30],
            ["start", 40, "a"],
            ["end", 10, "a", 1],
            [70],
        ],
    ),
    (
        {
            "posture": "Proactive",
            "after": ["hb"],
            "expect": ["hb", "done"],
            "within": 30,
            "for_each": ["prefect.resource.id"],
        },
        [["hb", 0], ["hb", 10], [30], [40], ["hb", 50], ["done", 60], [80]],
    ),
]


def _steps(steps: list[list[Any]]) -> list[list[Any]]:
    """Each step spelled out: ``["event", name, seconds, resource, number]`` or ``["tick", s]``."""
    spelled: list[list[Any]] = []
    for number, step in enumerate(steps):
        if len(step) == 1:
            spelled.append(["tick", step[0]])
            continue
        name, seconds, resource, *same = [*step, "r.1"] if len(step) == 2 else step
        spelled.append(["event", name, seconds, resource, same[0] if same else 100 + number])
    return spelled


def _ours(body: dict[str, Any], steps: list[list[Any]]) -> list[list[list[Any]]]:
    engine = Engine(trigger(**body))
    events: dict[int, dict[str, Any]] = {}
    answers: list[list[list[Any]]] = []
    for step in steps:
        if step[0] == "tick":
            firings = engine.tick(step[1])
        else:
            _, name, seconds, resource, number = step
            event = events.setdefault(number, make_event(name, seconds, resource))
            firings = engine.deliver(event)
        answers.append([[dict(f.triggering_labels), _seconds(f)] for f in firings])
    return answers


def _seconds(firing: Firing) -> float | None:
    if firing.triggering_event is None:
        return None
    occurred: dt.datetime = firing.triggering_event["occurred"]
    return (occurred - T0).total_seconds()


def test_same_firings_as_prefect() -> None:
    """Each scenario runs through Prefect's own triggers service (its SQLite database,
    ``reactive_evaluation`` and ``proactive_evaluation``, with ``act`` recording the
    firings) and through the functions here: the same firings at the same steps."""
    cases = [(body, _steps(steps)) for body, steps in SCENARIOS]
    answers = run_prefect(PREFECT_SCENARIOS, json.dumps(cases), timeout=300)
    for (body, steps), answer in zip(cases, answers, strict=True):
        assert _ours(body, steps) == answer, body


PREFECT_SCENARIOS = """
    import asyncio, json, sys, uuid
    from datetime import datetime, timedelta, timezone
    from unittest import mock

    from prefect.server.database import provide_database_interface
    from prefect.server.events import triggers
    from prefect.server.events.models.automations import automations_session, create_automation
    from prefect.server.events.schemas.automations import Automation, AutomationCore
    from prefect.server.events.schemas.events import ReceivedEvent

    T0 = datetime(2025, 1, 1, 12, tzinfo=timezone.utc)

    async def scenario(body, steps, fired):
        core = AutomationCore.model_validate({
            "name": "a", "trigger": {"posture": "Reactive", **body},
            "actions": [{"type": "do-nothing"}],
        })
        async with automations_session(begin_transaction=True) as session:
            automation = await create_automation(session, Automation(**core.model_dump()))
        triggers.load_automation(automation)
        events, answers = {}, []
        for step in steps:
            fired.clear()
            if step[0] == "tick":
                await triggers.reset_events_clock()
                at = T0 + timedelta(seconds=step[1])
                await triggers.proactive_evaluation(automation.trigger, at)
            else:
                _, name, seconds, resource, number = step
                if number not in events:
                    events[number] = ReceivedEvent(
                        occurred=T0 + timedelta(seconds=seconds), event=name,
                        resource={"prefect.resource.id": resource}, id=uuid.uuid4(),
                    )
                await triggers.reactive_evaluation(events[number])
            answers.append([
                [f.triggering_labels, None if f.triggering_event is None
                 else (f.triggering_event.occurred - T0).total_seconds()]
                for f in fired
            ])
        triggers.forget_automation(automation.id)
        return answers

    async def main():
        await provide_database_interface().create_db()
        fired = []

        async def act(firing):
            fired.append(firing)

        with mock.patch.object(triggers, "act", act):
            cases = json.load(sys.stdin)
            print(json.dumps([await scenario(body, steps, fired) for body, steps in cases]))

    asyncio.run(main())
"""
