"""Prefect's flow-run orchestration: ``decide(transition)`` runs the rules in Prefect's order.

``decide`` takes plain data (the run, its current state, the proposed state, and the
deployment-concurrency facts the service loaded; ``flow_context.py``) and returns what to do:
accept, reject (into another state or keeping the current one), wait, or abort, plus the side
effects the service must apply (take or give back a concurrency slot, renew a lease, policy
updates). Nothing here touches the database or the clock: ``now`` comes in with the
transition. The rules and their order are in ``flow_rules.py``; ``force=True`` uses the
minimal policy instead.
"""

from __future__ import annotations

from deputy.orchestration.flow_context import ACTIVE_SLOT_TYPES, FlowWork, Transition
from deputy.orchestration.flow_rules import CORE_POLICY, MINIMAL_POLICY
from deputy.orchestration.states import Decision, Effects, Status
from deputy.orchestration.work import apply_rules
from deputy.schemas.core import StateType

S = StateType


def needs_slots(current: StateType | None, proposed: StateType, force: bool) -> bool:
    """Whether the service must load deployment-concurrency facts for this transition."""
    if force:
        return False
    entering_pending = proposed == S.PENDING and current not in ACTIVE_SLOT_TYPES
    starting = current == S.PENDING and proposed == S.RUNNING
    return entering_pending or starting


def decide(transition: Transition, *, force: bool = False) -> Decision:
    """Run the policy over the transition and return the decision."""
    work = FlowWork(transition=transition, state=transition.proposed.copy())
    current_type = transition.current.type if transition.current is not None else None
    proposed_type = transition.proposed.type
    apply_rules(MINIMAL_POLICY if force else CORE_POLICY, work)
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


def _release_when_leaving_active(work: FlowWork, current_type: StateType | None) -> None:
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
