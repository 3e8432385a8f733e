"""The state vocabulary both policies decide over: the proposal, the current state, the answer.

Flow and task rules read and reshape the same kinds of state; what differs is the run around
them (``flow_context.py``, ``task_context.py``). Pure: no database, no clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from dataclasses import dataclass, field
from typing import Any

from deputy.schemas.core import StateType


class Status(enum.StrEnum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    WAIT = "WAIT"
    ABORT = "ABORT"


@dataclass
class StateDraft:
    """A state about to be written: the proposal, as rules reshape it."""

    type: StateType
    name: str
    timestamp: dt.datetime
    message: str | None = None
    data: Any = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, state_type: StateType, now: dt.datetime, **fields: Any) -> StateDraft:
        """A fresh state of ``state_type`` named like Prefect's constructors name it."""
        return cls(
            type=state_type,
            name=fields.pop("name", None) or default_name(state_type),
            timestamp=now,
            **fields,
        )

    def copy(self) -> StateDraft:
        """A copy the rules may reshape without touching the caller's proposal."""
        return dataclasses.replace(self, details=dict(self.details))


@dataclass(frozen=True)
class CurrentState:
    type: StateType
    name: str
    timestamp: dt.datetime
    data: Any
    details: dict[str, Any]


@dataclass
class Effects:
    """What the service must do in the same transaction if a flow run's decided state is
    written (deployment concurrency slots and leases, policy updates)."""

    acquire_slot: bool = False
    release_slot: bool = False
    renew_lease: bool = False
    revoke_lease: bool = False
    policy: dict[str, Any] | None = None


@dataclass
class Decision:
    """The outcome: ``state`` is what gets written (None: nothing is written)."""

    status: Status
    state: StateDraft | None
    reason: str | None = None
    delay_seconds: int | None = None
    effects: Effects = field(default_factory=Effects)


def default_name(state_type: StateType) -> str:
    return state_type.value.title()


def has_persisted_result(data: Any) -> bool:
    """Result metadata that points at stored data (anything but "unpersisted")."""
    return isinstance(data, dict) and data.get("type") != "unpersisted"


def holds_stored_result(data: Any) -> bool:
    """A current state carrying a stored result (Prefect also requires non-empty data)."""
    return bool(data) and has_persisted_result(data)


def as_time(value: Any) -> dt.datetime | None:
    """A state-details time, stored as ISO text (or already parsed); empty means none."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    moment: dt.datetime = value
    return moment


def seconds_until_scheduled(details: dict[str, Any], now: dt.datetime) -> int:
    """Whole seconds (rounded as Prefect rounds them) until the state's scheduled time;
    zero or less when it has come."""
    scheduled = as_time(details.get("scheduled_time"))
    if scheduled is None:
        return 0
    delay = scheduled - now
    return math.floor(delay.total_seconds()) + round(delay.microseconds / 1e6)
