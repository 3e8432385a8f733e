"""Prefect's flow-run orchestration rules as small pure functions, applied in Prefect's order.

``decide(transition)`` takes plain data (the run, its current state, the proposed state, and
the deployment-concurrency facts the service loaded) and returns what to do: accept, reject
(into another state or keeping the current one), wait, or abort, plus the side effects the
service must apply (take or give back a concurrency slot, renew a lease, policy updates).
Nothing here touches the database or the clock: ``now`` comes in with the transition.

Each rule has the (from, to) state types it applies to; the set is fixed by the transition
as proposed, and a rule whose target type was changed by an earlier rejection "fizzles"
(is skipped), as in Prefect. ``force=True`` uses the minimal policy instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deputy.schemas.core import TERMINAL_STATE_TYPES, StateType

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


@dataclass(frozen=True)
class CurrentState:
    type: StateType
    name: str
    timestamp: dt.datetime
    data: Any
    details: dict[str, Any]


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
class Effects:
    """What the service must do in the same transaction if the decided state is written."""

    acquire_slot: bool = False
    release_slot: bool = False
    renew_lease: bool = False
    revoke_lease: bool = False
    policy: dict[str, Any] | None = None


@dataclass
class Transition:
    run: RunView
    current: CurrentState | None
    proposed: StateDraft
    now: dt.datetime
    slots: DeploymentSlots | None = None
    client_version: tuple[int, ...] | None = None


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


# --- the working context passed between rules ---------------------------------------------


@dataclass
class _Work:
    transition: Transition
    status: Status = Status.ACCEPT
    state: StateDraft | None = None
    reason: str | None = None
    delay_seconds: int | None = None
    effects: Effects = field(default_factory=Effects)
    keep_current: bool = False
    #: Set when the terminal-state rule reset the pause data; undone if a later rule moves
    #: the run to another state type, as Prefect's rule cleanup does.
    terminal_reset: bool = False

    @property
    def current(self) -> CurrentState:
        assert self.transition.current is not None
        return self.transition.current

    @property
    def now(self) -> dt.datetime:
        return self.transition.now

    def policy(self) -> dict[str, Any]:
        """The run's policy with this transition's updates so far (a copy to modify)."""
        base = self.effects.policy or self.transition.run.empirical_policy
        return {**base, "pause_keys": list(base.get("pause_keys") or [])}

    def reject(self, state: StateDraft | None, reason: str) -> None:
        """Write ``state`` instead, or (None) keep the current state and write nothing."""
        self.status = Status.REJECT
        self.reason = reason
        if state is None:
            self.keep_current = True
            self.state = None
        else:
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
        return self.status in (Status.WAIT, Status.ABORT) or self.keep_current


Rule = Callable[[_Work], None]


@dataclass(frozen=True)
class _Entry:
    rule: Rule
    from_types: frozenset[StateType]
    to_types: frozenset[StateType]


# --- the rules, in Prefect's CoreFlowPolicy order -------------------------------------------


def preserve_lease_id(work: _Work) -> None:
    """Workers send an explicit null lease id; keep the one the run holds."""
    state = work.state
    assert state is not None
    current = work.transition.current
    if current is not None and state.details.get("deployment_concurrency_lease_id") is None:
        lease = current.details.get("deployment_concurrency_lease_id")
        if lease is not None:
            state.details["deployment_concurrency_lease_id"] = lease


def prevent_duplicate_transitions(work: _Work) -> None:
    """A retried set_state with the same transition id is answered with the current state."""
    assert work.state is not None
    mine = work.state.details.get("transition_id")
    if mine is not None and mine == work.current.details.get("transition_id"):
        work.reject(None, "This run has already made this state transition.")


def handle_terminal_state_transitions(work: _Work) -> None:
    """Leaving a final state: never to CANCELLING/PAUSED/CRASHED, never losing a stored
    result, never rescheduled without a deployment; a rerun starts with fresh pause data."""
    proposed = work.state
    assert proposed is not None
    current = work.current
    if proposed.type in (S.CANCELLING, S.PAUSED, S.CRASHED):
        work.abort(f"Run is already in terminal state {current.type.value}.")
        return
    completed_with_result = current.type == S.COMPLETED and holds_stored_result(current.data)
    if completed_with_result and proposed.type not in TERMINAL_STATE_TYPES:
        work.reject(None, "Run is already COMPLETED.")
        return
    if (
        completed_with_result
        and proposed.type == S.COMPLETED
        and not has_persisted_result(proposed.data)
    ):
        work.reject(
            None,
            "Cannot overwrite a COMPLETED state that carries persisted result data with one "
            "that does not.",
        )
        return
    if proposed.type == S.SCHEDULED and work.transition.run.deployment_id is None:
        work.abort("Cannot reschedule a run without an associated deployment.")
        return
    if proposed.type not in TERMINAL_STATE_TYPES:
        work.terminal_reset = True
        policy = work.policy()
        policy.update(resuming=False, pause_keys=[])
        policy["retry_type"] = "reschedule" if proposed.type == S.SCHEDULED else None
        work.effects.policy = policy


def enforce_cancelling_to_cancelled(work: _Work) -> None:
    """A cancelling run can only become cancelled."""
    work.reject(
        None, "Cannot transition flows that are cancelling to a state other than Cancelled."
    )


def bypass_cancelling_without_infrastructure(work: _Work) -> None:
    """Nothing to tear down: go straight to CANCELLED."""
    current = work.current
    run = work.transition.run
    if (current.type == S.SCHEDULED and not run.infrastructure_pid) or current.name == "Resuming":
        work.reject(
            StateDraft.of(S.CANCELLED, work.now),
            "Scheduled flow run has no infrastructure to terminate.",
        )
    elif current.type == S.PAUSED and current.details.get("pause_reschedule"):
        work.reject(
            StateDraft.of(S.CANCELLED, work.now),
            "Suspended flow run has no infrastructure to terminate.",
        )


def prevent_pending_transitions(work: _Work) -> None:
    """Only the first claimant gets PENDING: this is what makes one worker win a run.

    A renamed PENDING sub-state (e.g. "Submitting") may follow PENDING; it keeps the
    scheduled time and the lease of the state before it.
    """
    proposed = work.state
    assert proposed is not None
    current = work.current
    if current.type == S.PENDING and current.name != proposed.name and proposed.name != "Pending":
        proposed.details["scheduled_time"] = current.details.get("scheduled_time")
        proposed.details["deployment_concurrency_lease_id"] = current.details.get(
            "deployment_concurrency_lease_id"
        )
        return
    work.abort(
        f"This run is in a {current.type.value} state and cannot transition to a PENDING state."
    )


def validate_concurrency_at_running(work: _Work) -> None:
    """PENDING → RUNNING keeps the lease; if it expired meanwhile, take a slot again or stop."""
    proposed = work.state
    assert proposed is not None
    lease = work.current.details.get("deployment_concurrency_lease_id")
    proposed.details["deployment_concurrency_lease_id"] = lease
    slots = work.transition.slots
    if lease is None or not _client_leases(work) or slots is None or slots.limit is None:
        return
    if slots.lease_alive:
        work.effects.renew_lease = True
    elif slots.has_free_slot:
        work.effects.acquire_slot = True
        proposed.details["deployment_concurrency_lease_id"] = None
    else:
        work.reject(
            StateDraft.of(
                S.CANCELLED,
                work.now,
                message="Deployment concurrency slot lost during provisioning - no slots "
                "available to continue execution",
            ),
            "Deployment concurrency limit reached after lease expiry.",
        )


def secure_concurrency_slot(work: _Work) -> None:
    """Entering PENDING takes one of the deployment's slots, or waits / is cancelled."""
    run = work.transition.run
    slots = work.transition.slots
    if run.deployment_id is None or work.transition.client_version in SELF_MANAGING_WORKERS:
        return
    if slots is None or not slots.deployment_exists:
        work.abort("Deployment not found.")
        return
    if slots.limit is None:
        return
    if slots.limit == 0:
        work.abort(
            "The deployment concurrency limit is 0. The flow will deadlock if submitted again."
        )
        return
    if slots.has_free_slot:
        work.effects.acquire_slot = True
        return
    if slots.collision_strategy == "CANCEL_NEW":
        work.reject(
            StateDraft.of(S.CANCELLED, work.now, message="Deployment concurrency limit reached."),
            "Deployment concurrency limit reached.",
        )
    else:
        wait_until = work.now + dt.timedelta(seconds=CONCURRENCY_SLOT_WAIT_SECONDS)
        work.reject(
            StateDraft.of(
                S.SCHEDULED,
                work.now,
                name="AwaitingConcurrencySlot",
                details={"scheduled_time": wait_until},
            ),
            "Deployment concurrency limit reached.",
        )


def revoke_lease_for_old_clients(work: _Work) -> None:
    """Clients older than 3.4.11 never renew leases: drop the lease, keep the slot."""
    lease = work.current.details.get("deployment_concurrency_lease_id")
    if lease is not None and not _client_leases(work):
        work.effects.revoke_lease = True


def only_scheduled_runs_marked_late(work: _Work) -> None:
    proposed = work.state
    assert proposed is not None
    if proposed.name != "Late":
        return
    if work.current.type != S.SCHEDULED:
        work.reject(None, "Only scheduled flows can be marked late.")
    elif work.current.name == "Late":
        work.reject(None, "This flow run is already marked late.")


def handle_pausing(work: _Work) -> None:
    """Only a running run pauses, once per pause key; suspending needs a top-level
    deployment run. The key is recorded so the same pause never fires twice."""
    proposed = work.state
    assert proposed is not None
    verb = "suspend" if proposed.name == "Suspended" else "pause"
    current = work.transition.current
    if current is None:
        work.abort(f"Cannot {verb} flows with no state.")
        return
    if current.type != S.RUNNING:
        work.reject(None, f"Cannot {verb} flows that are not currently running.")
        return
    key = proposed.details.get("pause_key") or str(uuid.uuid4())
    policy = work.policy()
    if key in policy["pause_keys"]:
        work.reject(None, f"This {verb} has already fired.")
        return
    if proposed.details.get("pause_reschedule"):
        if work.transition.run.parent_task_run_id is not None:
            work.abort(f"Cannot {verb} subflows.")
            return
        if work.transition.run.deployment_id is None:
            work.abort(f"Cannot {verb} flows without a deployment.")
            return
    policy["pause_keys"] = [*policy["pause_keys"], key]
    work.effects.policy = policy


def handle_resuming(work: _Work) -> None:
    """Leaving PAUSED: only to RUNNING, SCHEDULED, CANCELLING or a final state, and not
    after the pause timed out. Whatever state is then written, the run is marked as resuming
    (a blocking pause left for SCHEDULED starts over instead, with its pause data reset)."""
    proposed = work.state
    assert proposed is not None
    current = work.current
    allowed = proposed.type in (S.RUNNING, S.SCHEDULED, S.CANCELLING) or (
        proposed.type in TERMINAL_STATE_TYPES
    )
    if not allowed:
        # Prefect words this with the enum members themselves ("StateType.PENDING").
        work.reject(
            None,
            f"This run cannot transition to the StateType.{proposed.type.value} state from "
            f"the StateType.{current.type.value} state.",
        )
        return
    verb = "suspend" if proposed.name == "Suspended" else "pause"
    shown = (proposed.name or proposed.type.value).lower()
    rescheduled = bool(current.details.get("pause_reschedule"))
    if rescheduled and work.transition.run.deployment_id is None:
        work.reject(None, f"Cannot reschedule a {shown} flow run without a deployment.")
        return
    if proposed.type != S.CANCELLING:
        timeout = as_time(current.details.get("pause_timeout"))
        if timeout is not None and timeout < work.now:
            work.reject(
                StateDraft.of(
                    S.FAILED, work.now, message=f"The flow was {shown} and never resumed."
                ),
                f"The flow run {verb} has timed out and can no longer resume.",
            )
    written = work.state
    assert written is not None
    policy = work.policy()
    if not rescheduled and written.type == S.SCHEDULED:
        policy.update(resuming=False, pause_keys=[], retry_type="reschedule")
    else:
        policy["resuming"] = True
    work.effects.policy = policy


def copy_scheduled_time(work: _Work) -> None:
    proposed = work.state
    assert proposed is not None
    if not proposed.details.get("scheduled_time"):
        proposed.details["scheduled_time"] = work.current.details.get("scheduled_time")


def seconds_until_scheduled(details: dict[str, Any], now: dt.datetime) -> int:
    """Whole seconds (rounded as Prefect rounds them) until the state's scheduled time;
    zero or less when it has come. Shared by the flow and task rules."""
    scheduled = as_time(details.get("scheduled_time"))
    if scheduled is None:
        return 0
    delay = scheduled - now
    return math.floor(delay.total_seconds()) + round(delay.microseconds / 1e6)


def wait_for_scheduled_time(work: _Work) -> None:
    """Runs start no earlier than scheduled, by the server's clock."""
    seconds = seconds_until_scheduled(work.current.details, work.now)
    if seconds > 0:
        work.wait(seconds, "Scheduled time is in the future")


def retry_failed_flows(work: _Work) -> None:
    """A failed run with retries left goes back to SCHEDULED "AwaitingRetry"."""
    run = work.transition.run
    proposed = work.state
    assert proposed is not None
    policy = work.policy()
    retries = policy.get("retries")
    if retries is None or run.run_count > retries:
        policy["retry_type"] = None
        work.effects.policy = policy
        return
    policy.update(resuming=False, pause_keys=[], retry_type="in_process")
    work.effects.policy = policy
    retry_at = work.now + dt.timedelta(seconds=policy.get("retry_delay") or 0)
    work.reject(
        StateDraft.of(
            S.SCHEDULED,
            work.now,
            name="AwaitingRetry",
            message=proposed.message,
            data=proposed.data,
            details={
                "scheduled_time": retry_at,
                "deployment_concurrency_lease_id": work.current.details.get(
                    "deployment_concurrency_lease_id"
                ),
            },
        ),
        "Retrying",
    )


def prevent_result_data_loss(work: _Work) -> None:
    """Even forced: a COMPLETED state with a stored result is not replaced by one without."""
    proposed = work.state
    assert proposed is not None
    current = work.current
    if (
        current.type == S.COMPLETED
        and holds_stored_result(current.data)
        and not has_persisted_result(proposed.data)
    ):
        work.reject(
            None,
            "Cannot overwrite a COMPLETED state that carries persisted result data with one "
            "that does not.",
        )


NON_ACTIVE = ALL_TYPES - ACTIVE_SLOT_TYPES
CORE_POLICY: tuple[_Entry, ...] = (
    _Entry(preserve_lease_id, ALL_TYPES, ALL_TYPES),
    _Entry(prevent_duplicate_transitions, ALL_TYPES, ALL_TYPES),
    _Entry(handle_terminal_state_transitions, frozenset(TERMINAL_STATE_TYPES), ALL_TYPES),
    _Entry(enforce_cancelling_to_cancelled, frozenset({S.CANCELLING}), ALL_TYPES - {S.CANCELLED}),
    _Entry(
        bypass_cancelling_without_infrastructure,
        frozenset({S.SCHEDULED, S.PAUSED}),
        frozenset({S.CANCELLING}),
    ),
    _Entry(
        prevent_pending_transitions,
        frozenset({S.PENDING, S.CANCELLING, S.RUNNING, S.CANCELLED}),
        frozenset({S.PENDING}),
    ),
    _Entry(validate_concurrency_at_running, frozenset({S.PENDING}), frozenset({S.RUNNING})),
    _Entry(secure_concurrency_slot, NON_ACTIVE, frozenset({S.PENDING})),
    _Entry(
        revoke_lease_for_old_clients,
        frozenset({S.PENDING}),
        frozenset({S.RUNNING, S.CANCELLING}),
    ),
    _Entry(only_scheduled_runs_marked_late, ALL_TYPES, frozenset({S.SCHEDULED})),
    _Entry(handle_pausing, ALL_TYPES, frozenset({S.PAUSED})),
    _Entry(handle_resuming, frozenset({S.PAUSED}), ALL_TYPES),
    _Entry(copy_scheduled_time, frozenset({S.SCHEDULED}), frozenset({S.PENDING})),
    _Entry(wait_for_scheduled_time, frozenset({S.SCHEDULED, S.PENDING}), frozenset({S.RUNNING})),
    _Entry(retry_failed_flows, frozenset({S.RUNNING}), frozenset({S.FAILED})),
)

MINIMAL_POLICY: tuple[_Entry, ...] = (
    _Entry(preserve_lease_id, ALL_TYPES, ALL_TYPES),
    _Entry(prevent_result_data_loss, frozenset({S.COMPLETED}), frozenset({S.COMPLETED})),
    _Entry(
        bypass_cancelling_without_infrastructure,
        frozenset({S.SCHEDULED, S.PAUSED}),
        frozenset({S.CANCELLING}),
    ),
)

#: Rules that apply even with no current state (the rest need one to compare against).
_NEEDS_NO_CURRENT = frozenset({preserve_lease_id, handle_pausing, secure_concurrency_slot})


def needs_slots(current: StateType | None, proposed: StateType, force: bool) -> bool:
    """Whether the service must load deployment-concurrency facts for this transition."""
    if force:
        return False
    entering_pending = proposed == S.PENDING and current not in ACTIVE_SLOT_TYPES
    starting = current == S.PENDING and proposed == S.RUNNING
    return entering_pending or starting


def decide(transition: Transition, *, force: bool = False) -> Decision:
    """Run the policy over the transition and return the decision."""
    work = _Work(transition=transition, state=dataclasses.replace(transition.proposed))
    work.state.details = dict(transition.proposed.details)  # type: ignore[union-attr]
    current_type = transition.current.type if transition.current is not None else None
    proposed_type = transition.proposed.type
    for entry in MINIMAL_POLICY if force else CORE_POLICY:
        if work.stopped or (work.state is not None and work.state.type != proposed_type):
            break  # later rules fizzle once the target type changed or nothing is written
        if current_type is None and entry.rule not in _NEEDS_NO_CURRENT:
            continue
        if current_type is not None and current_type not in entry.from_types:
            continue
        if proposed_type not in entry.to_types:
            continue
        entry.rule(work)
    if work.status in (Status.WAIT, Status.ABORT) or work.keep_current:
        # Nothing is written, so nothing else happens, except that a lease checked before
        # the client was told to wait stays renewed (as in Prefect).
        renew = work.status == Status.WAIT and work.effects.renew_lease
        work.effects = Effects(renew_lease=renew)
    elif work.state is not None:
        if work.state.type != proposed_type and work.terminal_reset:
            work.effects.policy = None
        _release_when_leaving_active(work, current_type)
        if work.effects.acquire_slot and work.state.type not in (S.PENDING, S.RUNNING):
            work.effects.acquire_slot = False  # a later rule moved the run elsewhere
    return Decision(
        status=work.status,
        state=None if work.keep_current else work.state,
        reason=work.reason,
        delay_seconds=work.delay_seconds,
        effects=work.effects,
    )


def _release_when_leaving_active(work: _Work, current_type: StateType | None) -> None:
    """Leaving PENDING/RUNNING/CANCELLING for anything else gives the deployment slot back,
    except an in-process retry: the engine keeps renewing its lease through the retry delay."""
    assert work.state is not None
    in_process_retry = work.status == Status.REJECT and work.state.name == "AwaitingRetry"
    if (
        work.transition.run.deployment_id is not None
        and current_type in ACTIVE_SLOT_TYPES
        and work.state.type not in ACTIVE_SLOT_TYPES
        and not in_process_retry
    ):
        work.effects.release_slot = True


def _client_leases(work: _Work) -> bool:
    """Whether the client renews leases; one that does not say its version is taken as old,
    as Prefect does."""
    version = work.transition.client_version
    return version is not None and version >= LEASING_CLIENT_VERSION


def as_time(value: Any) -> dt.datetime | None:
    """A state-details time, stored as ISO text (or already parsed); empty means none."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    moment: dt.datetime = value
    return moment
