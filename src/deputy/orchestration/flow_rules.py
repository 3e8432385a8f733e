"""Prefect's flow-run rules (CoreFlowPolicy, and MinimalFlowPolicy for forced transitions),
one small pure function each, and the tables that order them as Prefect does.

Each rule reads the transition and reshapes ``work``: the state to write, a rejection, a wait
or an abort, and the side effects (``work.effects``) the service must apply. ``policy.py``
runs the tables.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from deputy.orchestration.flow_context import (
    ACTIVE_SLOT_TYPES,
    ALL_TYPES,
    CONCURRENCY_SLOT_WAIT_SECONDS,
    SELF_MANAGING_WORKERS,
    FlowWork,
)
from deputy.orchestration.states import (
    StateDraft,
    as_time,
    has_persisted_result,
    holds_stored_result,
    seconds_until_scheduled,
)
from deputy.orchestration.work import Entry, Work
from deputy.schemas.core import TERMINAL_STATE_TYPES, StateType

S = StateType


# --- the rules, in Prefect's CoreFlowPolicy order -------------------------------------------


def preserve_lease_id(work: FlowWork) -> None:
    """Workers send an explicit null lease id; keep the one the run holds."""
    state = work.proposed
    current = work.transition.current
    if current is not None and state.details.get("deployment_concurrency_lease_id") is None:
        lease = current.details.get("deployment_concurrency_lease_id")
        if lease is not None:
            state.details["deployment_concurrency_lease_id"] = lease


def prevent_duplicate_transitions(work: FlowWork) -> None:
    """A retried set_state with the same transition id is answered with the current state."""
    mine = work.proposed.details.get("transition_id")
    if mine is not None and mine == work.current.details.get("transition_id"):
        work.reject(None, "This run has already made this state transition.")


def handle_terminal_state_transitions(work: FlowWork) -> None:
    """Leaving a final state: never to CANCELLING/PAUSED/CRASHED, never losing a stored
    result, never rescheduled without a deployment; a rerun starts with fresh pause data."""
    proposed = work.proposed
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


def enforce_cancelling_to_cancelled(work: FlowWork) -> None:
    """A cancelling run can only become cancelled."""
    work.reject(
        None, "Cannot transition flows that are cancelling to a state other than Cancelled."
    )


def bypass_cancelling_without_infrastructure(work: FlowWork) -> None:
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


def prevent_pending_transitions(work: Work[Any]) -> None:
    """Only the first claimant gets PENDING: this is what makes one worker win a run (and
    claims a background task once). The task policy uses this same rule.

    A renamed PENDING sub-state (e.g. "Submitting") may follow PENDING; it keeps the
    scheduled time and the lease of the state before it.
    """
    proposed = work.proposed
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


def validate_concurrency_at_running(work: FlowWork) -> None:
    """PENDING → RUNNING keeps the lease; if it expired meanwhile, take a slot again or stop."""
    proposed = work.proposed
    lease = work.current.details.get("deployment_concurrency_lease_id")
    proposed.details["deployment_concurrency_lease_id"] = lease
    slots = work.transition.slots
    if lease is None or not work.client_leases() or slots is None or slots.limit is None:
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


def secure_concurrency_slot(work: FlowWork) -> None:
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


def revoke_lease_for_old_clients(work: FlowWork) -> None:
    """Clients older than 3.4.11 never renew leases: drop the lease, keep the slot."""
    lease = work.current.details.get("deployment_concurrency_lease_id")
    if lease is not None and not work.client_leases():
        work.effects.revoke_lease = True


def only_scheduled_runs_marked_late(work: FlowWork) -> None:
    proposed = work.proposed
    if proposed.name != "Late":
        return
    if work.current.type != S.SCHEDULED:
        work.reject(None, "Only scheduled flows can be marked late.")
    elif work.current.name == "Late":
        work.reject(None, "This flow run is already marked late.")


def handle_pausing(work: FlowWork) -> None:
    """Only a running run pauses, once per pause key; suspending needs a top-level
    deployment run. The key is recorded so the same pause never fires twice."""
    proposed = work.proposed
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


def handle_resuming(work: FlowWork) -> None:
    """Leaving PAUSED: only to RUNNING, SCHEDULED, CANCELLING or a final state, and not
    after the pause timed out. Whatever state is then written, the run is marked as resuming
    (a blocking pause left for SCHEDULED starts over instead, with its pause data reset)."""
    proposed = work.proposed
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
    written = work.proposed
    policy = work.policy()
    if not rescheduled and written.type == S.SCHEDULED:
        policy.update(resuming=False, pause_keys=[], retry_type="reschedule")
    else:
        policy["resuming"] = True
    work.effects.policy = policy


def copy_scheduled_time(work: FlowWork) -> None:
    proposed = work.proposed
    if not proposed.details.get("scheduled_time"):
        proposed.details["scheduled_time"] = work.current.details.get("scheduled_time")


def wait_for_scheduled_time(work: FlowWork) -> None:
    """Runs start no earlier than scheduled, by the server's clock."""
    seconds = seconds_until_scheduled(work.current.details, work.now)
    if seconds > 0:
        work.wait(seconds, "Scheduled time is in the future")


def retry_failed_flows(work: FlowWork) -> None:
    """A failed run with retries left goes back to SCHEDULED "AwaitingRetry"."""
    run = work.transition.run
    proposed = work.proposed
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


def prevent_result_data_loss(work: FlowWork) -> None:
    """Even forced: a COMPLETED state with a stored result is not replaced by one without."""
    proposed = work.proposed
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


# Only three rules apply to a run's first state (no current state, None); the rest need one
# to compare against.
ALL_OR_NONE: frozenset[StateType | None] = frozenset({*ALL_TYPES, None})
NON_ACTIVE_OR_NONE: frozenset[StateType | None] = frozenset({*ALL_TYPES - ACTIVE_SLOT_TYPES, None})

CORE_POLICY: tuple[Entry[FlowWork], ...] = (
    Entry(preserve_lease_id, ALL_OR_NONE, ALL_TYPES),
    Entry(prevent_duplicate_transitions, ALL_TYPES, ALL_TYPES),
    Entry(handle_terminal_state_transitions, frozenset(TERMINAL_STATE_TYPES), ALL_TYPES),
    Entry(enforce_cancelling_to_cancelled, frozenset({S.CANCELLING}), ALL_TYPES - {S.CANCELLED}),
    Entry(
        bypass_cancelling_without_infrastructure,
        frozenset({S.SCHEDULED, S.PAUSED}),
        frozenset({S.CANCELLING}),
    ),
    Entry(
        prevent_pending_transitions,
        frozenset({S.PENDING, S.CANCELLING, S.RUNNING, S.CANCELLED}),
        frozenset({S.PENDING}),
    ),
    Entry(validate_concurrency_at_running, frozenset({S.PENDING}), frozenset({S.RUNNING})),
    Entry(secure_concurrency_slot, NON_ACTIVE_OR_NONE, frozenset({S.PENDING})),
    Entry(
        revoke_lease_for_old_clients,
        frozenset({S.PENDING}),
        frozenset({S.RUNNING, S.CANCELLING}),
    ),
    Entry(only_scheduled_runs_marked_late, ALL_TYPES, frozenset({S.SCHEDULED})),
    Entry(handle_pausing, ALL_OR_NONE, frozenset({S.PAUSED})),
    Entry(handle_resuming, frozenset({S.PAUSED}), ALL_TYPES),
    Entry(copy_scheduled_time, frozenset({S.SCHEDULED}), frozenset({S.PENDING})),
    Entry(wait_for_scheduled_time, frozenset({S.SCHEDULED, S.PENDING}), frozenset({S.RUNNING})),
    Entry(retry_failed_flows, frozenset({S.RUNNING}), frozenset({S.FAILED})),
)

MINIMAL_POLICY: tuple[Entry[FlowWork], ...] = (
    Entry(preserve_lease_id, ALL_OR_NONE, ALL_TYPES),
    Entry(prevent_result_data_loss, frozenset({S.COMPLETED}), frozenset({S.COMPLETED})),
    Entry(
        bypass_cancelling_without_infrastructure,
        frozenset({S.SCHEDULED, S.PAUSED}),
        frozenset({S.CANCELLING}),
    ),
)
