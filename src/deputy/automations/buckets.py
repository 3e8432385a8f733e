"""The counting state of an event trigger: one bucket per ``for_each`` key, as plain data.

A :class:`Bucket` is one row of a table keyed by (automation, trigger, key): the window it
counts over (``start`` inclusive, ``end`` exclusive), how many counted events it saw, the
last of them, the operation that wrote it last, and when the window before it fired. The
functions here take the bucket as read, an event (or a proactive tick) and the times, and
answer the bucket to write back (``None``: delete the row) and the firings: nothing is read
from a clock or a database.

The semantics are Prefect 3.9.1's triggers service (``reactive_evaluation``, ``evaluate``,
``proactive_evaluation``, ``ensure_bucket``, ``start_new_bucket``, ``increment_bucket``,
``remove_bucket``, ``remove_buckets_exceeding_threshold``, ``sweep_closed_buckets`` and its
held ``expect`` events):

- **Opening a window.** Without ``after``, the first counted event of a key opens a bucket
  reaching :data:`LOOKBACK` (15 minutes) back, so that events arriving out of order still
  count, and ``within`` ahead of the event. With ``after``, only an ``after`` event opens
  one (from the event, ``within`` long); an event that is both ``after`` and ``expect``
  opens it at ``-1``, so it does not count itself. An existing bucket is kept as it is.
  A proactive trigger without ``for_each`` also opens its one bucket on each tick.
- **Counting.** An event counts when it occurred inside the window (any time, for a
  reactive trigger with ``within`` 0); an event older than the window is ignored.
- **Reactive** triggers fire as soon as the count reaches ``threshold``; **proactive** ones
  when the window has ended with fewer than ``threshold``. After a firing, or when a window
  ended without one, the bucket is deleted when the trigger has ``after`` (the next
  ``after`` event re-arms it), or replaced by the next window, starting at the old window's
  end or now, whichever is later. An event that occurred after the window is counted in
  the next one (and may fire it at once).
- **Proactive with ``after``.** An event both ``after`` and ``expect`` that arrives when the
  window already has its ``threshold`` restarts the window from that event. Events that are
  only ``expect``-ed are *held* (the engine stores them, see :attr:`Step.hold`) and each
  window that opens later counts the held events that occurred inside it, whatever order
  the events were evaluated in.

Firing at most once per window follows: the firing deletes or replaces the bucket in the
same step, and the next window starts no earlier than the end of the one that fired.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from deputy.automations.firings import Event, Firing, firing_id
from deputy.automations.matching import (
    BucketKey,
    bucketing_key,
    expects,
    holds_expect_events,
    is_immediate,
    meets_threshold,
    starts_after,
    triggering_labels,
)
from deputy.schemas.triggers import EventTrigger, Posture

#: How far back the first window of a trigger without ``after`` reaches (Prefect's
#: ``PRECEDING_EVENT_LOOKBACK``).
LOOKBACK = dt.timedelta(minutes=15)
#: How long an ended bucket is kept before it is swept (Prefect's
#: ``server.events.expired_bucket_buffer``).
EXPIRED_BUCKET_BUFFER = dt.timedelta(seconds=60)
#: How long a held ``expect`` event is kept at least (Prefect: twice the lookback).
HELD_EVENTS_RETENTION = 2 * LOOKBACK


@dataclass(frozen=True)
class Bucket:
    """One window of counting for one trigger and one ``for_each`` key."""

    key: BucketKey
    start: dt.datetime
    end: dt.datetime
    count: int
    #: The last event counted (or the one that opened the window), kept for the firing.
    last_event: Event | None = None
    #: What wrote the bucket last: ``ensure``, ``increment``, ``start`` or ``restart``.
    last_operation: str = "ensure"
    #: When the window before this one fired (``None``: it did not, or there was none).
    triggered_at: dt.datetime | None = None


@dataclass(frozen=True)
class HeldEvent:
    """An ``expect``-only event held for the windows of one trigger and key."""

    event_id: uuid.UUID
    occurred: dt.datetime


@dataclass(frozen=True)
class Step:
    """The outcome of evaluating one event, or one bucket on a tick."""

    #: The key's bucket afterwards; ``None``: the key has no bucket (delete its row).
    bucket: Bucket | None
    #: The trigger's firings, oldest first (at most one per window).
    firings: tuple[Firing, ...] = ()
    #: Hold the event for the windows that open later (:class:`HeldEvent`).
    hold: bool = False
    #: Whether anything changed (the bucket is to be written, or deleted).
    changed: bool = True


@dataclass(frozen=True)
class Tick:
    """The outcome of a proactive tick over all of a trigger's buckets."""

    #: Every key whose bucket changed, with its new bucket (``None``: delete it).
    buckets: Mapping[BucketKey, Bucket | None] = field(default_factory=dict)
    firings: tuple[Firing, ...] = ()
    #: When the trigger should be ticked again at the latest.
    next_tick: dt.datetime | None = None


def held_in_window(held: Sequence[HeldEvent], start: dt.datetime, end: dt.datetime) -> int:
    """How many held events occurred in ``[start, end)``."""
    return sum(1 for h in held if start <= h.occurred < end)


def _new_bucket(
    trigger: EventTrigger,
    key: BucketKey,
    start: dt.datetime,
    count: int,
    held: Sequence[HeldEvent],
    *,
    last_event: Event | None = None,
    last_operation: str = "ensure",
    triggered_at: dt.datetime | None = None,
) -> Bucket:
    """A window from ``start``, ``within`` long, counting the held events inside it."""
    end = start + trigger.within
    if holds_expect_events(trigger):
        count += held_in_window(held, start, end)
    return Bucket(key, start, end, count, last_event, last_operation, triggered_at)


def _fire(trigger: EventTrigger, bucket: Bucket, event: Event | None, now: dt.datetime) -> Firing:
    triggering_event = event if event is not None else bucket.last_event
    event_id = None if event is None else event["id"]
    return Firing(
        id=firing_id(trigger.id, bucket.key, bucket.start, bucket.end, event_id),
        trigger_id=trigger.id,
        triggered=now,
        triggering_labels=triggering_labels(trigger, bucket.key),
        triggering_event=triggering_event,
    )


# --- one bucket --------------------------------------------------------------------------


def evaluate(
    trigger: EventTrigger,
    bucket: Bucket,
    at: dt.datetime,
    *,
    now: dt.datetime,
    event: Event | None = None,
    held: Sequence[HeldEvent] = (),
) -> Step:
    """Evaluate one bucket at ``at`` (the event's time, or the tick's), with the event to
    count if there is one. ``now`` stamps the firings."""
    if at < bucket.start:
        return Step(bucket, changed=False)  # late: the window it belonged to is gone
    previous_last = bucket.last_event
    pending = event is not None
    if pending and (is_immediate(trigger) or bucket.start <= at < bucket.end):
        bucket = replace(
            bucket, count=bucket.count + 1, last_event=event, last_operation="increment"
        )
        pending = False
    counted = event is not None and not pending
    fire_now = trigger.posture == Posture.Reactive or bucket.end <= at
    meets = meets_threshold(trigger, bucket.count)
    firings: tuple[Firing, ...] = ()
    if fire_now and meets:
        firings = (_fire(trigger, bucket, event, now),)
    elif at < bucket.end:
        if event is not None and _restarts_window(trigger, event, meets):
            return Step(_restart(trigger, bucket, event, previous_last, held))
        return Step(bucket, changed=counted)
    return _next_window(trigger, bucket, at, now, event if pending else None, firings, held)


def _restarts_window(trigger: EventTrigger, event: Event, meets: bool) -> bool:
    """A proactive window already satisfied, and an event both ``after`` and ``expect``."""
    return (
        trigger.posture == Posture.Proactive
        and not meets
        and starts_after(trigger, event["event"])
        and expects(trigger, event["event"])
    )


def _restart(
    trigger: EventTrigger,
    bucket: Bucket,
    event: Event,
    previous_last: Event | None,
    held: Sequence[HeldEvent],
) -> Bucket:
    """A new window from the event, keeping as its last event an ``expect``-only event that
    occurred no earlier (it may fire the new window)."""
    last = event
    if (
        previous_last is not None
        and expects(trigger, previous_last["event"])
        and not starts_after(trigger, previous_last["event"])
        and previous_last["occurred"] >= event["occurred"]
    ):
        last = previous_last
    return _new_bucket(
        trigger, bucket.key, event["occurred"], 0, held, last_event=last, last_operation="restart"
    )


def _next_window(
    trigger: EventTrigger,
    bucket: Bucket,
    at: dt.datetime,
    now: dt.datetime,
    pending: Event | None,
    firings: tuple[Firing, ...],
    held: Sequence[HeldEvent],
) -> Step:
    """After a firing or an ended window: delete the bucket or start the next window, in
    which an event that occurred after the old window counts."""
    fired = bool(firings)
    if trigger.after:
        return Step(None, firings)
    if trigger.within == dt.timedelta(0):
        # Prefect keeps such a bucket (counting on) until it fires; the sweep removes it.
        return Step(None if fired else bucket, firings)
    start = max(bucket.end, at)
    triggered_at = now if fired else None
    if trigger.posture == Posture.Reactive and pending is not None:
        following = Bucket(
            key=bucket.key,
            start=start,
            end=start + trigger.within,
            count=0,
            last_operation="start",
            triggered_at=triggered_at,
        )
        step = evaluate(trigger, following, at, now=now, event=pending, held=held)
        return replace(step, firings=firings + step.firings, changed=True)
    following = _new_bucket(
        trigger,
        bucket.key,
        start,
        1 if pending is not None else 0,
        held,
        last_operation="start",
        triggered_at=triggered_at,
    )
    return Step(following, firings)


# --- an event ----------------------------------------------------------------------------


def on_event(
    trigger: EventTrigger,
    bucket: Bucket | None,
    event: Event,
    *,
    now: dt.datetime,
    held: Sequence[HeldEvent] = (),
) -> Step:
    """Evaluate an event that reaches the trigger (``matching.covers``) against the bucket
    of its key (``matching.bucketing_key``; ``None`` when the key has none). ``held`` are
    the events held for this trigger and key (only proactive triggers with ``after``)."""
    name: str = event["event"]
    occurred: dt.datetime = event["occurred"]
    counted = expects(trigger, name)
    opened = bucket
    if bucket is None and trigger.after and starts_after(trigger, name):
        key = bucketing_key(trigger, event)
        initial = -1 if counted else 0
        opened = _new_bucket(trigger, key, occurred, initial, held, last_event=event)
    elif bucket is None and not trigger.after and counted:
        key = bucketing_key(trigger, event)
        opened = Bucket(key, occurred - LOOKBACK, occurred + trigger.within, 0, event)
    if not counted:
        return Step(opened, changed=opened is not bucket)
    hold = False
    if holds_expect_events(trigger) and not starts_after(trigger, name):
        # an ``expect``-only event: held for the windows that open later over it
        if any(h.event_id == event["id"] for h in held):
            return Step(bucket, changed=False)  # counted already
        hold = True
    if opened is None:
        return Step(None, hold=hold, changed=False)
    step = evaluate(trigger, opened, occurred, now=now, event=event, held=held)
    changed = step.changed or opened is not bucket
    return replace(step, hold=hold, changed=changed)


# --- a proactive tick --------------------------------------------------------------------


def on_tick(
    trigger: EventTrigger,
    buckets: Sequence[Bucket],
    as_of: dt.datetime,
    *,
    now: dt.datetime | None = None,
    held: Mapping[BucketKey, Sequence[HeldEvent]] | None = None,
) -> Tick:
    """Evaluate a proactive trigger's buckets at ``as_of``: fire each window that ended with
    fewer than ``threshold`` events. ``now`` stamps the firings (default ``as_of``)."""
    if trigger.posture != Posture.Proactive:
        raise ValueError("only proactive triggers are ticked")
    stamp = as_of if now is None else now
    held = held or {}
    changes: dict[BucketKey, Bucket | None] = {}
    current = list(buckets)
    if not trigger.for_each and not any(b.key == () for b in current):
        opened = _new_bucket(trigger, (), as_of, 0, held.get((), ()))
        changes[()] = opened
        current.append(opened)
    for bucket in current:
        if bucket.count >= trigger.threshold:
            changes[bucket.key] = None  # satisfied: this window can no longer fire
    next_tick = as_of + trigger.within
    firings: list[Firing] = []
    for bucket in sorted(current, key=lambda b: b.start):
        if bucket.count >= trigger.threshold:
            continue
        step = evaluate(trigger, bucket, as_of, now=stamp, held=held.get(bucket.key, ()))
        firings.extend(step.firings)
        if step.changed or bucket.key in changes:
            changes[bucket.key] = step.bucket
        if step.bucket is not None and as_of < step.bucket.end < next_tick:
            next_tick = step.bucket.end
    return Tick(changes, tuple(firings), next_tick)


# --- housekeeping ------------------------------------------------------------------------


def is_expired(bucket: Bucket, as_of: dt.datetime) -> bool:
    """Whether a bucket's row may be swept: its window ended a buffer ago."""
    return bucket.end <= as_of - EXPIRED_BUCKET_BUFFER


def held_to_keep(
    trigger: EventTrigger, held: Sequence[HeldEvent], newest: HeldEvent
) -> list[HeldEvent]:
    """The held events of one trigger and key still worth keeping once ``newest`` is held:
    none older than the retention (or ``within``) before the newest of them, and within
    ``newest``'s slot (``within`` wide, aligned to the epoch) only its first and last
    ``threshold`` events, which are all any window can need to decide."""
    everything = {h.event_id: h for h in [*held, newest]}
    latest = max(h.occurred for h in everything.values())
    horizon = latest - max(HELD_EVENTS_RETENTION, trigger.within)
    kept = [h for h in everything.values() if h.occurred >= horizon]
    start = _slot_start(newest.occurred, trigger.within)
    in_slot = sorted(
        (h for h in kept if start <= h.occurred < start + trigger.within),
        key=lambda h: (h.occurred, h.event_id),
    )
    n = trigger.threshold
    dropped = {h.event_id for h in in_slot[n : max(n, len(in_slot) - n)]}
    return [h for h in kept if h.event_id not in dropped]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _slot_start(occurred: dt.datetime, width: dt.timedelta) -> dt.datetime:
    return _EPOCH + (occurred - _EPOCH) // width * width
