"""Compound and sequence triggers: whether the firings of their triggers fire them.

A composite trigger keeps, per child trigger, the child's latest firing (one row per
(automation, parent trigger, child trigger), as Prefect's ``composite_trigger_child_firing``
table: the child firing's id, when it fired, and the firing itself). When a child fires,
:func:`on_child_firing` takes the firings recorded so far and answers what to store, what to
delete and whether the parent fires. Prefect 3.9.1's rules (``evaluate_composite_trigger``,
``CompoundTrigger.ready_to_fire``, ``SequenceTrigger.ready_to_fire``):

- A trigger needing one firing (``require: "any"`` or ``1``, or a single child) fires with
  each child firing at once, and records nothing.
- Otherwise, with a ``within``, the recorded firings that fired more than ``within`` before
  the new one are forgotten; the new firing replaces its child's previous one.
- A compound trigger fires when at least ``require`` of its children ("all": every one)
  have a recorded firing; a sequence trigger when every child has one and, ordered by
  when they fired, they are in the order of the children (equal times keep the order they
  were recorded in). An out-of-order sequence waits: a later firing of an earlier child
  can still complete it, until ``within`` forgets the others.
- When the parent fires, all the recorded firings are consumed (deleted), and the parent's
  firing carries them with the event of the child firing that completed it.

The parent's firing is handed to its own parent in turn (:func:`fire_upwards`), until the
automation's root trigger fires and its actions run.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from deputy.automations.firings import Firing, firing_id
from deputy.schemas.triggers import CompositeTrigger, CompoundTrigger, SequenceTrigger, Trigger


def expected_firings(trigger: CompositeTrigger) -> int:
    """How many child firings fire the trigger."""
    if isinstance(trigger, CompoundTrigger):
        if trigger.require == "any":
            return 1
        if trigger.require == "all":
            return len(trigger.triggers)
        return trigger.require
    return len(trigger.triggers)


def ready_to_fire(trigger: CompositeTrigger, firings: Sequence[Firing]) -> bool:
    """Whether these recorded child firings (one per child) fire the trigger."""
    if isinstance(trigger, SequenceTrigger):
        ordered = sorted(firings, key=lambda f: f.triggered)  # stable: ties keep their order
        return [f.trigger_id for f in ordered] == [child.id for child in trigger.triggers]
    return len(firings) >= expected_firings(trigger)


@dataclass(frozen=True)
class CompositeStep:
    """What one child firing does to its composite parent."""

    #: The parent's firing, when it fires.
    firing: Firing | None
    #: The child firing to store, replacing the child's previous one (``None``: none).
    record: Firing | None
    #: Recorded child firings to delete because they fell out of ``within``.
    expired: tuple[uuid.UUID, ...]
    #: Recorded child firings that fired the parent, to delete. With concurrent
    #: evaluators, the parent fires only if every one of them is still there to delete.
    consumed: tuple[uuid.UUID, ...]
    #: The parent's recorded child firings afterwards, one per child at most.
    remaining: tuple[Firing, ...]
    #: The child's previously recorded firing, which this one replaces (delete it).
    replaced: uuid.UUID | None = None


def on_child_firing(
    parent: CompositeTrigger,
    recorded: Sequence[Firing],
    firing: Firing,
    *,
    now: dt.datetime,
) -> CompositeStep:
    """Evaluate ``parent`` when its child fires ``firing``, given the child firings
    recorded for it so far. ``now`` stamps the parent's firing."""
    children = {child.id for child in parent.triggers}
    if firing.trigger_id not in children:
        raise ValueError(f"trigger {firing.trigger_id} is not a child of {parent.id}")
    if expected_firings(parent) == 1:
        return CompositeStep(_parent_firing(parent, [firing], firing, now), None, (), (), ())
    current = [f for f in recorded if f.trigger_id in children]
    expired: list[uuid.UUID] = []
    if parent.within is not None:
        horizon = firing.triggered - parent.within
        expired = [f.id for f in current if f.triggered < horizon]
        current = [f for f in current if f.triggered >= horizon]
    replaced = next((f.id for f in current if f.trigger_id == firing.trigger_id), None)
    current = _replace_child(current, firing)
    if not ready_to_fire(parent, current):
        return CompositeStep(None, firing, tuple(expired), (), tuple(current), replaced)
    fired = _parent_firing(parent, current, firing, now)
    consumed = tuple(f.id for f in current if f.id != firing.id)
    return CompositeStep(fired, None, tuple(expired), consumed, (), replaced)


def _replace_child(current: list[Firing], firing: Firing) -> list[Firing]:
    """The child's new firing takes the place of its previous one (or comes last)."""
    for index, recorded in enumerate(current):
        if recorded.trigger_id == firing.trigger_id:
            return [*current[:index], firing, *current[index + 1 :]]
    return [*current, firing]


def _parent_firing(
    parent: CompositeTrigger, firings: Sequence[Firing], last: Firing, now: dt.datetime
) -> Firing:
    return Firing(
        id=firing_id(parent.id, sorted(str(f.id) for f in firings)),
        trigger_id=parent.id,
        triggered=now,
        triggering_event=last.triggering_event,
        triggering_firings=tuple(firings),
    )


# --- nested triggers ----------------------------------------------------------------------


def parent_of(root: Trigger, trigger_id: uuid.UUID) -> CompositeTrigger | None:
    """The composite trigger directly holding the trigger ``trigger_id`` inside ``root``
    (``None`` for the root itself, or an unknown id)."""
    for trigger in root.all_triggers():
        if isinstance(trigger, CompositeTrigger) and any(
            child.id == trigger_id for child in trigger.triggers
        ):
            return trigger
    return None


@dataclass(frozen=True)
class Cascade:
    """A firing handed up through the composite triggers above it."""

    #: Each composite trigger reached, with what the firing did to it, innermost first.
    steps: tuple[tuple[CompositeTrigger, CompositeStep], ...]
    #: The root trigger's firing when it fired: the automation's actions run with it.
    fired: Firing | None


def fire_upwards(
    root: Trigger,
    firing: Firing,
    recorded: Mapping[uuid.UUID, Sequence[Firing]],
    *,
    now: dt.datetime,
) -> Cascade:
    """Hand ``firing`` to its parents in turn. ``recorded`` holds each composite trigger's
    recorded child firings, by the composite trigger's id."""
    steps: list[tuple[CompositeTrigger, CompositeStep]] = []
    current: Firing | None = firing
    while current is not None:
        parent = parent_of(root, current.trigger_id)
        if parent is None:
            return Cascade(tuple(steps), current if current.trigger_id == root.id else None)
        step = on_child_firing(parent, recorded.get(parent.id, ()), current, now=now)
        steps.append((parent, step))
        current = step.firing
    return Cascade(tuple(steps), None)
