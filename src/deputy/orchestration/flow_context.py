"""What the flow-run rules read and write: the run, the deployment-concurrency facts the
service loaded, the transition, and the working context passed between rules (pure)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from deputy.orchestration.states import CurrentState, Effects, StateDraft
from deputy.orchestration.work import Work
from deputy.schemas.core import StateType

S = StateType
ALL_TYPES = frozenset(StateType)
ACTIVE_SLOT_TYPES = frozenset({S.PENDING, S.RUNNING, S.CANCELLING})

#: How long a run rejected for lack of a deployment slot waits before trying again.
CONCURRENCY_SLOT_WAIT_SECONDS = 30
#: Lease length when the deployment sets no ``grace_period_seconds``.
DEFAULT_LEASE_SECONDS = 300
#: Workers 3.0.0rc20 to 3.0.3 took deployment slots themselves; the server leaves them be.
SELF_MANAGING_WORKERS = frozenset({(3, 0, 0), (3, 0, 1), (3, 0, 2), (3, 0, 3)})
#: Clients from this version renew deployment concurrency leases themselves.
LEASING_CLIENT_VERSION = (3, 4, 11)


@dataclass(frozen=True)
class RunView:
    """The flow-run fields the rules read."""

    id: uuid.UUID
    deployment_id: uuid.UUID | None
    infrastructure_pid: str | None
    parent_task_run_id: uuid.UUID | None
    run_count: int
    empirical_policy: dict[str, Any]


@dataclass(frozen=True)
class DeploymentSlots:
    """Deployment-concurrency facts, loaded (and locked) by the service when a rule needs them.

    ``deployment_exists`` is False for a run whose deployment was deleted. ``limit`` is None
    when the deployment has no concurrency limit. ``lease_alive`` says whether the current
    state's lease still exists (it may have expired and been reclaimed).
    """

    deployment_exists: bool
    limit_id: uuid.UUID | None = None
    limit: int | None = None
    active_slots: int = 0
    collision_strategy: str = "ENQUEUE"
    grace_period_seconds: int = DEFAULT_LEASE_SECONDS
    lease_alive: bool = False

    @property
    def has_free_slot(self) -> bool:
        return self.limit is not None and self.active_slots + 1 <= self.limit


@dataclass
class Transition:
    run: RunView
    current: CurrentState | None
    proposed: StateDraft
    now: dt.datetime
    slots: DeploymentSlots | None = None
    client_version: tuple[int, ...] | None = None


@dataclass
class FlowWork(Work[Transition]):
    """The shared working context plus the flow run's side effects decided so far."""

    effects: Effects = field(default_factory=Effects)

    def policy(self) -> dict[str, Any]:
        """The run's policy with this transition's updates so far (a copy to modify)."""
        base = self.effects.policy or self.transition.run.empirical_policy
        return {**base, "pause_keys": list(base.get("pause_keys") or [])}

    def client_leases(self) -> bool:
        """Whether the client renews leases; one that does not say its version is taken as
        old, as Prefect does."""
        version = self.transition.client_version
        return version is not None and version >= LEASING_CLIENT_VERSION
