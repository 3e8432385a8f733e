"""A trigger firing as plain data: what an event trigger's bucket or a composite trigger
hands to its parent (a composite trigger) or to the automation's actions.

Shaped like Prefect 3.9.1's ``Firing`` (``id``, ``trigger``, ``triggered``,
``triggering_labels``, ``triggering_firings``, ``triggering_event``), with the trigger named
by its id. The id is derived from what fired, not drawn at random: evaluating the same
bucket with the same event twice (a replica retrying after a crash) gives the same firing
id, so the engine can store firings under a unique key and act on each exactly once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: An event as deputy's event bus holds it (Prefect's ``ReceivedEvent`` as a dict):
#: ``event`` (name), ``resource`` (labels), ``related`` (list of labels), ``occurred`` and
#: ``received`` (aware datetimes), ``id`` (UUID), ``payload``, ``follows``.
Event = Mapping[str, Any]

#: The namespace of deputy's firing ids (``uuid5``).
FIRING_NAMESPACE = uuid.UUID("5b0f7c3e-2d1a-4e8b-9c6f-1a2b3c4d5e6f")


@dataclass(frozen=True)
class Firing:
    """One firing of one trigger."""

    id: uuid.UUID
    trigger_id: uuid.UUID
    #: When it fired (the evaluation's ``now``, not the event's time).
    triggered: dt.datetime
    #: The ``for_each`` labels of the bucket that fired, with their values.
    triggering_labels: Mapping[str, str] = field(default_factory=dict)
    #: The event that fired it (reactive), or the last one its window counted (proactive).
    triggering_event: Event | None = None
    #: For a composite trigger: the child firings that together fired it.
    triggering_firings: Sequence[Firing] = ()

    def all_firings(self) -> list[Firing]:
        """This firing and every firing under it, outermost first."""
        return [self, *(f for child in self.triggering_firings for f in child.all_firings())]

    def all_events(self) -> list[Event]:
        """The triggering events of this firing and of every firing under it."""
        return [f.triggering_event for f in self.all_firings() if f.triggering_event is not None]


def firing_id(trigger_id: uuid.UUID, *parts: object) -> uuid.UUID:
    """A firing id determined by the trigger and what made it fire."""
    text = "\x1f".join([str(trigger_id), *(_text(part) for part in parts)])
    return uuid.uuid5(FIRING_NAMESPACE, text)


def _text(part: object) -> str:
    if isinstance(part, dt.datetime):
        return part.astimezone(dt.UTC).isoformat()
    if isinstance(part, tuple | list):
        return "\x1e".join(_text(item) for item in part)
    return "" if part is None else str(part)
