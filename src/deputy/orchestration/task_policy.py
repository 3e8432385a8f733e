"""Prefect's task-run orchestration rules as small pure functions, applied in Prefect's order.

``decide_task(transition, policy)`` takes plain data (the task run, its current state, the
proposed state, and the facts the service loaded: the enclosing flow run, a cached state,
the tag concurrency limits) and returns what to do, with the side effects the service must
apply in the same transaction (take or give back tag slots, cache the state, reset or record
run counts). Nothing here touches the database or the clock; randomness (retry jitter, the
wait before retrying a full tag limit) comes from ``transition.draw``.

Three policies, chosen as Prefect chooses them:

- ``CORE`` for ``set_state`` (Prefect's ``CoreTaskPolicy``);
- ``BACKGROUND`` whenever the proposed state is ``deferred`` (``BackgroundTaskPolicy``),
  forced or not;
- ``MINIMAL`` for ``force=true`` and a new run's first state (``MinimalTaskPolicy``): no
  rule, but tag slots are still given back on leaving RUNNING.

As for flows, rules apply to the (from, to) state types of the transition as proposed; once
a rule rejects into another type, waits or aborts, the rules after it "fizzle" (are skipped)
and what the earlier ones set up is undone (a reset run count, a taken tag slot).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deputy.orchestration.policy import (
    CurrentState,
    Decision,
    StateDraft,
    Status,
    holds_stored_result,
    seconds_until_scheduled,
)
from deputy.schemas.core import TERMINAL_STATE_TYPES, StateType
from deputy.schemas.task_runs import MAX_CACHE_KEY_LENGTH

S = StateType
#: Every state type, and "no state yet".
ANY: frozenset[StateType | None] = frozenset({*StateType, None})
TYPES: frozenset[StateType | None] = frozenset(StateType)
TERMINAL: frozenset[StateType | None] = frozenset(TERMINAL_STATE_TYPES)

#: Longest wait before a task retries a full tag limit (Prefect's
#: ``server.tasks.tag_concurrency_slot_wait_seconds``).
TAG_SLOT_WAIT_SECONDS = 10.0
#: How long a tag slot taken by set_state is held: until the run leaves RUNNING (Prefect's
#: ``V1_LEASE_TTL``, about a hundred years).
TAG_LEASE_SECONDS = 100 * 365 * 24 * 3600

FLOW_MUST_RUN = "The enclosing flow must be running to begin task execution."


class TaskPolicy(enum.StrEnum):
    CORE = "core"
    BACKGROUND = "background"
    MINIMAL = "minimal"


def policy_for(details: dict[str, Any], *, force: bool) -> TaskPolicy:
    """Prefect's choice: deferred states always use the background policy."""
    if details.get("deferred"):
        return TaskPolicy.BACKGROUND
    return TaskPolicy.MINIMAL if force else TaskPolicy.CORE


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


# --- the working context passed between rules ----------------------------------------------


@dataclass
class _Work:
    transition: TaskTransition
    state: StateDraft | None
    run_count: int
    status: Status = Status.ACCEPT
    reason: str | None = None
    delay_seconds: int | None = None
    keep_current: bool = False
    terminal_reset: bool = False
    acquire_tag_slots: tuple[uuid.UUID, ...] = ()

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
        return self.state is None


Rule = Callable[[_Work], None]


@dataclass(frozen=True)
class _Entry:
    rule: Rule
    from_types: frozenset[StateType | None]
    to_types: frozenset[StateType | None]


# --- the rules --------------------------------------------------------------------------------


def retrieve_cached_state(work: _Work) -> None:
    """A cached COMPLETED state for the proposed cache key is used instead of running."""
    details = work.proposed.details
    cached = work.transition.cached
    if not details.get("cache_key") or details.get("refresh_cache") or cached is None:
        return
    work.reject(
        StateDraft(
            type=cached.type,
            name="Cached",
            timestamp=work.now,
            message=cached.message,
            data=cached.data,
            details=dict(cached.details),
        ),
        "Retrieved state from cache",
    )


def handle_terminal_state_transitions(work: _Work) -> None:
    """A final task run never becomes CANCELLING/PAUSED/CRASHED nor leaves a COMPLETED state
    with a stored result; leaving a final state otherwise starts the retries over, and
    running again because the flow retried is named "Retrying"."""
    proposed = work.proposed
    current = work.current
    if proposed.type in (S.CANCELLING, S.PAUSED, S.CRASHED):
        work.abort(f"Run is already {current.type.value}.")
        return
    if current.type == S.COMPLETED and holds_stored_result(current.data):
        work.reject(None, "This run is already completed.")
        return
    if proposed.type not in TERMINAL_STATE_TYPES:
        work.run_count = 0
        work.terminal_reset = True
    flow_run = work.transition.flow_run
    flow_retrying = (
        flow_run is not None and work.transition.run.flow_run_run_count < flow_run.run_count
    )
    if proposed.type == S.RUNNING and flow_retrying:
        proposed.name = "Retrying"


def prevent_running_tasks_from_stopped_flows(work: _Work) -> None:
    """Tasks run only while their flow runs; in a paused flow they pause as "NotReady"."""
    flow_run = work.transition.flow_run
    if flow_run is None:
        return
    if flow_run.state_type == S.PAUSED:
        details = flow_run.state_details
        work.reject(
            StateDraft.of(
                S.PAUSED,
                work.now,
                name="NotReady",
                details={
                    "pause_timeout": details.get("pause_timeout") or None,
                    "pause_reschedule": bool(details.get("pause_reschedule")),
                    "pause_key": None,
                },
            ),
            f"The flow is paused, new tasks can execute after resuming flow run: {flow_run.id}.",
        )
    elif flow_run.state_type != S.RUNNING:
        work.abort(FLOW_MUST_RUN)


def secure_tag_concurrency_slots(work: _Work) -> None:
    """Entering RUNNING takes a slot of every active ``tag:<name>`` limit on the run's tags,
    or waits (a random while, about the fullest limit's average occupancy) for all of them.

    A limit of 0 aborts, unless another limit is full, in which case the run waits: Prefect
    checks the zero limits first, then still tries the others and answers for those.
    """
    active = [limit for limit in work.transition.tag_limits if limit.active]
    zero = [limit for limit in active if limit.limit == 0]
    positive = [limit for limit in active if limit.limit > 0]
    if zero:
        work.abort(
            f'The concurrency limit on tag "{zero[-1].tag}" is 0 and will deadlock if the '
            "task tries to run again."
        )
    if not positive:
        return
    if all(limit.has_free_slot for limit in positive):
        if not zero:
            work.acquire_tag_slots = tuple(limit.id for limit in positive)
        return
    fullest = max(positive, key=lambda limit: limit.active_slots / limit.limit)
    average = min(
        fullest.avg_slot_occupancy_seconds or TAG_SLOT_WAIT_SECONDS, TAG_SLOT_WAIT_SECONDS
    )
    delay = clamped_poisson_interval(average, draw=work.transition.draw)
    work.wait(
        round(delay),
        "Concurrency limit reached for tags: " + ", ".join(limit.tag for limit in positive),
    )


def prevent_pending_transitions(work: _Work) -> None:
    """Background tasks are claimed once: only a renamed PENDING sub-state follows PENDING."""
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


def copy_scheduled_time(work: _Work) -> None:
    proposed = work.proposed
    if not proposed.details.get("scheduled_time"):
        proposed.details["scheduled_time"] = work.current.details.get("scheduled_time")


def copy_task_parameters_id(work: _Work) -> None:
    proposed = work.proposed
    if not proposed.details.get("task_parameters_id"):
        proposed.details["task_parameters_id"] = work.current.details.get("task_parameters_id")


def wait_for_scheduled_time(work: _Work) -> None:
    """Runs start no earlier than scheduled, by the server's clock."""
    seconds = seconds_until_scheduled(work.current.details, work.now)
    if seconds > 0:
        work.wait(seconds, "Scheduled time is in the future")


def retry_failed_tasks(work: _Work) -> None:
    """A failed run with retries left goes back to SCHEDULED "AwaitingRetry", after the
    retry delay for this attempt (jittered when the policy says so), unless the failure
    says it is not retriable."""
    proposed = work.proposed
    policy = work.transition.run.empirical_policy
    seconds = retry_delay_seconds(policy, work.run_count, work.transition.draw)
    if proposed.details.get("retriable") is False:
        return
    retries = policy.get("retries")
    if retries is not None and work.run_count <= retries:
        work.reject(
            StateDraft.of(
                S.SCHEDULED,
                work.now,
                name="AwaitingRetry",
                message=proposed.message,
                data=proposed.data,
                details={"scheduled_time": work.now + dt.timedelta(seconds=seconds)},
            ),
            "Retrying",
        )


def rename_reruns(work: _Work) -> None:
    """Running again is "Rerunning", or "Retrying" after "AwaitingRetry"."""
    current = work.transition.current
    if current is None or work.run_count <= 0:
        return
    work.proposed.name = "Retrying" if current.name == "AwaitingRetry" else "Rerunning"


def check_cache_key_length(work: _Work) -> None:
    """Prefect answers REJECT for an over-long cache key, yet writes the state as proposed."""
    key = work.proposed.details.get("cache_key")
    if key and len(key) > MAX_CACHE_KEY_LENGTH:
        work.reject(
            work.proposed,
            f"Cache key exceeded maximum allowed length of {MAX_CACHE_KEY_LENGTH} characters.",
        )


RUNNING_ONLY: frozenset[StateType | None] = frozenset({S.RUNNING})

CORE_POLICY: tuple[_Entry, ...] = (
    _Entry(retrieve_cached_state, ANY, RUNNING_ONLY),
    _Entry(handle_terminal_state_transitions, TERMINAL, TYPES),
    _Entry(prevent_running_tasks_from_stopped_flows, ANY, RUNNING_ONLY),
    _Entry(secure_tag_concurrency_slots, ANY, RUNNING_ONLY),
    _Entry(copy_scheduled_time, frozenset({S.SCHEDULED}), frozenset({S.PENDING})),
    _Entry(wait_for_scheduled_time, frozenset({S.SCHEDULED, S.PENDING}), RUNNING_ONLY),
    _Entry(retry_failed_tasks, RUNNING_ONLY, frozenset({S.FAILED})),
    _Entry(rename_reruns, ANY, RUNNING_ONLY),
    _Entry(check_cache_key_length, ANY, frozenset({S.COMPLETED})),
)

BACKGROUND_POLICY: tuple[_Entry, ...] = (
    _Entry(
        prevent_pending_transitions,
        frozenset({S.PENDING, S.CANCELLING, S.RUNNING, S.CANCELLED}),
        frozenset({S.PENDING}),
    ),
    _Entry(retrieve_cached_state, ANY, RUNNING_ONLY),
    _Entry(handle_terminal_state_transitions, TERMINAL, TYPES),
    _Entry(copy_scheduled_time, frozenset({S.SCHEDULED}), frozenset({S.PENDING})),
    _Entry(
        copy_task_parameters_id,
        frozenset({S.SCHEDULED, S.PENDING}),
        frozenset({S.PENDING, S.RUNNING}),
    ),
    _Entry(wait_for_scheduled_time, frozenset({S.SCHEDULED, S.PENDING}), RUNNING_ONLY),
    _Entry(retry_failed_tasks, RUNNING_ONLY, frozenset({S.FAILED})),
    _Entry(rename_reruns, ANY, RUNNING_ONLY),
    _Entry(check_cache_key_length, ANY, frozenset({S.COMPLETED})),
)

POLICIES: dict[TaskPolicy, tuple[_Entry, ...]] = {
    TaskPolicy.CORE: CORE_POLICY,
    TaskPolicy.BACKGROUND: BACKGROUND_POLICY,
    TaskPolicy.MINIMAL: (),
}


def needs_cached_state(policy: TaskPolicy, proposed: StateType, details: dict[str, Any]) -> bool:
    """Whether the service must look the proposed cache key up."""
    return (
        policy != TaskPolicy.MINIMAL
        and proposed == S.RUNNING
        and bool(details.get("cache_key"))
        and not details.get("refresh_cache")
    )


def needs_tag_limits(policy: TaskPolicy, proposed: StateType, tags: tuple[str, ...]) -> bool:
    """Whether the service must load the ``tag:<name>`` limits before deciding."""
    return policy == TaskPolicy.CORE and proposed == S.RUNNING and bool(tags)


def decide_task(transition: TaskTransition, policy: TaskPolicy) -> TaskDecision:
    """Run ``policy`` over the transition and return the decision."""
    proposed = transition.proposed
    draft = StateDraft(
        type=proposed.type,
        name=proposed.name,
        timestamp=proposed.timestamp,
        message=proposed.message,
        data=proposed.data,
        details=dict(proposed.details),
    )
    work = _Work(transition=transition, state=draft, run_count=transition.run.run_count)
    current_type = transition.current.type if transition.current is not None else None
    intended = proposed.type
    for entry in POLICIES[policy]:
        if work.stopped or work.proposed.type != intended:
            break  # later rules fizzle once the target type changed or nothing is written
        if current_type in entry.from_types and intended in entry.to_types:
            entry.rule(work)
    written = work.state
    effects = TaskEffects()
    if written is not None:
        kept = written.type == intended  # the rules that fired did not fizzle
        if work.terminal_reset and kept:
            effects.run_count = work.run_count
        if work.acquire_tag_slots and kept:
            effects.acquire_tag_slots = work.acquire_tag_slots
        flow_run = transition.flow_run
        if policy != TaskPolicy.MINIMAL and kept:
            if intended == S.RUNNING and flow_run is not None:
                effects.flow_run_run_count = flow_run.run_count
            if intended == S.COMPLETED and written.details.get("cache_key"):
                effects.cache_state = True
        effects.release_tag_slots = written.type not in (S.RUNNING, S.CANCELLING)
    return TaskDecision(
        status=work.status,
        state=written,
        reason=work.reason,
        delay_seconds=work.delay_seconds,
        task_effects=effects,
    )


# --- helpers ----------------------------------------------------------------------------------


def retry_delay_seconds(policy: dict[str, Any], run_count: int, draw: Callable[[], float]) -> float:
    """The wait before retry number ``run_count``: the policy's delay (the attempt's entry of
    a list, the last one once past its end), jittered by ``retry_jitter_factor``."""
    delay = policy.get("retry_delay")
    if isinstance(delay, list):
        # Prefect indexes with min(run_count - 1, len - 1): a run count of 0 takes the last.
        base = delay[min(run_count - 1, len(delay) - 1)] if delay else 0
    else:
        base = delay or 0
    jitter = policy.get("retry_jitter_factor")
    if jitter and base > 0:
        return clamped_poisson_interval(float(base), jitter, draw=draw)
    return float(base)


def clamped_poisson_interval(
    average: float, clamping_factor: float = 0.3, *, draw: Callable[[], float] = random.random
) -> float:
    """A random interval around ``average`` (an exponential draw clamped to
    ``[c * average, (1 + clamping_factor) * average]`` so the mean stays about ``average``),
    as Prefect spreads retries. ``draw`` returns a uniform number in [0, 1)."""
    if average <= 0:
        return 0.0
    upper_multiple = 1 + clamping_factor
    upper = average * upper_multiple
    lower = max(0.0, average * _lower_clamp_multiple(upper_multiple))
    upper_rv = 1 - math.exp(-upper / average)
    lower_rv = 1 - math.exp(-lower / average)
    uniform = lower_rv + (upper_rv - lower_rv) * draw()
    return -math.log(max(1 - uniform, 1e-10)) * average


def _lower_clamp_multiple(k: float) -> float:
    if k >= 50:
        return 0.0
    return math.log(max(2**k / (2**k - 1), 1e-10), 2)
