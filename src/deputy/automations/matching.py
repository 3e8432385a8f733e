"""Which events an event trigger looks at, which it counts, and in which bucket.

The rules are Prefect 3.9.1's (``EventTrigger.covers``, ``expects``, ``starts_after``,
``bucketing_key``, ``meets_threshold`` and the trigger index of its triggers service):

- **Names.** An event reaches a trigger when its name fits one of the trigger's ``expect``
  or ``after`` patterns twice over: as a glob (``fnmatchcase``: ``*``, ``?``, ``[...]``) and
  as Prefect's event pattern, where ``*`` stands for one character or more, every other
  character is literal, and the pattern need only match the start of the name. A trigger
  with no ``expect`` is reached by every event. Of the events that reach it, the trigger
  *counts* those that fit an ``expect`` glob (all of them when ``expect`` is empty), and
  *starts a window* on those that fit an ``after`` glob. In ``expect`` and ``after`` a
  leading ``!`` negates a glob (such a pattern never reaches a trigger by itself, since
  the event pattern takes it literally).
- **Resources.** ``match`` must fit the event's resource and every specification of
  ``match_related`` must fit one of its related resources; an empty specification fits
  everything. A label pattern is a glob, negated by a leading ``!``; a label the resource
  lacks fits no pattern (not even a negated one).
- **Buckets.** ``for_each`` labels, sorted, give the bucket's key: each is read from the
  event's resource, or, written ``related:<role>:<label>``, from the first related resource
  with that role. A missing label reads as ``""``.
- **Threshold.** A reactive trigger fires at ``threshold`` events or more; a proactive one
  at fewer than ``threshold``.

An event is a mapping shaped like deputy's stored events (``deputy.automations.firings.Event``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from deputy.automations.firings import Event
from deputy.schemas.triggers import EventTrigger, Posture, ResourceTrigger, label_matches

#: A bucket's key: the values of the trigger's ``for_each`` labels, in sorted label order.
BucketKey = tuple[str, ...]

Labels = Mapping[str, str]


# --- event names ---------------------------------------------------------------------------


def name_fits(pattern: str, name: str) -> bool:
    """Whether an event name fits one ``expect`` / ``after`` glob (``!`` negates it)."""
    return label_matches(pattern, name)


def expects(trigger: EventTrigger, name: str) -> bool:
    """Whether the trigger counts events of this name (any name when ``expect`` is empty)."""
    return not trigger.expect or any(name_fits(pattern, name) for pattern in trigger.expect)


def starts_after(trigger: EventTrigger, name: str) -> bool:
    """Whether events of this name open the trigger's window (never without ``after``)."""
    return any(name_fits(pattern, name) for pattern in trigger.after)


@lru_cache(maxsize=4096)
def _event_pattern(patterns: frozenset[str]) -> re.Pattern[str]:
    """Prefect's event pattern: literal text, ``*`` for one character or more, matched at
    the start of the name only."""
    return re.compile("|".join(re.escape(p).replace(r"\*", ".+") for p in sorted(patterns)))


def covers_name(trigger: EventTrigger, name: str) -> bool:
    """Whether an event of this name reaches the trigger at all (see the module's rules)."""
    if not trigger.expect:
        return bool(name)
    patterns = frozenset([*trigger.expect, *trigger.after])
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
        return False
    return _event_pattern(patterns).match(name) is not None


# --- resources -----------------------------------------------------------------------------


def covers_resources(trigger: ResourceTrigger, resource: Labels, related: Sequence[Labels]) -> bool:
    """Whether ``match`` fits the resource and each ``match_related`` a related resource."""
    if not trigger.match_specification().includes([resource]):
        return False
    return all(spec.includes(related) for spec in trigger.related_specifications())


def covers(trigger: EventTrigger, event: Event) -> bool:
    """Whether the event reaches the trigger: its name and its resources fit."""
    return covers_name(trigger, event["event"]) and covers_resources(
        trigger, event["resource"], event.get("related") or ()
    )


# --- buckets -------------------------------------------------------------------------------


def resource_label(event: Event, label: str) -> str | None:
    """A label of the event's resource, or with ``related:<role>:<label>`` of the first
    related resource with that role (``None`` when that resource lacks the label)."""
    directive, _, related_label = label.rpartition(":")
    kind, _, role = directive.partition(":")
    if kind == "related":
        related_resources: Sequence[Labels] = event.get("related") or ()
        for related in related_resources:
            if related.get("prefect.resource.role") == role:
                return related.get(related_label)
    resource: Labels = event["resource"]
    return resource.get(label)


def for_each_labels(trigger: EventTrigger) -> list[str]:
    """The ``for_each`` labels in the order of the bucket key's values."""
    return sorted(trigger.for_each)


def bucketing_key(trigger: EventTrigger, event: Event) -> BucketKey:
    """The key of the bucket that counts this event for the trigger."""
    return tuple(resource_label(event, label) or "" for label in for_each_labels(trigger))


def triggering_labels(trigger: EventTrigger, key: BucketKey) -> dict[str, str]:
    """The ``for_each`` labels of a bucket with their values (a firing's labels)."""
    return dict(zip(for_each_labels(trigger), key, strict=False))


# --- counting ------------------------------------------------------------------------------


def meets_threshold(trigger: EventTrigger, count: int) -> bool:
    """Reactive: at least ``threshold`` events; proactive: fewer than ``threshold``."""
    if trigger.posture == Posture.Reactive:
        return count >= trigger.threshold
    return count < trigger.threshold


def is_immediate(trigger: EventTrigger) -> bool:
    """A reactive trigger with no window counts every event, whenever it occurred."""
    return trigger.posture == Posture.Reactive and trigger.within == dt.timedelta(0)


def holds_expect_events(trigger: EventTrigger) -> bool:
    """Whether events the trigger counts but that open no window are held for windows that
    open later over them: proactive triggers with ``after`` (Prefect 3.9.1)."""
    return trigger.posture == Posture.Proactive and bool(trigger.after)


def interested_triggers(triggers: Iterable[EventTrigger], event: Event) -> list[EventTrigger]:
    """The triggers the event reaches, in the order given."""
    return [trigger for trigger in triggers if covers(trigger, event)]
