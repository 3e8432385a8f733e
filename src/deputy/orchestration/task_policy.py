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

As for flows (``work.py``), rules apply to the (from, to) state types of the transition as
proposed; once a rule rejects into another type, waits or aborts, the rules after it "fizzle"
(are skipped) and what the earlier ones set up is undone (a reset run count, a taken tag
slot). The facts the rules read are in ``task_context.py``.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import random
from collections.abc import Callable
from typing import Any

from deputy.orchestration.flow_rules import prevent_pending_transitions
from deputy.orchestration.states import StateDraft, holds_stored_result, seconds_until_scheduled
from deputy.orchestration.task_context import TaskDecision, TaskEffects, TaskTransition, TaskWork
from deputy.orchestration.work import Entry, apply_rules
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


# --- the rules --------------------------------------------------------------------------------


def retrieve_cached_state(work: TaskWork) -> None:
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


def handle_terminal_state_transitions(work: TaskWork) -> None:
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


def prevent_running_tasks_from_stopped_flows(work: TaskWork) -> None:
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


def secure_tag_concurrency_slots(work: TaskWork) -> None:
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


def copy_scheduled_time(work: TaskWork) -> None:
    proposed = work.proposed
    if not proposed.details.get("scheduled_time"):
        proposed.details["scheduled_time"] = work.current.details.get("scheduled_time")


def copy_task_parameters_id(work: TaskWork) -> None:
    proposed = work.proposed
    if not proposed.details.get("task_parameters_id"):
        proposed.details["task_parameters_id"] = work.current.details.get("task_parameters_id")


def wait_for_scheduled_time(work: TaskWork) -> None:
    """Runs start no earlier than scheduled, by the server's clock."""
    seconds = seconds_until_scheduled(work.current.details, work.now)
    if seconds > 0:
        work.wait(seconds, "Scheduled time is in the future")


def retry_failed_tasks(work: TaskWork) -> None:
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


def rename_reruns(work: TaskWork) -> None:
    """Running again is "Rerunning", or "Retrying" after "AwaitingRetry"."""
    current = work.transition.current
    if current is None or work.run_count <= 0:
        return
    work.proposed.name = "Retrying" if current.name == "AwaitingRetry" else "Rerunning"


def check_cache_key_length(work: TaskWork) -> None:
    """Prefect answers REJECT for an over-long cache key, yet writes the state as proposed."""
    key = work.proposed.details.get("cache_key")
    if key and len(key) > MAX_CACHE_KEY_LENGTH:
        work.reject(
            work.proposed,
            f"Cache key exceeded maximum allowed length of {MAX_CACHE_KEY_LENGTH} characters.",
        )


RUNNING_ONLY: frozenset[StateType | None] = frozenset({S.RUNNING})

CORE_POLICY: tuple[Entry[TaskWork], ...] = (
    Entry(retrieve_cached_state, ANY, RUNNING_ONLY),
    Entry(handle_terminal_state_transitions, TERMINAL, TYPES),
    Entry(prevent_running_tasks_from_stopped_flows, ANY, RUNNING_ONLY),
    Entry(secure_tag_concurrency_slots, ANY, RUNNING_ONLY),
    Entry(copy_scheduled_time, frozenset({S.SCHEDULED}), frozenset({S.PENDING})),
    Entry(wait_for_scheduled_time, frozenset({S.SCHEDULED, S.PENDING}), RUNNING_ONLY),
    Entry(retry_failed_tasks, RUNNING_ONLY, frozenset({S.FAILED})),
    Entry(rename_reruns, ANY, RUNNING_ONLY),
    Entry(check_cache_key_length, ANY, frozenset({S.COMPLETED})),
)

BACKGROUND_POLICY: tuple[Entry[TaskWork], ...] = (
    Entry(
        prevent_pending_transitions,
        frozenset({S.PENDING, S.CANCELLING, S.RUNNING, S.CANCELLED}),
        frozenset({S.PENDING}),
    ),
    Entry(retrieve_cached_state, ANY, RUNNING_ONLY),
    Entry(handle_terminal_state_transitions, TERMINAL, TYPES),
    Entry(copy_scheduled_time, frozenset({S.SCHEDULED}), frozenset({S.PENDING})),
    Entry(
        copy_task_parameters_id,
        frozenset({S.SCHEDULED, S.PENDING}),
        frozenset({S.PENDING, S.RUNNING}),
    ),
    Entry(wait_for_scheduled_time, frozenset({S.SCHEDULED, S.PENDING}), RUNNING_ONLY),
    Entry(retry_failed_tasks, RUNNING_ONLY, frozenset({S.FAILED})),
    Entry(rename_reruns, ANY, RUNNING_ONLY),
    Entry(check_cache_key_length, ANY, frozenset({S.COMPLETED})),
)

POLICIES: dict[TaskPolicy, tuple[Entry[TaskWork], ...]] = {
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
    work = TaskWork(
        transition=transition,
        state=transition.proposed.copy(),
        run_count=transition.run.run_count,
    )
    intended = transition.proposed.type
    apply_rules(POLICIES[policy], work)
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
