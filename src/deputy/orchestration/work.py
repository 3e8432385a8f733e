"""The machinery both policies share: the working context rules reshape, and the rule loop.

A policy is a table of ``Entry`` (a rule and the (from, to) state types it applies to, None
standing for "no state yet"). ``apply_rules`` runs the table in order over a ``Work``; the set
of rules is fixed by the transition as proposed, and once a rule rejects into another state
type, waits or aborts, the rules after it "fizzle" (are skipped), as in Prefect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from deputy.orchestration.states import CurrentState, StateDraft, Status
from deputy.schemas.core import StateType


class AnyTransition(Protocol):
    """What every transition carries: the current state and the server's clock."""

    @property
    def current(self) -> CurrentState | None: ...

    @property
    def now(self) -> dt.datetime: ...


T = TypeVar("T", bound=AnyTransition)
W = TypeVar("W", bound="Work[Any]")


@dataclass
class Work(Generic[T]):
    """The transition under decision, passed from rule to rule; ``state`` is what would be
    written (None once nothing will be)."""

    transition: T
    state: StateDraft | None
    status: Status = Status.ACCEPT
    reason: str | None = None
    delay_seconds: int | None = None
    keep_current: bool = False
    #: Set when the terminal-state rule reset the run's retry data; undone if a later rule
    #: moves the run to another state type, as Prefect's rule cleanup does.
    terminal_reset: bool = False

    @property
    def current(self) -> CurrentState:
        assert self.transition.current is not None
        return self.transition.current

    @property
    def proposed(self) -> StateDraft:
        assert self.state is not None
        return self.state

    @property
    def now(self) -> dt.datetime:
        return self.transition.now

    def reject(self, state: StateDraft | None, reason: str) -> None:
        """Write ``state`` instead, or (None) keep the current state and write nothing."""
        self.status, self.reason = Status.REJECT, reason
        self.keep_current = state is None
        self.state = state

    def wait(self, seconds: int, reason: str) -> None:
        self.status, self.reason, self.delay_seconds, self.state = (
            Status.WAIT,
            reason,
            seconds,
            None,
        )

    def abort(self, reason: str) -> None:
        self.status, self.reason, self.state = Status.ABORT, reason, None

    @property
    def stopped(self) -> bool:
        """Nothing will be written: the run waits, aborts or keeps its current state."""
        return self.state is None


@dataclass(frozen=True)
class Entry(Generic[W]):
    rule: Callable[[W], None]
    from_types: frozenset[StateType | None]
    to_types: frozenset[StateType | None]


def apply_rules(policy: Iterable[Entry[W]], work: W) -> None:
    """Run each rule whose (from, to) types match the transition as proposed, in order,
    until one stops the transition or changes its target type."""
    current = work.transition.current
    current_type = current.type if current is not None else None
    intended = work.proposed.type
    for entry in policy:
        if work.stopped or work.proposed.type != intended:
            break  # later rules fizzle once the target type changed or nothing is written
        if current_type in entry.from_types and intended in entry.to_types:
            entry.rule(work)
