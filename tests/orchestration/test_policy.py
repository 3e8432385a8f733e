"""Flow-run orchestration rules (CoreFlowPolicy and the forced MinimalFlowPolicy), as pure data.

Every expectation here is derived from Prefect 3.9.1's server source
(``prefect/server/orchestration/{core_policy,rules,policies}.py``): a rule fires only when the
transition as proposed matches its FROM/TO sets; a rule that rejects into another state type,
waits or aborts makes every later rule invalid, and earlier rules whose transition changed
under them "fizzle" (their ``cleanup`` runs instead of ``after_transition``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from deputy.orchestration.flow_context import (
    CONCURRENCY_SLOT_WAIT_SECONDS,
    DeploymentSlots,
    RunView,
    Transition,
)
from deputy.orchestration.policy import decide, needs_slots
from deputy.orchestration.states import CurrentState, Decision, Effects, StateDraft, Status
from deputy.schemas.core import FlowRunPolicy, StateType, dump_policy

S = StateType
ALL = list(StateType)
TERMINAL = [S.COMPLETED, S.FAILED, S.CANCELLED, S.CRASHED]
ACTIVE = {S.PENDING, S.RUNNING, S.CANCELLING}

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
EARLIER = NOW - dt.timedelta(minutes=5)
RUN_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
DEPLOYMENT_ID = uuid.UUID("00000000-0000-4000-8000-000000000002")
PARENT_TASK_RUN_ID = uuid.UUID("00000000-0000-4000-8000-000000000003")
LIMIT_ID = uuid.UUID("00000000-0000-4000-8000-000000000004")
LEASE_ID = uuid.UUID("00000000-0000-4000-8000-000000000005")
OTHER_LEASE_ID = uuid.UUID("00000000-0000-4000-8000-000000000006")
TRANSITION_ID = uuid.UUID("00000000-0000-4000-8000-000000000007")

NEW_CLIENT = (3, 9, 1)
OLDEST_LEASING_CLIENT = (3, 4, 11)
OLD_CLIENT = (3, 4, 10)

#: Result metadata of a persisted result, as the client sends it (no "type" key).
PERSISTED = {"storage_key": "/results/abc", "serializer": {"type": "pickle"}}
UNPERSISTED = {"type": "unpersisted"}

LOST_SLOT_MESSAGE = (
    "Deployment concurrency slot lost during provisioning - no slots available to continue "
    "execution"
)
OVERWRITE_REASON = (
    "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not."
)


# --- builders -------------------------------------------------------------------------------


def default_policy(**changes: Any) -> dict[str, Any]:
    """A run's ``empirical_policy`` as stored (Prefect's defaults), with ``changes``."""
    return {**dump_policy(FlowRunPolicy()), **changes}


def make_run(
    *,
    deployment_id: uuid.UUID | None = DEPLOYMENT_ID,
    infrastructure_pid: str | None = None,
    parent_task_run_id: uuid.UUID | None = None,
    run_count: int = 1,
    policy: dict[str, Any] | None = None,
) -> RunView:
    return RunView(
        id=RUN_ID,
        deployment_id=deployment_id,
        infrastructure_pid=infrastructure_pid,
        parent_task_run_id=parent_task_run_id,
        run_count=run_count,
        empirical_policy=policy if policy is not None else default_policy(),
    )


def make_current(
    state_type: StateType,
    *,
    name: str | None = None,
    data: Any = None,
    **details: Any,
) -> CurrentState:
    return CurrentState(
        type=state_type,
        name=name or state_type.value.title(),
        timestamp=EARLIER,
        data=data,
        details=details,
    )


def make_proposed(
    state_type: StateType,
    *,
    name: str | None = None,
    message: str | None = None,
    data: Any = None,
    **details: Any,
) -> StateDraft:
    return StateDraft.of(state_type, NOW, name=name, message=message, data=data, details=details)


def make_slots(
    *,
    limit: int | None = None,
    active: int = 0,
    strategy: str = "ENQUEUE",
    exists: bool = True,
    lease_alive: bool = False,
) -> DeploymentSlots:
    return DeploymentSlots(
        deployment_exists=exists,
        limit_id=LIMIT_ID if limit is not None else None,
        limit=limit,
        active_slots=active,
        collision_strategy=strategy,
        lease_alive=lease_alive,
    )


NO_LIMIT = make_slots()


def make_transition(
    current: CurrentState | StateType | None,
    proposed: StateDraft | StateType,
    *,
    run: RunView | None = None,
    slots: DeploymentSlots | None = NO_LIMIT,
    client_version: tuple[int, ...] | None = NEW_CLIENT,
    now: dt.datetime = NOW,
) -> Transition:
    return Transition(
        run=run or make_run(),
        current=make_current(current) if isinstance(current, StateType) else current,
        proposed=make_proposed(proposed) if isinstance(proposed, StateType) else proposed,
        now=now,
        slots=slots,
        client_version=client_version,
    )


def run_policy(
    current: CurrentState | StateType | None,
    proposed: StateDraft | StateType,
    *,
    force: bool = False,
    run: RunView | None = None,
    slots: DeploymentSlots | None = NO_LIMIT,
    client_version: tuple[int, ...] | None = NEW_CLIENT,
    now: dt.datetime = NOW,
) -> Decision:
    transition = make_transition(
        current, proposed, run=run, slots=slots, client_version=client_version, now=now
    )
    return decide(transition, force=force)


def assert_nothing_written(decision: Decision, status: Status, reason: str | None = None) -> None:
    assert decision.status == status
    assert decision.state is None
    assert decision.effects == Effects()
    if reason is not None:
        assert decision.reason == reason


def written(decision: Decision) -> StateDraft:
    assert decision.state is not None, decision
    return decision.state


# --- 1. every (from, to) pair ---------------------------------------------------------------

# Codes: "A" accepted as proposed; "R" rejected, current state kept (nothing written);
# "R>T" rejected into a new state of type T; "X" aborted. Derived by walking CoreFlowPolicy's
# rules for a default run: deployment set, no infrastructure_pid, no retries, no concurrency
# limit, states carry no details or data, proposals use the default name.
_TO_ORDER = [S.SCHEDULED, S.PENDING, S.RUNNING, S.COMPLETED, S.FAILED, S.CANCELLED, S.CRASHED]
_TO_ORDER += [S.PAUSED, S.CANCELLING]
# fmt: off
CORE_TABLE: dict[StateType | None, list[str]] = {
    #            SCHED PEND  RUN  COMPL FAIL CNCLD CRASH PAUSED CANCELLING
    None:         ["A", "A", "A", "A", "A", "A", "A", "X", "A"],  # HandlePausingFlows aborts
    S.SCHEDULED:  ["A", "A", "A", "A", "A", "A", "A", "R", "R>CANCELLED"],  # Bypass..NoInfra
    S.PENDING:    ["A", "X", "A", "A", "A", "A", "A", "R", "A"],  # PreventPendingTransitions
    S.RUNNING:    ["A", "X", "A", "A", "A", "A", "A", "A", "A"],
    S.COMPLETED:  ["A", "A", "A", "A", "A", "A", "X", "X", "X"],  # terminal guard
    S.FAILED:     ["A", "A", "A", "A", "A", "A", "X", "X", "X"],
    S.CANCELLED:  ["A", "X", "A", "A", "A", "A", "X", "X", "X"],  # + PreventPending
    S.CRASHED:    ["A", "A", "A", "A", "A", "A", "X", "X", "X"],
    S.PAUSED:     ["A", "R", "A", "A", "A", "A", "A", "R", "A"],  # resuming / pausing
    S.CANCELLING: ["R", "R", "R", "R", "R", "A", "R", "R", "R"],  # only to CANCELLED
}
# fmt: on
# MinimalFlowPolicy: only PreventResultDataLoss (needs persisted data, absent here) and
# BypassCancellingFlowRunsWithNoInfra can change anything.
FORCE_TABLE: dict[StateType | None, list[str]] = {
    current: [
        "R>CANCELLED" if (current, to) == (S.SCHEDULED, S.CANCELLING) else "A" for to in _TO_ORDER
    ]
    for current in CORE_TABLE
}

_CODE_STATUS = {"A": Status.ACCEPT, "R": Status.REJECT, "X": Status.ABORT, "W": Status.WAIT}


def _pairs(table: dict[StateType | None, list[str]]) -> list[Any]:
    return [
        pytest.param(
            current,
            to,
            code,
            id=f"{current.value if current else 'None'}->{to.value}",
        )
        for current, row in table.items()
        for to, code in zip(_TO_ORDER, row, strict=True)
    ]


def _check_pair(decision: Decision, current: StateType | None, to: StateType, code: str) -> None:
    status_code, _, into = code.partition(">")
    assert decision.status == _CODE_STATUS[status_code], (decision.status, decision.reason)
    if status_code == "A":
        state = written(decision)
        assert (state.type, state.name) == (to, to.value.title())
        assert decision.reason is None
    elif into:
        assert written(decision).type == S(into)
    else:
        assert_nothing_written(decision, decision.status)
        assert decision.reason
        return
    # ReleaseFlowConcurrencySlots: leaving PENDING/RUNNING/CANCELLING for a state outside them.
    leaves_active = current in ACTIVE and written(decision).type not in ACTIVE
    assert decision.effects.release_slot is leaves_active
    assert not decision.effects.acquire_slot
    assert not decision.effects.renew_lease
    assert not decision.effects.revoke_lease


def test_tables_cover_every_pair() -> None:
    assert set(CORE_TABLE) == {None, *ALL}
    assert set(_TO_ORDER) == set(ALL)
    assert len(_pairs(CORE_TABLE)) == len(_pairs(FORCE_TABLE)) == 90


@pytest.mark.parametrize(("current", "to", "code"), _pairs(CORE_TABLE))
def test_core_policy_every_transition(current: StateType | None, to: StateType, code: str) -> None:
    _check_pair(run_policy(current, to), current, to, code)


@pytest.mark.parametrize(("current", "to", "code"), _pairs(FORCE_TABLE))
def test_minimal_policy_every_transition(
    current: StateType | None, to: StateType, code: str
) -> None:
    decision = run_policy(current, to, force=True)
    _check_pair(decision, current, to, code)
    assert decision.effects.policy is None


def test_decide_does_not_mutate_the_transition() -> None:
    current = make_current(S.SCHEDULED, scheduled_time=EARLIER)
    proposed = make_proposed(S.PENDING)
    transition = make_transition(current, proposed)
    decision = decide(transition)
    assert written(decision).details["scheduled_time"] == EARLIER
    assert proposed.details == {}


@pytest.mark.parametrize("current", [None, *ALL])
@pytest.mark.parametrize("to", ALL)
def test_needs_slots_covers_every_rule_reading_slots(
    current: StateType | None, to: StateType
) -> None:
    """SecureFlowConcurrencySlots (non-active → PENDING) and ValidateDeployment...AtRunning."""
    entering_pending = to == S.PENDING and current not in ACTIVE
    starting = (current, to) == (S.PENDING, S.RUNNING)
    assert needs_slots(current, to, force=False) is (entering_pending or starting)
    assert needs_slots(current, to, force=True) is False


# --- 2. one test per rule -------------------------------------------------------------------


def test_preserve_deployment_concurrency_lease_id() -> None:
    # A worker's explicit null lease id is replaced by the run's.
    decision = run_policy(
        make_current(S.RUNNING, deployment_concurrency_lease_id=LEASE_ID),
        make_proposed(S.COMPLETED, deployment_concurrency_lease_id=None),
    )
    assert decision.status == Status.ACCEPT
    assert written(decision).details["deployment_concurrency_lease_id"] == LEASE_ID
    # A proposed lease id is kept.
    decision = run_policy(
        make_current(S.RUNNING, deployment_concurrency_lease_id=LEASE_ID),
        make_proposed(S.COMPLETED, deployment_concurrency_lease_id=OTHER_LEASE_ID),
    )
    assert written(decision).details["deployment_concurrency_lease_id"] == OTHER_LEASE_ID
    # No current state: nothing to copy.
    decision = run_policy(None, make_proposed(S.RUNNING))
    assert written(decision).details.get("deployment_concurrency_lease_id") is None


def test_preserve_deployment_concurrency_lease_id_when_forced() -> None:
    decision = run_policy(
        make_current(S.RUNNING, deployment_concurrency_lease_id=LEASE_ID),
        make_proposed(S.RUNNING, name="Retrying", deployment_concurrency_lease_id=None),
        force=True,
    )
    assert written(decision).details["deployment_concurrency_lease_id"] == LEASE_ID


def test_prevent_duplicate_transitions() -> None:
    for current_type in ALL:
        decision = run_policy(
            make_current(current_type, transition_id=TRANSITION_ID),
            make_proposed(S.RUNNING, transition_id=TRANSITION_ID),
        )
        assert_nothing_written(
            decision, Status.REJECT, "This run has already made this state transition."
        )
    # A new transition id, or none on either side, is a new transition.
    for current_id, proposed_id in [
        (TRANSITION_ID, uuid.uuid4()),
        (None, TRANSITION_ID),
        (TRANSITION_ID, None),
        (None, None),
    ]:
        decision = run_policy(
            make_current(S.PENDING, transition_id=current_id),
            make_proposed(S.RUNNING, transition_id=proposed_id),
        )
        assert decision.status == Status.ACCEPT
    # Nothing to compare with when the run has no state.
    decision = run_policy(None, make_proposed(S.RUNNING, transition_id=TRANSITION_ID))
    assert decision.status == Status.ACCEPT


@pytest.mark.parametrize("current_type", TERMINAL)
@pytest.mark.parametrize("to", [S.CANCELLING, S.PAUSED, S.CRASHED])
def test_handle_flow_terminal_state_transitions_aborts_cancelling_paused_crashed(
    current_type: StateType, to: StateType
) -> None:
    decision = run_policy(make_current(current_type, data=PERSISTED), to)
    assert_nothing_written(
        decision, Status.ABORT, f"Run is already in terminal state {current_type.value}."
    )


def test_handle_flow_terminal_state_transitions_completed_with_result() -> None:
    completed = make_current(S.COMPLETED, data=PERSISTED)
    for to in [S.SCHEDULED, S.PENDING, S.RUNNING]:
        decision = run_policy(completed, to)
        assert_nothing_written(decision, Status.REJECT, "Run is already COMPLETED.")
    # Never replaced by a COMPLETED without (persisted) data.
    for data in [None, UNPERSISTED]:
        decision = run_policy(completed, make_proposed(S.COMPLETED, data=data))
        assert_nothing_written(decision, Status.REJECT, OVERWRITE_REASON)
    decision = run_policy(completed, make_proposed(S.COMPLETED, data=PERSISTED))
    assert (decision.status, written(decision).data) == (Status.ACCEPT, PERSISTED)
    # Other final states are allowed, and leave the policy alone.
    for to in [S.FAILED, S.CANCELLED]:
        decision = run_policy(completed, to)
        assert decision.status == Status.ACCEPT
        assert decision.effects.policy is None
    # Unpersisted or missing result data: a rerun may leave COMPLETED.
    for data in [UNPERSISTED, None]:
        decision = run_policy(make_current(S.COMPLETED, data=data), S.RUNNING)
        assert decision.status == Status.ACCEPT


def test_handle_flow_terminal_state_transitions_empty_dict_data_is_not_a_result() -> None:
    decision = run_policy(make_current(S.COMPLETED, data={}), S.RUNNING)
    assert decision.status == Status.ACCEPT


def test_handle_flow_terminal_state_transitions_reschedule_needs_deployment() -> None:
    for current_type in TERMINAL:
        decision = run_policy(current_type, S.SCHEDULED, run=make_run(deployment_id=None))
        assert_nothing_written(
            decision, Status.ABORT, "Cannot reschedule a run without an associated deployment."
        )
    # A run without deployment may still rerun in place.
    decision = run_policy(S.FAILED, S.RUNNING, run=make_run(deployment_id=None))
    assert decision.status == Status.ACCEPT


def test_handle_flow_terminal_state_transitions_resets_pause_data_on_rerun() -> None:
    run = make_run(policy=default_policy(pause_keys=["a"], resuming=True, retry_type="in_process"))
    for current_type in TERMINAL:
        decision = run_policy(current_type, S.SCHEDULED, run=run)
        assert decision.status == Status.ACCEPT
        assert decision.effects.policy == default_policy(
            pause_keys=[], resuming=False, retry_type="reschedule"
        )
        for to in [S.RUNNING, S.PENDING]:
            if (current_type, to) == (S.CANCELLED, S.PENDING):
                continue  # aborted by PreventPendingTransitions
            decision = run_policy(current_type, to, run=run)
            assert decision.status == Status.ACCEPT
            assert decision.effects.policy == default_policy(
                pause_keys=[], resuming=False, retry_type=None
            )
        # Final → final keeps the policy.
        decision = run_policy(current_type, S.FAILED, run=run)
        assert decision.effects.policy is None
    # A rule later in the chain that writes nothing also leaves the policy alone.
    decision = run_policy(S.FAILED, make_proposed(S.SCHEDULED, name="Late"), run=run)
    assert_nothing_written(decision, Status.REJECT, "Only scheduled flows can be marked late.")


@pytest.mark.parametrize("strategy", ["ENQUEUE", "CANCEL_NEW"])
def test_handle_flow_terminal_state_transitions_restores_policy_when_fizzled(
    strategy: str,
) -> None:
    policy = default_policy(pause_keys=["a"], resuming=True, retry_type="in_process")
    decision = run_policy(
        S.FAILED,
        S.PENDING,
        run=make_run(policy=policy),
        slots=make_slots(limit=1, active=1, strategy=strategy),
    )
    assert decision.status == Status.REJECT
    assert decision.effects.policy in (None, policy)


@pytest.mark.parametrize("to", [t for t in ALL if t != S.CANCELLED])
def test_enforce_cancelling_to_cancelled_transition(to: StateType) -> None:
    decision = run_policy(S.CANCELLING, to)
    assert_nothing_written(
        decision,
        Status.REJECT,
        "Cannot transition flows that are cancelling to a state other than Cancelled.",
    )


def test_enforce_cancelling_to_cancelled_transition_allows_cancelled() -> None:
    decision = run_policy(
        make_current(S.CANCELLING, deployment_concurrency_lease_id=LEASE_ID), S.CANCELLED
    )
    assert decision.status == Status.ACCEPT
    assert written(decision).type == S.CANCELLED
    assert decision.effects.release_slot


@pytest.mark.parametrize("force", [False, True])
def test_bypass_cancelling_flow_runs_with_no_infra(force: bool) -> None:
    scheduled_reason = "Scheduled flow run has no infrastructure to terminate."
    suspended_reason = "Suspended flow run has no infrastructure to terminate."
    with_pid = make_run(infrastructure_pid="1234")
    cases: list[tuple[CurrentState, RunView, str | None]] = [
        (make_current(S.SCHEDULED), make_run(), scheduled_reason),
        (make_current(S.SCHEDULED, name="Late"), make_run(), scheduled_reason),
        (make_current(S.SCHEDULED), with_pid, None),
        (make_current(S.SCHEDULED, name="AwaitingRetry"), with_pid, None),
        (make_current(S.SCHEDULED, name="Resuming"), with_pid, scheduled_reason),
        (make_current(S.PAUSED, name="Resuming"), with_pid, scheduled_reason),
        (
            make_current(S.PAUSED, name="Suspended", pause_reschedule=True),
            with_pid,
            suspended_reason,
        ),
        (make_current(S.PAUSED), make_run(), None),
    ]
    for current, run, reason in cases:
        decision = run_policy(current, S.CANCELLING, run=run, force=force)
        if reason is None:
            assert decision.status == Status.ACCEPT, current
            assert written(decision).type == S.CANCELLING
            continue
        assert (decision.status, decision.reason) == (Status.REJECT, reason), current
        state = written(decision)
        assert (state.type, state.name, state.message) == (S.CANCELLED, "Cancelled", None)
        assert state.timestamp == NOW
        assert decision.effects.policy is None  # HandleResumingPausedFlows is invalidated


@pytest.mark.parametrize("current_type", [S.PENDING, S.RUNNING, S.CANCELLED])
def test_prevent_pending_transitions_aborts(current_type: StateType) -> None:
    decision = run_policy(current_type, S.PENDING)
    assert_nothing_written(
        decision,
        Status.ABORT,
        f"This run is in a {current_type.value} state and cannot transition to a PENDING state.",
    )


def test_prevent_pending_transitions_from_cancelling_is_rejected_earlier() -> None:
    # EnforceCancellingToCancelledTransition comes first and rejects (keeping CANCELLING).
    decision = run_policy(S.CANCELLING, S.PENDING)
    assert_nothing_written(
        decision,
        Status.REJECT,
        "Cannot transition flows that are cancelling to a state other than Cancelled.",
    )


def test_prevent_pending_transitions_allows_renamed_pending_sub_states() -> None:
    scheduled_time = NOW + dt.timedelta(minutes=1)
    current = make_current(
        S.PENDING, scheduled_time=scheduled_time, deployment_concurrency_lease_id=LEASE_ID
    )
    # Workers send an explicit null lease id and no scheduled time.
    decision = run_policy(
        current, make_proposed(S.PENDING, name="Submitting", deployment_concurrency_lease_id=None)
    )
    assert decision.status == Status.ACCEPT
    state = written(decision)
    assert (state.type, state.name) == (S.PENDING, "Submitting")
    assert state.details["scheduled_time"] == scheduled_time
    assert state.details["deployment_concurrency_lease_id"] == LEASE_ID
    assert decision.effects == Effects()  # PENDING → PENDING neither takes nor gives slots
    # The current state's values win over proposed ones.
    decision = run_policy(
        current,
        make_proposed(
            S.PENDING,
            name="InfrastructurePending",
            scheduled_time=NOW,
            deployment_concurrency_lease_id=OTHER_LEASE_ID,
        ),
    )
    assert written(decision).details["scheduled_time"] == scheduled_time
    assert written(decision).details["deployment_concurrency_lease_id"] == LEASE_ID
    # Submitting → InfrastructurePending is another rename.
    decision = run_policy(
        make_current(S.PENDING, name="Submitting"),
        make_proposed(S.PENDING, name="InfrastructurePending"),
    )
    assert decision.status == Status.ACCEPT
    assert written(decision).details["scheduled_time"] is None


@pytest.mark.parametrize(
    ("current_name", "proposed_name"),
    [("Pending", "Pending"), ("Submitting", "Submitting"), ("Submitting", "Pending")],
)
def test_prevent_pending_transitions_blocks_same_name_and_plain_pending(
    current_name: str, proposed_name: str
) -> None:
    decision = run_policy(
        make_current(S.PENDING, name=current_name), make_proposed(S.PENDING, name=proposed_name)
    )
    assert_nothing_written(
        decision,
        Status.ABORT,
        "This run is in a PENDING state and cannot transition to a PENDING state.",
    )


def test_validate_deployment_concurrency_at_running() -> None:
    pending = make_current(S.PENDING, deployment_concurrency_lease_id=LEASE_ID)
    # No lease: nothing to validate.
    decision = run_policy(S.PENDING, S.RUNNING, slots=make_slots(limit=1, active=1))
    assert decision.status == Status.ACCEPT
    assert written(decision).details["deployment_concurrency_lease_id"] is None
    assert decision.effects == Effects()
    # Lease alive, leasing client: renew it and keep it (even over a proposed one).
    for client in [NEW_CLIENT, OLDEST_LEASING_CLIENT]:
        decision = run_policy(
            pending,
            make_proposed(S.RUNNING, deployment_concurrency_lease_id=OTHER_LEASE_ID),
            slots=make_slots(limit=1, active=1, lease_alive=True),
            client_version=client,
        )
        assert decision.status == Status.ACCEPT
        assert written(decision).details["deployment_concurrency_lease_id"] == LEASE_ID
        assert decision.effects == Effects(renew_lease=True)
    # Lease reaped but a slot is free: take a slot (and a new lease) again.
    decision = run_policy(pending, S.RUNNING, slots=make_slots(limit=2, active=1))
    assert decision.status == Status.ACCEPT
    assert written(decision).type == S.RUNNING
    assert decision.effects == Effects(acquire_slot=True)
    # Lease reaped and no slot: cancelled, and the (lost) slot is given back.
    decision = run_policy(pending, S.RUNNING, slots=make_slots(limit=1, active=1))
    assert decision.status == Status.REJECT
    assert decision.reason == "Deployment concurrency limit reached after lease expiry."
    state = written(decision)
    assert (state.type, state.name, state.message) == (S.CANCELLED, "Cancelled", LOST_SLOT_MESSAGE)
    assert decision.effects == Effects(release_slot=True)
    # No concurrency limit on the deployment: the lease is only carried.
    decision = run_policy(pending, S.RUNNING, slots=NO_LIMIT)
    assert decision.status == Status.ACCEPT
    assert written(decision).details["deployment_concurrency_lease_id"] == LEASE_ID
    assert decision.effects == Effects()


@pytest.mark.parametrize("client", [OLD_CLIENT, (3, 0, 0), None])
def test_validate_deployment_concurrency_at_running_skips_old_clients(
    client: tuple[int, ...] | None,
) -> None:
    # Clients older than 3.4.11 (or that do not say) never renew; their lease is revoked
    # after the transition (RemoveDeploymentConcurrencyLeaseForOldClientVersions).
    decision = run_policy(
        make_current(S.PENDING, deployment_concurrency_lease_id=LEASE_ID),
        S.RUNNING,
        slots=make_slots(limit=1, active=1),
        client_version=client,
    )
    assert decision.status == Status.ACCEPT
    assert written(decision).details["deployment_concurrency_lease_id"] == LEASE_ID
    assert decision.effects == Effects(revoke_lease=True)


def test_validate_deployment_concurrency_at_running_renews_even_when_waiting() -> None:
    decision = run_policy(
        make_current(
            S.PENDING,
            scheduled_time=NOW + dt.timedelta(seconds=60),
            deployment_concurrency_lease_id=LEASE_ID,
        ),
        S.RUNNING,
        slots=make_slots(limit=1, active=1, lease_alive=True),
    )
    assert decision.status == Status.WAIT
    assert decision.effects.renew_lease


def test_secure_flow_concurrency_slots_free_slot() -> None:
    for current in [None, S.SCHEDULED, S.COMPLETED, S.FAILED, S.CRASHED]:
        decision = run_policy(current, S.PENDING, slots=make_slots(limit=2, active=1))
        assert decision.status == Status.ACCEPT, current
        assert written(decision).type == S.PENDING
        assert decision.effects.acquire_slot
        assert not decision.effects.release_slot


def test_secure_flow_concurrency_slots_no_limit_or_no_deployment() -> None:
    decision = run_policy(S.SCHEDULED, S.PENDING, slots=NO_LIMIT)
    assert decision.status == Status.ACCEPT
    assert decision.effects == Effects()
    # A run without deployment has no slots to take (the facts are not even loaded).
    for slots in [None, make_slots(limit=1, active=1), make_slots(exists=False)]:
        decision = run_policy(S.SCHEDULED, S.PENDING, run=make_run(deployment_id=None), slots=slots)
        assert decision.status == Status.ACCEPT
        assert decision.effects == Effects()


@pytest.mark.parametrize("current", [None, S.SCHEDULED, S.FAILED])
def test_secure_flow_concurrency_slots_full_enqueue(current: StateType | None) -> None:
    decision = run_policy(current, S.PENDING, slots=make_slots(limit=1, active=1))
    assert decision.status == Status.REJECT
    assert decision.reason == "Deployment concurrency limit reached."
    state = written(decision)
    assert (state.type, state.name, state.message) == (S.SCHEDULED, "AwaitingConcurrencySlot", None)
    assert CONCURRENCY_SLOT_WAIT_SECONDS == 30
    assert state.details["scheduled_time"] == NOW + dt.timedelta(seconds=30)
    assert not decision.effects.acquire_slot
    assert not decision.effects.release_slot


def test_secure_flow_concurrency_slots_full_cancel_new() -> None:
    decision = run_policy(
        S.SCHEDULED, S.PENDING, slots=make_slots(limit=2, active=2, strategy="CANCEL_NEW")
    )
    assert (decision.status, decision.reason) == (
        Status.REJECT,
        "Deployment concurrency limit reached.",
    )
    state = written(decision)
    assert (state.type, state.name, state.message) == (
        S.CANCELLED,
        "Cancelled",
        "Deployment concurrency limit reached.",
    )
    assert not decision.effects.acquire_slot


def test_secure_flow_concurrency_slots_limit_zero_aborts() -> None:
    decision = run_policy(S.SCHEDULED, S.PENDING, slots=make_slots(limit=0))
    assert_nothing_written(
        decision,
        Status.ABORT,
        "The deployment concurrency limit is 0. The flow will deadlock if submitted again.",
    )


def test_secure_flow_concurrency_slots_deployment_gone_aborts() -> None:
    decision = run_policy(S.SCHEDULED, S.PENDING, slots=make_slots(exists=False))
    assert_nothing_written(decision, Status.ABORT, "Deployment not found.")


def test_secure_flow_concurrency_slots_released_when_a_later_rule_rejects() -> None:
    # PAUSED → PENDING: the slot is taken, then HandleResumingPausedFlows rejects, the rule
    # fizzles and its cleanup gives the slot back: net, no slot.
    decision = run_policy(S.PAUSED, S.PENDING, slots=make_slots(limit=2, active=0))
    assert_nothing_written(decision, Status.REJECT)


@pytest.mark.parametrize("client", [(3, 0, 0), (3, 0, 1), (3, 0, 2), (3, 0, 3)])
def test_secure_flow_concurrency_slots_skipped_for_self_managing_workers(
    client: tuple[int, ...],
) -> None:
    decision = run_policy(
        S.SCHEDULED, S.PENDING, slots=make_slots(limit=1, active=1), client_version=client
    )
    assert decision.status == Status.ACCEPT
    assert decision.effects == Effects()


@pytest.mark.parametrize("to", [S.RUNNING, S.CANCELLING])
def test_remove_deployment_concurrency_lease_for_old_client_versions(to: StateType) -> None:
    pending = make_current(S.PENDING, deployment_concurrency_lease_id=LEASE_ID)
    for client in [OLD_CLIENT, None]:
        decision = run_policy(pending, to, client_version=client)
        assert decision.status == Status.ACCEPT
        assert decision.effects.revoke_lease
        assert not decision.effects.release_slot
    for client in [NEW_CLIENT, OLDEST_LEASING_CLIENT]:
        assert not run_policy(pending, to, client_version=client).effects.revoke_lease
    assert not run_policy(S.PENDING, to, client_version=OLD_CLIENT).effects.revoke_lease
    # Other transitions out of PENDING do not revoke; they release.
    decision = run_policy(pending, S.FAILED, client_version=OLD_CLIENT)
    assert decision.effects == Effects(release_slot=True)


def test_ensure_only_scheduled_flows_marked_late() -> None:
    late = make_proposed(S.SCHEDULED, name="Late")
    for name in ["Scheduled", "AwaitingRetry", "AwaitingConcurrencySlot"]:
        decision = run_policy(make_current(S.SCHEDULED, name=name), late)
        assert decision.status == Status.ACCEPT
        assert (written(decision).type, written(decision).name) == (S.SCHEDULED, "Late")
    decision = run_policy(make_current(S.SCHEDULED, name="Late"), late)
    assert_nothing_written(decision, Status.REJECT, "This flow run is already marked late.")
    for current_type in [t for t in ALL if t not in (S.SCHEDULED, S.CANCELLING)]:
        decision = run_policy(make_current(current_type, data=None), late)
        assert_nothing_written(decision, Status.REJECT, "Only scheduled flows can be marked late.")
    # No current state: nothing to check.
    assert run_policy(None, late).status == Status.ACCEPT


@pytest.mark.parametrize(("name", "verb"), [("Paused", "pause"), ("Suspended", "suspend")])
def test_handle_pausing_flows(name: str, verb: str) -> None:
    reschedule = name == "Suspended"
    pause = make_proposed(S.PAUSED, name=name, pause_key="k2", pause_reschedule=reschedule)
    decision = run_policy(None, pause)
    assert_nothing_written(decision, Status.ABORT, f"Cannot {verb} flows with no state.")
    for current_type in [S.SCHEDULED, S.PENDING, S.PAUSED]:
        decision = run_policy(current_type, pause)
        assert_nothing_written(
            decision, Status.REJECT, f"Cannot {verb} flows that are not currently running."
        )
    fired = make_run(policy=default_policy(pause_keys=["k1", "k2"]))
    decision = run_policy(S.RUNNING, pause, run=fired)
    assert_nothing_written(decision, Status.REJECT, f"This {verb} has already fired.")
    # The key is recorded, and the run's slot is given back while paused.
    run = make_run(policy=default_policy(pause_keys=["k1"]))
    decision = run_policy(S.RUNNING, pause, run=run)
    assert decision.status == Status.ACCEPT
    assert (written(decision).type, written(decision).name) == (S.PAUSED, name)
    assert decision.effects.policy == default_policy(pause_keys=["k1", "k2"])
    assert decision.effects.release_slot


def test_handle_pausing_flows_without_key_records_a_fresh_one() -> None:
    decision = run_policy(S.RUNNING, S.PAUSED)
    assert decision.status == Status.ACCEPT
    assert decision.effects.policy is not None
    (key,) = decision.effects.policy["pause_keys"]
    assert uuid.UUID(key)


def test_handle_pausing_flows_suspend_needs_top_level_deployment_run() -> None:
    suspend = make_proposed(S.PAUSED, name="Suspended", pause_key="k", pause_reschedule=True)
    decision = run_policy(S.RUNNING, suspend, run=make_run(parent_task_run_id=PARENT_TASK_RUN_ID))
    assert_nothing_written(decision, Status.ABORT, "Cannot suspend subflows.")
    decision = run_policy(S.RUNNING, suspend, run=make_run(deployment_id=None))
    assert_nothing_written(decision, Status.ABORT, "Cannot suspend flows without a deployment.")
    # A rescheduling pause under another name uses the verb "pause".
    reschedule = make_proposed(S.PAUSED, pause_key="k", pause_reschedule=True)
    decision = run_policy(S.RUNNING, reschedule, run=make_run(deployment_id=None))
    assert_nothing_written(decision, Status.ABORT, "Cannot pause flows without a deployment.")
    # A blocking pause is fine for subflows and runs without deployment.
    pause = make_proposed(S.PAUSED, pause_key="k")
    run = make_run(deployment_id=None, parent_task_run_id=PARENT_TASK_RUN_ID)
    assert run_policy(S.RUNNING, pause, run=run).status == Status.ACCEPT


def test_handle_resuming_paused_flows_allowed_targets() -> None:
    paused = make_current(S.PAUSED, pause_key="k", pause_timeout=NOW + dt.timedelta(hours=1))
    run = make_run(policy=default_policy(pause_keys=["k"]))
    for to in [S.RUNNING, *TERMINAL]:
        decision = run_policy(paused, to, run=run)
        assert decision.status == Status.ACCEPT, to
        assert decision.effects.policy == default_policy(pause_keys=["k"], resuming=True)
    # A blocking pause left for SCHEDULED starts a new attempt: pause data reset.
    decision = run_policy(paused, S.SCHEDULED, run=run)
    assert decision.status == Status.ACCEPT
    assert decision.effects.policy == default_policy(
        pause_keys=[], resuming=False, retry_type="reschedule"
    )
    # A suspended run resumes through SCHEDULED and keeps its fired keys.
    suspended = make_current(S.PAUSED, name="Suspended", pause_key="k", pause_reschedule=True)
    decision = run_policy(suspended, make_proposed(S.SCHEDULED, name="Resuming"), run=run)
    assert decision.status == Status.ACCEPT
    assert decision.effects.policy == default_policy(pause_keys=["k"], resuming=True)


def test_handle_resuming_paused_flows_rejects_pending() -> None:
    decision = run_policy(S.PAUSED, S.PENDING)
    assert_nothing_written(decision, Status.REJECT)


def test_handle_resuming_paused_flows_reject_reason() -> None:
    decision = run_policy(S.PAUSED, S.PENDING)
    assert decision.reason == (
        "This run cannot transition to the StateType.PENDING state from the StateType.PAUSED state."
    )


def test_handle_resuming_paused_flows_suspended_needs_deployment() -> None:
    suspended = make_current(S.PAUSED, name="Suspended", pause_reschedule=True)
    run = make_run(deployment_id=None)
    for proposed, shown in [
        (make_proposed(S.SCHEDULED, name="Resuming"), "resuming"),
        (make_proposed(S.SCHEDULED), "scheduled"),
        (make_proposed(S.RUNNING), "running"),
        (make_proposed(S.COMPLETED), "completed"),
    ]:
        decision = run_policy(suspended, proposed, run=run)
        assert_nothing_written(
            decision,
            Status.REJECT,
            f"Cannot reschedule a {shown} flow run without a deployment.",
        )
    # A blocking pause does not need one.
    assert run_policy(S.PAUSED, S.RUNNING, run=run).status == Status.ACCEPT


def test_handle_resuming_paused_flows_timeout() -> None:
    for timeout in [NOW - dt.timedelta(seconds=1), (NOW - dt.timedelta(minutes=1)).isoformat()]:
        paused = make_current(S.PAUSED, pause_timeout=timeout)
        for proposed, shown in [
            (make_proposed(S.RUNNING), "running"),
            (make_proposed(S.SCHEDULED, name="Resuming"), "resuming"),
            (make_proposed(S.COMPLETED), "completed"),
        ]:
            decision = run_policy(paused, proposed)
            assert decision.status == Status.REJECT
            assert decision.reason == "The flow run pause has timed out and can no longer resume."
            state = written(decision)
            assert (state.type, state.name, state.message) == (
                S.FAILED,
                "Failed",
                f"The flow was {shown} and never resumed.",
            )
    suspended = make_current(
        S.PAUSED, name="Suspended", pause_reschedule=True, pause_timeout=NOW - dt.timedelta(1)
    )
    decision = run_policy(suspended, make_proposed(S.SCHEDULED, name="Resuming"))
    assert decision.reason == "The flow run pause has timed out and can no longer resume."
    # The verb comes from the proposed state's name.
    decision = run_policy(suspended, make_proposed(S.RUNNING, name="Suspended"))
    assert decision.reason == "The flow run suspend has timed out and can no longer resume."
    assert written(decision).message == "The flow was suspended and never resumed."
    # Not yet timed out.
    paused = make_current(S.PAUSED, pause_timeout=NOW + dt.timedelta(seconds=1))
    assert run_policy(paused, S.RUNNING).status == Status.ACCEPT
    # Cancellation is never blocked by the timeout.
    paused = make_current(S.PAUSED, pause_timeout=NOW - dt.timedelta(hours=1))
    decision = run_policy(paused, S.CANCELLING)
    assert decision.status == Status.ACCEPT
    assert written(decision).type == S.CANCELLING


def test_handle_resuming_paused_flows_timeout_marks_resuming() -> None:
    paused = make_current(S.PAUSED, pause_timeout=NOW - dt.timedelta(seconds=1))
    decision = run_policy(paused, S.RUNNING)
    assert written(decision).type == S.FAILED
    assert decision.effects.policy == default_policy(resuming=True)


def test_handle_resuming_paused_flows_cancelling_marks_resuming() -> None:
    decision = run_policy(S.PAUSED, S.CANCELLING)
    assert decision.status == Status.ACCEPT
    assert decision.effects.policy == default_policy(resuming=True)


def test_copy_scheduled_time() -> None:
    scheduled_time = NOW - dt.timedelta(seconds=5)
    current = make_current(S.SCHEDULED, scheduled_time=scheduled_time)
    decision = run_policy(current, S.PENDING)
    assert decision.status == Status.ACCEPT
    assert written(decision).details["scheduled_time"] == scheduled_time
    # A proposed scheduled time wins.
    proposed_time = NOW + dt.timedelta(hours=1)
    decision = run_policy(current, make_proposed(S.PENDING, scheduled_time=proposed_time))
    assert written(decision).details["scheduled_time"] == proposed_time
    # Only SCHEDULED → PENDING copies.
    decision = run_policy(current, S.RUNNING)
    assert "scheduled_time" not in written(decision).details


@pytest.mark.parametrize(
    ("offset_seconds", "delay"),
    [
        (600, 600),
        (600.4, 600),
        (600.6, 601),
        (1.5, 1),  # floor(1.5) + round(0.5): round half to even
        (2.5, 2),
        (1.6, 2),
        (0.6, 1),
        (0.5, None),
        (0.4, None),
        (0, None),
        (-0.3, None),
        (-5, None),
    ],
)
@pytest.mark.parametrize("current_type", [S.SCHEDULED, S.PENDING])
def test_wait_for_scheduled_time(
    current_type: StateType, offset_seconds: float, delay: int | None
) -> None:
    scheduled_time = NOW + dt.timedelta(seconds=offset_seconds)
    for value in [scheduled_time, scheduled_time.isoformat()]:
        decision = run_policy(make_current(current_type, scheduled_time=value), S.RUNNING)
        if delay is None:
            assert decision.status == Status.ACCEPT
            continue
        assert_nothing_written(decision, Status.WAIT, "Scheduled time is in the future")
        assert decision.delay_seconds == delay


def test_wait_for_scheduled_time_only_before_running() -> None:
    future = make_current(S.SCHEDULED, scheduled_time=NOW + dt.timedelta(hours=1))
    for to in [S.PENDING, S.COMPLETED, S.FAILED, S.CANCELLED]:
        assert run_policy(future, to).status == Status.ACCEPT
    # Under force there is no wait.
    assert run_policy(future, S.RUNNING, force=True).status == Status.ACCEPT


def test_retry_failed_flows() -> None:
    policy = default_policy(retries=2, retry_delay=10, pause_keys=["k"], resuming=True)
    running = make_current(S.RUNNING, deployment_concurrency_lease_id=LEASE_ID)
    failed = make_proposed(S.FAILED, message="boom", data=PERSISTED)
    for run_count in [1, 2]:
        decision = run_policy(running, failed, run=make_run(run_count=run_count, policy=policy))
        assert (decision.status, decision.reason) == (Status.REJECT, "Retrying")
        state = written(decision)
        assert (state.type, state.name) == (S.SCHEDULED, "AwaitingRetry")
        assert (state.message, state.data, state.timestamp) == ("boom", PERSISTED, NOW)
        assert state.details["scheduled_time"] == NOW + dt.timedelta(seconds=10)
        assert state.details["deployment_concurrency_lease_id"] == LEASE_ID
        assert decision.effects.policy == default_policy(
            retries=2, retry_delay=10, pause_keys=[], resuming=False, retry_type="in_process"
        )
        assert not decision.effects.acquire_slot
        assert not decision.effects.release_slot  # the in-process retry keeps its slot
    # No retry delay: retry now.
    run = make_run(run_count=1, policy=default_policy(retries=1))
    decision = run_policy(S.RUNNING, S.FAILED, run=run)
    assert written(decision).details["scheduled_time"] == NOW
    assert written(decision).details["deployment_concurrency_lease_id"] is None


def test_retry_failed_flows_exhausted() -> None:
    for policy, run_count in [
        (default_policy(retries=2, retry_type="in_process"), 3),
        (default_policy(retries=0, retry_type="in_process"), 1),
        (default_policy(retries=None, retry_type="reschedule"), 1),
    ]:
        decision = run_policy(S.RUNNING, S.FAILED, run=make_run(run_count=run_count, policy=policy))
        assert decision.status == Status.ACCEPT
        assert written(decision).type == S.FAILED
        assert decision.effects.policy == {**policy, "retry_type": None}
        assert decision.effects.release_slot
    # Only RUNNING → FAILED retries.
    run = make_run(run_count=1, policy=default_policy(retries=3))
    for current in [S.PENDING, S.SCHEDULED]:
        decision = run_policy(current, S.FAILED, run=run)
        assert decision.status == Status.ACCEPT
        assert decision.effects.policy is None


def test_retry_failed_flows_keeps_the_deployment_slot() -> None:
    """ReleaseFlowConcurrencySlots skips a REJECT into "AwaitingRetry": the in-process retry
    keeps renewing its lease through the retry delay."""
    run = make_run(run_count=1, policy=default_policy(retries=1))
    decision = run_policy(
        make_current(S.RUNNING, deployment_concurrency_lease_id=LEASE_ID), S.FAILED, run=run
    )
    assert written(decision).name == "AwaitingRetry"
    assert not decision.effects.release_slot


def test_release_flow_concurrency_slots() -> None:
    for force in [False, True]:
        for current in ACTIVE:
            for to in ALL:
                decision = run_policy(current, to, force=force)
                if decision.state is None:
                    assert not decision.effects.release_slot
                    continue
                leaves = written(decision).type not in ACTIVE
                assert decision.effects.release_slot is leaves, (current, to, force)
        for inactive in [None, S.SCHEDULED, S.PAUSED, *TERMINAL]:
            for to in ALL:
                assert not run_policy(inactive, to, force=force).effects.release_slot
    # An AwaitingRetry state proposed directly (leaving the process) does give the slot back.
    decision = run_policy(S.RUNNING, make_proposed(S.SCHEDULED, name="AwaitingRetry"))
    assert decision.status == Status.ACCEPT
    assert decision.effects.release_slot
    # Forced from RUNNING to PENDING keeps it.
    assert not run_policy(S.RUNNING, S.PENDING, force=True).effects.release_slot


def test_release_flow_concurrency_slots_needs_a_deployment() -> None:
    decision = run_policy(S.RUNNING, S.COMPLETED, run=make_run(deployment_id=None))
    assert decision.status == Status.ACCEPT
    assert not decision.effects.release_slot


def test_prevent_result_data_loss_when_forced() -> None:
    completed = make_current(S.COMPLETED, data=PERSISTED)
    for data in [None, UNPERSISTED]:
        decision = run_policy(completed, make_proposed(S.COMPLETED, data=data), force=True)
        assert_nothing_written(decision, Status.REJECT, OVERWRITE_REASON)
    decision = run_policy(completed, make_proposed(S.COMPLETED, data=PERSISTED), force=True)
    assert decision.status == Status.ACCEPT
    # Forcing may still leave COMPLETED for anything else.
    for to in [S.SCHEDULED, S.RUNNING, S.FAILED, S.CRASHED, S.PAUSED, S.CANCELLING]:
        assert run_policy(completed, to, force=True).status == Status.ACCEPT
    # An unpersisted COMPLETED may be overwritten.
    decision = run_policy(make_current(S.COMPLETED, data=UNPERSISTED), S.COMPLETED, force=True)
    assert decision.status == Status.ACCEPT


def test_prevent_result_data_loss_empty_dict_data_when_forced() -> None:
    decision = run_policy(make_current(S.COMPLETED, data={}), S.COMPLETED, force=True)
    assert decision.status == Status.ACCEPT
