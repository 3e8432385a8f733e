"""What the task-run rules read and write: the task run, the facts the service loaded (the
enclosing flow run, a cached state, the tag concurrency limits), the transition, and the
working context passed between rules (pure)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deputy.orchestration.states import CurrentState, Decision, StateDraft
from deputy.orchestration.work import Work
from deputy.schemas.core import StateType


@dataclass(frozen=True)
class TaskRunView:
    """The task-run fields the rules read."""

    id: uuid.UUID
    flow_run_id: uuid.UUID | None
    tags: tuple[str, ...]
    run_count: int
    flow_run_run_count: int
    empirical_policy: dict[str, Any]


@dataclass(frozen=True)
class FlowRunFacts:
    """The enclosing flow run: its run count and current state."""

    id: uuid.UUID
    run_count: int
    state_type: StateType | None
    state_details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CachedState:
    """The newest unexpired state cached under the proposed state's cache key."""

    type: StateType
    message: str | None
    data: Any
    details: dict[str, Any]


@dataclass(frozen=True)
class TagLimit:
    """A ``tag:<name>`` global concurrency limit on one of the run's tags."""

    id: uuid.UUID
    tag: str
    limit: int
    active: bool
    active_slots: int
    avg_slot_occupancy_seconds: float = 0.0

    @property
    def has_free_slot(self) -> bool:
        return self.active_slots + 1 <= self.limit


@dataclass
class TaskTransition:
    run: TaskRunView
    current: CurrentState | None
    proposed: StateDraft
    now: dt.datetime
    flow_run: FlowRunFacts | None = None
    cached: CachedState | None = None
    tag_limits: tuple[TagLimit, ...] = ()
    draw: Callable[[], float] = random.random


@dataclass
class TaskEffects:
    """What the service must do in the same transaction if the decided state is written."""

    #: Take one slot of each of these limits, each held by a lease for this run.
    acquire_tag_slots: tuple[uuid.UUID, ...] = ()
    #: Give back every tag slot this run holds.
    release_tag_slots: bool = False
    #: Record the written state under its ``cache_key``.
    cache_state: bool = False
    #: The run count the bookkeeping starts from (None: the run's own).
    run_count: int | None = None
    #: The flow run's run count, recorded on the task run.
    flow_run_run_count: int | None = None


@dataclass
class TaskDecision(Decision):
    task_effects: TaskEffects = field(default_factory=TaskEffects)


@dataclass
class TaskWork(Work[TaskTransition]):
    """The shared working context plus the run count the bookkeeping starts from and the tag
    slots to take."""

    run_count: int = 0
    acquire_tag_slots: tuple[uuid.UUID, ...] = ()
