"""Task runs: Prefect's task rules without a database, then the endpoints through the API."""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Any

import httpx
import pytest

from databases import counted_statements
from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.orchestration.states import CurrentState, StateDraft, Status, default_name
from deputy.orchestration.task_context import (
    CachedState,
    FlowRunFacts,
    TagLimit,
    TaskDecision,
    TaskRunView,
    TaskTransition,
)
from deputy.orchestration.task_policy import (
    TaskPolicy,
    clamped_poisson_interval,
    decide_task,
    needs_cached_state,
    needs_tag_limits,
    policy_for,
    retry_delay_seconds,
)
from deputy.schemas.core import TERMINAL_STATE_TYPES, StateType
from deputy.services.common import now
from deputy.services.task_runs.orchestrate import mirror_subflow_state
from factories import create_deployment, create_flow

S = StateType
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
RUNNING_FLOW = FlowRunFacts(id=uuid.uuid4(), run_count=1, state_type=S.RUNNING)
STORED = {"type": "reference", "storage_key": "k"}


# --- the rules, without a database ------------------------------------------------------------


def run_view(**fields: Any) -> TaskRunView:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "flow_run_id": RUNNING_FLOW.id,
        "tags": (),
        "run_count": 0,
        "flow_run_run_count": 1,
        "empirical_policy": {},
        **fields,
    }
    return TaskRunView(**values)


def current_state(state_type: StateType, name: str | None = None, **fields: Any) -> CurrentState:
    return CurrentState(
        type=state_type,
        name=name or default_name(state_type),
        timestamp=NOW - dt.timedelta(minutes=1),
        data=fields.get("data"),
        details=fields.get("details", {}),
    )


def decide(
    current: CurrentState | None,
    proposed: StateType,
    *,
    policy: TaskPolicy = TaskPolicy.CORE,
    name: str | None = None,
    details: dict[str, Any] | None = None,
    run: TaskRunView | None = None,
    flow_run: FlowRunFacts | None = RUNNING_FLOW,
    **facts: Any,
) -> TaskDecision:
    draft = StateDraft.of(proposed, NOW, name=name, details=dict(details or {}), message="m")
    transition = TaskTransition(
        run=run or run_view(),
        current=current,
        proposed=draft,
        now=NOW,
        flow_run=flow_run,
        **facts,
    )
    return decide_task(transition, policy)


def outcome(decision: TaskDecision) -> tuple[str, str | None, str | None]:
    state = decision.state
    return (
        decision.status.value,
        state.type.value if state else None,
        state.name if state else None,
    )


def test_policy_is_background_for_deferred_states_forced_or_not() -> None:
    assert policy_for({"deferred": True}, force=True) == TaskPolicy.BACKGROUND
    assert policy_for({"deferred": False}, force=True) == TaskPolicy.MINIMAL
    assert policy_for({}, force=False) == TaskPolicy.CORE


def test_cached_state_is_used_instead_of_running() -> None:
    cached = CachedState(type=S.COMPLETED, message="done", data=STORED, details={"cache_key": "k"})
    decision = decide(
        current_state(S.PENDING), S.RUNNING, details={"cache_key": "k"}, cached=cached
    )
    assert outcome(decision) == ("REJECT", "COMPLETED", "Cached")
    assert decision.reason == "Retrieved state from cache"
    assert decision.state is not None
    assert decision.state.data == STORED
    assert decision.task_effects.flow_run_run_count is None  # the run did not run
    assert decision.task_effects.release_tag_slots


def test_refresh_cache_ignores_the_cached_state() -> None:
    assert not needs_cached_state(
        TaskPolicy.CORE, S.RUNNING, {"cache_key": "k", "refresh_cache": True}
    )
    assert not needs_cached_state(TaskPolicy.MINIMAL, S.RUNNING, {"cache_key": "k"})
    cached = CachedState(type=S.COMPLETED, message=None, data=None, details={})
    details = {"cache_key": "k", "refresh_cache": True}
    decision = decide(current_state(S.PENDING), S.RUNNING, details=details, cached=cached)
    assert outcome(decision) == ("ACCEPT", "RUNNING", "Running")


@pytest.mark.parametrize("final", sorted(TERMINAL_STATE_TYPES))
@pytest.mark.parametrize("proposed", [S.CANCELLING, S.PAUSED, S.CRASHED])
def test_final_run_cannot_become_cancelling_paused_or_crashed(
    final: StateType, proposed: StateType
) -> None:
    decision = decide(current_state(final), proposed)
    assert outcome(decision) == ("ABORT", None, None)
    assert decision.reason == f"Run is already {final.value}."


def test_completed_run_with_a_stored_result_is_not_left() -> None:
    for proposed in (S.RUNNING, S.FAILED, S.COMPLETED, S.SCHEDULED):
        decision = decide(current_state(S.COMPLETED, data=STORED), proposed)
        assert outcome(decision) == ("REJECT", None, None)
        assert decision.reason == "This run is already completed."


def test_leaving_a_final_state_starts_the_retries_over() -> None:
    run = run_view(run_count=3)
    unpersisted = current_state(S.COMPLETED, data={"type": "unpersisted"})
    rerun = decide(unpersisted, S.RUNNING, run=run)
    assert outcome(rerun) == ("ACCEPT", "RUNNING", "Running")  # not "Rerunning": count reset
    assert rerun.task_effects.run_count == 0
    again = decide(current_state(S.FAILED), S.COMPLETED, run=run)
    assert again.task_effects.run_count is None  # final to final keeps the count


def test_reset_run_count_is_undone_when_the_transition_does_not_happen() -> None:
    stopped_flow = FlowRunFacts(id=uuid.uuid4(), run_count=1, state_type=S.COMPLETED)
    decision = decide(
        current_state(S.FAILED), S.RUNNING, run=run_view(run_count=2), flow_run=stopped_flow
    )
    assert outcome(decision) == ("ABORT", None, None)
    assert decision.task_effects.run_count is None


def test_running_again_after_the_flow_retried_is_named_retrying() -> None:
    flow_retried = FlowRunFacts(id=uuid.uuid4(), run_count=2, state_type=S.RUNNING)
    run = run_view(flow_run_run_count=1, run_count=1)
    decision = decide(current_state(S.FAILED), S.RUNNING, run=run, flow_run=flow_retried)
    assert outcome(decision) == ("ACCEPT", "RUNNING", "Retrying")
    assert decision.task_effects.flow_run_run_count == 2


@pytest.mark.parametrize("flow_state", [None, S.PENDING, S.SCHEDULED, S.COMPLETED, S.CANCELLING])
def test_tasks_of_a_flow_that_is_not_running_do_not_run(flow_state: StateType | None) -> None:
    flow_run = FlowRunFacts(id=uuid.uuid4(), run_count=0, state_type=flow_state)
    decision = decide(current_state(S.PENDING), S.RUNNING, flow_run=flow_run)
    assert outcome(decision) == ("ABORT", None, None)
    assert decision.reason == "The enclosing flow must be running to begin task execution."


def test_tasks_of_a_paused_flow_pause_as_not_ready() -> None:
    details = {"pause_timeout": "2026-06-01T13:00:00Z", "pause_reschedule": True}
    flow_run = FlowRunFacts(
        id=uuid.uuid4(), run_count=1, state_type=S.PAUSED, state_details=details
    )
    decision = decide(current_state(S.PENDING), S.RUNNING, flow_run=flow_run)
    assert outcome(decision) == ("REJECT", "PAUSED", "NotReady")
    assert decision.reason == (
        f"The flow is paused, new tasks can execute after resuming flow run: {flow_run.id}."
    )
    assert decision.state is not None
    assert decision.state.details == {
        "pause_timeout": "2026-06-01T13:00:00Z",
        "pause_reschedule": True,
        "pause_key": None,
    }


def test_tasks_without_a_flow_run_may_run() -> None:
    decision = decide(
        current_state(S.PENDING), S.RUNNING, flow_run=None, run=run_view(flow_run_id=None)
    )
    assert outcome(decision) == ("ACCEPT", "RUNNING", "Running")
    assert decision.task_effects.flow_run_run_count is None


def tag_limit(tag: str, limit: int, active_slots: int = 0, **fields: Any) -> TagLimit:
    return TagLimit(
        id=uuid.uuid4(),
        tag=tag,
        limit=limit,
        active=fields.pop("active", True),
        active_slots=active_slots,
        **fields,
    )


def test_running_takes_a_slot_of_every_tag_limit() -> None:
    limits = (tag_limit("a", 2, 1), tag_limit("b", 5))
    assert needs_tag_limits(TaskPolicy.CORE, S.RUNNING, ("a", "b"))
    assert not needs_tag_limits(TaskPolicy.CORE, S.RUNNING, ())
    assert not needs_tag_limits(TaskPolicy.MINIMAL, S.RUNNING, ("a",))
    decision = decide(current_state(S.PENDING), S.RUNNING, tag_limits=limits)
    assert outcome(decision) == ("ACCEPT", "RUNNING", "Running")
    assert decision.task_effects.acquire_tag_slots == tuple(limit.id for limit in limits)
    assert not decision.task_effects.release_tag_slots


def test_a_full_tag_limit_makes_the_run_wait_about_its_occupancy() -> None:
    limits = (tag_limit("a", 2, 2, avg_slot_occupancy_seconds=4.0), tag_limit("b", 5))
    decision = decide(current_state(S.PENDING), S.RUNNING, tag_limits=limits, draw=lambda: 0.5)
    assert outcome(decision) == ("WAIT", None, None)
    assert decision.reason == "Concurrency limit reached for tags: a, b"
    assert decision.delay_seconds == round(clamped_poisson_interval(4.0, draw=lambda: 0.5))
    assert decision.task_effects.acquire_tag_slots == ()
    slow = (tag_limit("a", 1, 1, avg_slot_occupancy_seconds=300.0),)
    capped = decide(current_state(S.PENDING), S.RUNNING, tag_limits=slow, draw=lambda: 0.99)
    assert capped.delay_seconds is not None
    assert capped.delay_seconds <= 13  # 10 s * 1.3


def test_a_zero_tag_limit_aborts_and_inactive_limits_are_ignored() -> None:
    limits = (tag_limit("a", 0), tag_limit("b", 0, active=False), tag_limit("c", 3))
    decision = decide(current_state(S.PENDING), S.RUNNING, tag_limits=limits)
    assert outcome(decision) == ("ABORT", None, None)
    assert decision.reason == (
        'The concurrency limit on tag "a" is 0 and will deadlock if the task tries to run again.'
    )
    assert decision.task_effects.acquire_tag_slots == ()
    inactive = decide(
        current_state(S.PENDING), S.RUNNING, tag_limits=(tag_limit("b", 0, active=False),)
    )
    assert outcome(inactive) == ("ACCEPT", "RUNNING", "Running")


def test_no_tag_slot_is_taken_when_a_later_rule_waits() -> None:
    later = {"scheduled_time": (NOW + dt.timedelta(seconds=30)).isoformat()}
    decision = decide(
        current_state(S.SCHEDULED, details=later), S.RUNNING, tag_limits=(tag_limit("a", 1),)
    )
    assert outcome(decision) == ("WAIT", None, None)
    assert decision.task_effects.acquire_tag_slots == ()


def test_leaving_running_gives_tag_slots_back_even_when_forced() -> None:
    for policy in TaskPolicy:
        decision = decide(current_state(S.RUNNING), S.COMPLETED, policy=policy)
        assert decision.task_effects.release_tag_slots
    cancelling = decide(current_state(S.RUNNING), S.CANCELLING, policy=TaskPolicy.MINIMAL)
    assert not cancelling.task_effects.release_tag_slots


def test_scheduled_time_is_copied_to_pending() -> None:
    at = "2026-06-01T12:05:00Z"
    decision = decide(current_state(S.SCHEDULED, details={"scheduled_time": at}), S.PENDING)
    assert decision.state is not None
    assert decision.state.details["scheduled_time"] == at


def test_running_waits_until_the_scheduled_time() -> None:
    later = {"scheduled_time": (NOW + dt.timedelta(seconds=90)).isoformat()}
    for current in (S.SCHEDULED, S.PENDING):
        decision = decide(current_state(current, details=later), S.RUNNING)
        assert (decision.status, decision.delay_seconds) == (Status.WAIT, 90)
        assert decision.reason == "Scheduled time is in the future"


def test_failed_task_with_retries_left_awaits_retry() -> None:
    run = run_view(run_count=1, empirical_policy={"retries": 2, "retry_delay": [5, 10]})
    decision = decide(current_state(S.RUNNING), S.FAILED, run=run)
    assert outcome(decision) == ("REJECT", "SCHEDULED", "AwaitingRetry")
    assert decision.reason == "Retrying"
    assert decision.state is not None
    assert decision.state.message == "m"
    assert decision.state.details == {"scheduled_time": NOW + dt.timedelta(seconds=5)}
    last = decide(
        current_state(S.RUNNING),
        S.FAILED,
        run=run_view(run_count=3, empirical_policy={"retries": 2}),
    )
    assert outcome(last) == ("ACCEPT", "FAILED", "Failed")


def test_a_failure_that_is_not_retriable_is_accepted() -> None:
    run = run_view(run_count=1, empirical_policy={"retries": 3})
    decision = decide(current_state(S.RUNNING), S.FAILED, run=run, details={"retriable": False})
    assert outcome(decision) == ("ACCEPT", "FAILED", "Failed")


def test_retry_delay_for_each_attempt() -> None:
    def draw() -> float:
        return 0.5

    assert retry_delay_seconds({"retry_delay": [1, 2, 3]}, 2, draw) == 2
    assert retry_delay_seconds({"retry_delay": [1, 2, 3]}, 7, draw) == 3
    assert retry_delay_seconds({"retry_delay": [1, 2, 3]}, 0, draw) == 3  # Prefect's index -1
    assert retry_delay_seconds({"retry_delay": 4}, 1, draw) == 4
    assert retry_delay_seconds({}, 1, draw) == 0
    jittered = retry_delay_seconds({"retry_delay": 10, "retry_jitter_factor": 0.5}, 1, draw)
    assert jittered == clamped_poisson_interval(10, 0.5, draw=draw)


def test_clamped_poisson_interval_stays_within_bounds() -> None:
    for i in range(100):
        value = clamped_poisson_interval(10.0, 0.3, draw=functools.partial(float, i / 100))
        assert 0 <= value <= 13.0 + 1e-9
    assert clamped_poisson_interval(0.0) == 0.0


def test_reruns_are_renamed() -> None:
    run = run_view(run_count=1)
    assert outcome(decide(current_state(S.RUNNING), S.RUNNING, run=run))[2] == "Rerunning"
    retrying = decide(current_state(S.SCHEDULED, "AwaitingRetry"), S.RUNNING, run=run)
    assert outcome(retrying)[2] == "Retrying"
    assert outcome(decide(None, S.RUNNING, run=run))[2] == "Running"


def test_overlong_cache_key_is_rejected_yet_written() -> None:
    decision = decide(current_state(S.RUNNING), S.COMPLETED, details={"cache_key": "k" * 2001})
    assert outcome(decision) == ("REJECT", "COMPLETED", "Completed")
    assert decision.reason == "Cache key exceeded maximum allowed length of 2000 characters."


def test_completed_with_a_cache_key_is_cached_unless_forced() -> None:
    details = {"cache_key": "k"}
    assert decide(current_state(S.RUNNING), S.COMPLETED, details=details).task_effects.cache_state
    forced = decide(
        current_state(S.RUNNING), S.COMPLETED, details=details, policy=TaskPolicy.MINIMAL
    )
    assert not forced.task_effects.cache_state


def test_forced_transitions_skip_every_rule() -> None:
    decision = decide(current_state(S.COMPLETED, data=STORED), S.CRASHED, policy=TaskPolicy.MINIMAL)
    assert outcome(decision) == ("ACCEPT", "CRASHED", "Crashed")


def test_background_tasks_are_claimed_once_and_keep_their_parameters() -> None:
    pending = decide(current_state(S.PENDING), S.PENDING, policy=TaskPolicy.BACKGROUND)
    assert outcome(pending) == ("ABORT", None, None)
    assert (
        pending.reason == "This run is in a PENDING state and cannot transition to a PENDING state."
    )
    params = {"task_parameters_id": str(uuid.uuid4())}
    running = decide(
        current_state(S.PENDING, details=params),
        S.RUNNING,
        policy=TaskPolicy.BACKGROUND,
        flow_run=None,
    )
    assert running.state is not None
    assert running.state.details["task_parameters_id"] == params["task_parameters_id"]


# --- the endpoints --------------------------------------------------------------------------

TASK_RUN_KEYS = [
    "id", "created", "updated", "name", "flow_run_id", "task_key", "dynamic_key", "cache_key",
    "cache_expiration", "task_version", "empirical_policy", "tags", "labels", "state_id",
    "task_inputs", "state_type", "state_name", "run_count", "flow_run_run_count",
    "expected_start_time", "next_scheduled_start_time", "start_time", "end_time",
    "total_run_time", "estimated_run_time", "estimated_start_time_delta", "state",
]  # fmt: skip


async def flow_run(
    client: httpx.AsyncClient, state: str = "RUNNING", **body: Any
) -> dict[str, Any]:
    flow = body.pop("flow", None) or await create_flow(client, labels={"team": "data"})
    response = await client.post(
        "/flow_runs/", json={"flow_id": flow["id"], "state": {"type": state}, **body}
    )
    assert response.status_code == 201, response.text
    run: dict[str, Any] = response.json()
    return run


async def task_run(
    client: httpx.AsyncClient, run: dict[str, Any] | None, **body: Any
) -> dict[str, Any]:
    payload = {
        "flow_run_id": run["id"] if run else None,
        "task_key": body.pop("task_key", f"task-{uuid.uuid4().hex[:6]}"),
        "dynamic_key": "0",
        **body,
    }
    response = await client.post("/task_runs/", json=payload)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def propose(
    client: httpx.AsyncClient,
    task_run_id: str,
    state_type: str,
    *,
    force: bool = False,
    **state: Any,
) -> httpx.Response:
    body = {"state": {"type": state_type, **state}, "force": force}
    return await client.post(f"/task_runs/{task_run_id}/set_state", json=body)


async def test_create_answers_prefects_task_run_and_inherits_the_flow_run_labels(
    client: httpx.AsyncClient,
) -> None:
    run = await flow_run(client)
    created = await task_run(
        client,
        run,
        name="extract",
        labels={"x": 1},
        tags=["etl"],
        empirical_policy={"max_retries": 2, "retry_delay_seconds": 3},
        task_inputs={
            "a": [{"input_type": "task_run", "id": str(uuid.uuid4())}],
            "b": [{"name": "p", "input_type": "parameter"}],
        },
    )
    assert list(created) == TASK_RUN_KEYS
    assert created["labels"] == {**run["labels"], "prefect.flow-run.id": run["id"], "x": 1}
    assert created["empirical_policy"] == {
        "max_retries": 2, "retry_delay_seconds": 3.0, "retries": 2, "retry_delay": 3,
        "retry_jitter_factor": None,
    }  # fmt: skip
    assert created["task_inputs"]["b"] == [{"input_type": "parameter", "name": "p"}]
    state = created["state"]
    assert (created["state_type"], state["type"], state["name"]) == (
        "PENDING",
        "PENDING",
        "Pending",
    )
    assert created["state_id"] == state["id"]
    assert state["state_details"]["task_run_id"] == created["id"]
    assert state["state_details"]["flow_run_id"] == run["id"]
    assert created["expected_start_time"] == state["timestamp"]
    read = (await client.get(f"/task_runs/{created['id']}")).json()
    assert read["estimated_start_time_delta"] >= 0  # lateness grows while it has not started
    assert {**read, "estimated_start_time_delta": 0.0} == created


async def test_create_again_for_the_same_keys_answers_the_existing_run_with_200(
    client: httpx.AsyncClient,
) -> None:
    run = await flow_run(client)
    first = await task_run(client, run, task_key="k")
    again = await client.post(
        "/task_runs/",
        json={"flow_run_id": run["id"], "task_key": "k", "dynamic_key": "0", "name": "other",
              "state": {"type": "RUNNING"}},
    )  # fmt: skip
    assert again.status_code == 200
    assert again.json() == {
        **first,
        "estimated_start_time_delta": again.json()["estimated_start_time_delta"],
    }
    orphan = {"task_key": "k", "dynamic_key": "0"}
    created = await client.post("/task_runs/", json=orphan)
    assert (created.status_code, created.json()["flow_run_id"], created.json()["labels"]) == (
        201,
        None,
        {},
    )
    repeat = await client.post("/task_runs/", json=orphan)
    assert (repeat.status_code, repeat.json()["id"]) == (200, created.json()["id"])


async def test_create_with_a_given_id_and_state(client: httpx.AsyncClient) -> None:
    chosen = str(uuid.uuid4())
    later = "2030-01-01T00:00:00Z"
    created = await task_run(
        client,
        None,
        id=chosen,
        state={"type": "SCHEDULED", "state_details": {"scheduled_time": later}},
    )
    assert created["id"] == chosen
    assert (
        created["state_name"],
        created["next_scheduled_start_time"],
        created["expected_start_time"],
    ) == ("Scheduled", later, later)


async def test_create_refuses_what_prefect_refuses(client: httpx.AsyncClient) -> None:
    missing = await client.post("/task_runs/", json={"task_key": "x"})
    assert missing.status_code == 422
    assert missing.json()["exception_detail"][0]["loc"] == ["body", "dynamic_key"]
    extra = await client.post("/task_runs/", json={"task_key": "x", "dynamic_key": "1", "zzz": 1})
    assert extra.json()["exception_detail"][0]["type"] == "extra_forbidden"
    long_key = await client.post(
        "/task_runs/", json={"task_key": "x", "dynamic_key": "1", "cache_key": "k" * 2001}
    )
    assert long_key.status_code == 422
    delays = {"task_key": "x", "dynamic_key": "1", "empirical_policy": {"retry_delay": [1] * 51}}
    assert (await client.post("/task_runs/", json=delays)).status_code == 422
    unknown = await client.post(
        "/task_runs/", json={"task_key": "x", "dynamic_key": "1", "flow_run_id": str(uuid.uuid4())}
    )
    assert unknown.status_code == 409
    assert unknown.json()["detail"].startswith("Data integrity conflict.")


async def test_missing_task_runs_answer_prefects_404s(client: httpx.AsyncClient) -> None:
    missing = uuid.uuid4()
    assert (await client.get(f"/task_runs/{missing}")).json() == {"detail": "Task not found"}
    patched = await client.patch(f"/task_runs/{missing}", json={"name": "x"})
    assert (patched.status_code, patched.json()) == (404, {"detail": "Task run not found"})
    deleted = await client.delete(f"/task_runs/{missing}")
    assert (deleted.status_code, deleted.json()) == (404, {"detail": "Task not found"})
    state = await client.get(f"/task_run_states/{missing}")
    assert (state.status_code, state.json()) == (404, {"detail": "Flow run state not found"})
    proposed = await propose(client, str(missing), "RUNNING")
    assert (proposed.status_code, proposed.json()) == (
        404,
        {"exception_message": f"Task run with id {missing} not found"},
    )
    assert (
        await client.get("/task_run_states/", params={"task_run_id": str(missing)})
    ).json() == []


async def test_patch_renames_and_null_asks_for_a_generated_name(client: httpx.AsyncClient) -> None:
    created = await task_run(client, await flow_run(client), name="before")
    url = f"/task_runs/{created['id']}"
    assert (await client.patch(url, json={})).status_code == 204
    assert (await client.get(url)).json()["name"] == "before"
    await client.patch(url, json={"name": "after"})
    assert (await client.get(url)).json()["name"] == "after"
    await client.patch(url, json={"name": None})
    generated = (await client.get(url)).json()["name"]
    assert generated not in ("after", "")
    assert "-" in generated
    extra = await client.patch(url, json={"tags": ["x"]})
    assert extra.status_code == 422


async def test_delete_removes_the_run_its_states_and_its_logs(
    client: httpx.AsyncClient, database: Database
) -> None:
    created = await task_run(client, await flow_run(client))
    async with database.write() as conn:
        await conn.execute(
            t.log.insert().values(
                id=uuid.uuid4(), created=NOW, updated=NOW, name="n", level=20,
                task_run_id=uuid.UUID(created["id"]), message="m", timestamp=NOW,
            )
        )  # fmt: skip
    assert (await client.delete(f"/task_runs/{created['id']}")).status_code == 204
    assert (await client.get(f"/task_runs/{created['id']}")).status_code == 404
    assert (await client.get(f"/task_run_states/{created['state_id']}")).status_code == 404
    async with database.read() as conn:
        assert (await conn.execute(t.log.select())).all() == []


async def test_set_state_lifecycle_keeps_the_bookkeeping(client: httpx.AsyncClient) -> None:
    run = await flow_run(client)
    created = await task_run(client, run)
    running = await propose(client, created["id"], "RUNNING")
    assert (running.status_code, running.json()["status"]) == (201, "ACCEPT")
    assert running.json()["details"] == {"type": "accept_details"}
    completed = await propose(client, created["id"], "COMPLETED", data=STORED)
    assert completed.status_code == 201
    read = (await client.get(f"/task_runs/{created['id']}")).json()
    assert (read["state_name"], read["run_count"], read["flow_run_run_count"]) == (
        "Completed",
        1,
        1,  # the flow run's run count when the task ran
    )
    assert read["start_time"] == running.json()["state"]["timestamp"]
    assert read["end_time"] == completed.json()["state"]["timestamp"]
    assert read["state"]["data"] == STORED
    again = await propose(client, created["id"], "RUNNING")
    assert (again.status_code, again.json()["status"]) == (200, "REJECT")
    assert again.json()["details"]["reason"] == "This run is already completed."
    assert again.json()["state"]["id"] == completed.json()["state"]["id"]
    crashed = await propose(client, created["id"], "CRASHED")
    assert (crashed.status_code, crashed.json()["status"]) == (200, "ABORT")
    assert crashed.json()["details"] == {
        "type": "abort_details",
        "reason": "Run is already COMPLETED.",
    }
    history = (await client.get("/task_run_states/", params={"task_run_id": created["id"]})).json()
    assert [s["type"] for s in history] == ["PENDING", "RUNNING", "COMPLETED"]
    forced = await propose(client, created["id"], "CRASHED", force=True)
    assert (forced.status_code, forced.json()["status"]) == (201, "ACCEPT")


async def test_set_state_waits_for_the_flow_and_pauses_with_it(client: httpx.AsyncClient) -> None:
    pending_flow = await flow_run(client, state="PENDING")
    created = await task_run(client, pending_flow)
    aborted = await propose(client, created["id"], "RUNNING")
    assert (aborted.status_code, aborted.json()["status"]) == (200, "ABORT")
    assert aborted.json()["state"]["id"] == created["state_id"]
    await client.post(
        f"/flow_runs/{pending_flow['id']}/set_state",
        json={"state": {"type": "RUNNING"}, "force": True},
    )
    await client.post(
        f"/flow_runs/{pending_flow['id']}/set_state",
        json={"state": {"type": "PAUSED", "state_details": {"pause_key": "p"}}},
    )
    paused = await propose(client, created["id"], "RUNNING")
    assert (paused.status_code, paused.json()["status"]) == (201, "REJECT")
    assert (paused.json()["state"]["type"], paused.json()["state"]["name"]) == (
        "PAUSED",
        "NotReady",
    )


async def test_set_state_retries_a_failed_task_after_its_delay(client: httpx.AsyncClient) -> None:
    created = await task_run(
        client, await flow_run(client), empirical_policy={"retries": 1, "retry_delay": 5}
    )
    await propose(client, created["id"], "RUNNING")
    failed = await propose(client, created["id"], "FAILED", message="boom")
    body = failed.json()
    assert (failed.status_code, body["status"], body["state"]["name"]) == (
        201,
        "REJECT",
        "AwaitingRetry",
    )
    scheduled = dt.datetime.fromisoformat(body["state"]["state_details"]["scheduled_time"])
    timestamp = dt.datetime.fromisoformat(body["state"]["timestamp"])
    assert scheduled - timestamp == pytest.approx(
        dt.timedelta(seconds=5), abs=dt.timedelta(seconds=1)
    )
    assert body["state"]["message"] == "boom"
    waiting = await propose(client, created["id"], "RUNNING")
    assert (waiting.status_code, waiting.json()["status"]) == (200, "WAIT")
    assert 3 <= waiting.json()["details"]["delay_seconds"] <= 5


async def test_set_state_uses_a_cached_completed_state(client: httpx.AsyncClient) -> None:
    run = await flow_run(client)
    first = await task_run(client, run)
    await propose(client, first["id"], "RUNNING")
    stored = await propose(
        client, first["id"], "COMPLETED", data=STORED, state_details={"cache_key": "ck"}
    )
    assert stored.json()["status"] == "ACCEPT"
    second = await task_run(client, run)
    cached = await propose(client, second["id"], "RUNNING", state_details={"cache_key": "ck"})
    body = cached.json()
    assert (cached.status_code, body["status"], body["details"]["reason"]) == (
        201, "REJECT", "Retrieved state from cache"
    )  # fmt: skip
    assert (body["state"]["type"], body["state"]["name"], body["state"]["data"]) == (
        "COMPLETED",
        "Cached",
        STORED,
    )
    assert body["state"]["state_details"]["task_run_id"] == second["id"]
    assert (await client.get(f"/task_runs/{second['id']}")).json()["run_count"] == 0
    expired = "2020-01-01T00:00:00Z"
    third = await task_run(client, run)
    await propose(client, third["id"], "RUNNING")
    await propose(
        client,
        third["id"],
        "COMPLETED",
        state_details={"cache_key": "old", "cache_expiration": expired},
    )
    fourth = await task_run(client, run)
    fresh = await propose(client, fourth["id"], "RUNNING", state_details={"cache_key": "old"})
    assert fresh.json()["state"]["name"] == "Running"


async def test_set_state_takes_and_gives_back_tag_slots(
    client: httpx.AsyncClient, database: Database
) -> None:
    limit_id = uuid.uuid4()
    async with database.write() as conn:
        await conn.execute(
            t.concurrency_limit_v2.insert().values(
                id=limit_id, created=NOW, updated=NOW, name="tag:etl", limit=1, active=True,
                active_slots=0,
            )
        )  # fmt: skip

    async def active_slots() -> int:
        async with database.read() as conn:
            row = (await conn.execute(t.concurrency_limit_v2.select())).one()
            leases = (await conn.execute(t.concurrency_lease.select())).all()
            assert len(leases) == row.active_slots
            return int(row.active_slots)

    run = await flow_run(client)
    first = await task_run(client, run, tags=["etl", "other"])
    second = await task_run(client, run, tags=["etl"])
    assert (await propose(client, first["id"], "RUNNING")).json()["status"] == "ACCEPT"
    assert await active_slots() == 1
    blocked = await propose(client, second["id"], "RUNNING")
    assert (blocked.status_code, blocked.json()["status"]) == (200, "WAIT")
    assert blocked.json()["details"]["reason"] == "Concurrency limit reached for tags: etl"
    await propose(client, first["id"], "COMPLETED")
    assert await active_slots() == 0
    assert (await propose(client, second["id"], "RUNNING")).json()["status"] == "ACCEPT"
    await propose(client, second["id"], "CRASHED", force=True)
    assert await active_slots() == 0


def own(statements: list[str]) -> list[str]:
    """The request's statements, without the event bus writing earlier requests' events."""
    return [s for s in statements if not s.lstrip().upper().startswith("INSERT INTO EVENT")]


async def test_set_state_takes_three_statements(
    client: httpx.AsyncClient, database: Database
) -> None:
    created = await task_run(client, await flow_run(client))
    with counted_statements(database) as statements:
        response = await propose(client, created["id"], "RUNNING")
    assert response.json()["status"] == "ACCEPT"
    assert len(own(statements)) == 3, (
        statements
    )  # read run+state+flow run, insert state, update run


async def test_create_takes_three_statements(client: httpx.AsyncClient, database: Database) -> None:
    run = await flow_run(client)
    body = {"flow_run_id": run["id"], "task_key": "k", "dynamic_key": "0"}
    with counted_statements(database) as statements:
        assert (await client.post("/task_runs/", json=body)).status_code == 201
    assert len(own(statements)) == 3, statements  # read flow run, insert-or-ignore run, state


# --- filter, count, paginate ----------------------------------------------------------------


async def task_world(client: httpx.AsyncClient) -> dict[str, Any]:
    """Two flow runs (one of a deployment) and four task runs, one without a flow run."""
    flow = await create_flow(client)
    deployment = await create_deployment(client, flow=flow)
    plain = await flow_run(client, flow=flow)
    deployed = await flow_run(client, flow=flow, deployment_id=deployment["id"])
    made: dict[str, Any] = {
        "flow": flow,
        "deployment": deployment,
        "plain": plain,
        "deployed": deployed,
    }
    made["a"] = await task_run(client, plain, name="alpha", tags=["x", "y"])
    made["b"] = await task_run(client, plain, name="beta", tags=["y"])
    made["c"] = await task_run(client, deployed, name="gamma")
    made["d"] = await task_run(client, None, name="delta", tags=["x"])
    await propose(client, made["a"]["id"], "RUNNING")
    await propose(client, made["a"]["id"], "COMPLETED")
    await propose(client, made["c"]["id"], "RUNNING")
    subflow = await client.post(
        "/flow_runs/", json={"flow_id": flow["id"], "parent_task_run_id": made["b"]["id"]}
    )
    assert subflow.status_code == 201
    made["by_id"] = {made[k]["id"]: k for k in "abcd"}
    return made


async def found(client: httpx.AsyncClient, made: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """The keys of the task runs a filter returns, in order; the count agrees."""
    response = await client.post("/task_runs/filter", json=body)
    assert response.status_code == 200, response.text
    keys = [made["by_id"][run["id"]] for run in response.json()]
    if not {"limit", "offset"} & set(body):
        filters = {k: v for k, v in body.items() if k != "sort"}
        assert (await client.post("/task_runs/count", json=filters)).json() == len(keys)
    return keys


async def test_filter_by_the_task_runs_own_fields(client: httpx.AsyncClient) -> None:
    made = await task_world(client)
    name = {"sort": "NAME_ASC"}
    assert await found(client, made, name) == ["a", "b", "d", "c"]
    assert await found(client, made, {**name, "task_runs": {"name": {"like_": "ET"}}}) == ["b"]
    assert await found(
        client, made, {**name, "task_runs": {"id": {"any_": [made["c"]["id"]]}}}
    ) == ["c"]
    assert await found(client, made, {**name, "task_runs": {"tags": {"all_": ["x", "y"]}}}) == ["a"]
    assert await found(client, made, {**name, "task_runs": {"tags": {"is_null_": True}}}) == ["c"]
    states = {"state": {"type": {"any_": ["RUNNING", "COMPLETED"]}}}
    assert await found(client, made, {**name, "task_runs": states}) == ["a", "c"]
    by_name = {"state": {"name": {"any_": ["Pending"]}, "type": {}}}
    assert await found(client, made, {**name, "task_runs": by_name}) == ["b", "d"]
    started = {"start_time": {"is_null_": False}}
    assert await found(client, made, {**name, "task_runs": started}) == ["a", "c"]
    assert await found(client, made, {**name, "task_runs": {"end_time": {"is_null_": False}}}) == [
        "a"
    ]
    either = {"operator": "or_", "name": {"any_": ["delta"]}, "tags": {"all_": ["x", "y"]}}
    assert await found(client, made, {**name, "task_runs": either}) == ["a", "d"]


async def test_filter_by_flow_run_id_as_prefect_reads_its_defaults(
    client: httpx.AsyncClient,
) -> None:
    made = await task_world(client)
    name = {"sort": "NAME_ASC"}
    assert await found(client, made, {**name, "task_runs": {"flow_run_id": {}}}) == ["a", "b", "c"]
    nulls = {"flow_run_id": {"is_null_": True}}
    assert await found(client, made, {**name, "task_runs": nulls}) == ["d"]
    anything = {"flow_run_id": {"is_null_": None}}
    assert await found(client, made, {**name, "task_runs": anything}) == ["a", "b", "d", "c"]
    ids = {"flow_run_id": {"any_": [made["deployed"]["id"]]}}
    assert await found(client, made, {**name, "task_runs": ids}) == ["c"]


async def test_filter_by_subflow_runs(client: httpx.AsyncClient) -> None:
    made = await task_world(client)
    name = {"sort": "NAME_ASC"}
    parents = {"subflow_runs": {"exists_": True}}
    assert await found(client, made, {**name, "task_runs": parents}) == ["b"]
    others = {"subflow_runs": {"exists_": False}}
    assert await found(client, made, {**name, "task_runs": others}) == ["a", "d", "c"]


async def test_filter_by_flow_runs_flows_and_deployments(client: httpx.AsyncClient) -> None:
    made = await task_world(client)
    name = {"sort": "NAME_ASC"}
    plain = {"flow_runs": {"id": {"any_": [made["plain"]["id"]]}}}
    assert await found(client, made, {**name, **plain}) == ["a", "b"]
    assert await found(client, made, {**name, "flow_runs": {}}) == ["a", "b", "c"]
    flows = {"flows": {"id": {"any_": [made["flow"]["id"]]}}}
    assert await found(client, made, {**name, **flows}) == ["a", "b", "c"]
    deployments = {"deployments": {"id": {"any_": [made["deployment"]["id"]]}}}
    assert await found(client, made, {**name, **deployments}) == ["c"]
    both = {**plain, **deployments}
    assert await found(client, made, {**name, **both}) == []


async def test_every_sort_is_accepted_and_ties_fall_back_to_newest_id(
    client: httpx.AsyncClient,
) -> None:
    made = await task_world(client)
    assert await found(client, made, {"sort": "NAME_DESC"}) == ["c", "d", "b", "a"]
    assert (await found(client, made, {"sort": "END_TIME_DESC"}))[0] == "a"
    assert set((await found(client, made, {"sort": "DURATION_DESC"}))[:2]) == {"a", "c"}
    durations = await found(client, made, {"sort": "DURATION_ASC"})
    assert set(durations[:2]) == {"b", "d"}
    expected = await found(client, made, {"sort": "EXPECTED_START_TIME_ASC"})
    assert expected == ["a", "b", "c", "d"]
    assert await found(client, made, {"sort": "EXPECTED_START_TIME_DESC"}) == ["d", "c", "b", "a"]
    assert len(await found(client, made, {"sort": "NEXT_SCHEDULED_START_TIME_ASC"})) == 4
    newest_first = sorted("abcd", key=lambda k: made[k]["id"], reverse=True)
    assert await found(client, made, {"sort": None, "limit": None, "offset": None}) == newest_first
    bad = await client.post("/task_runs/filter", json={"sort": "START_TIME_ASC"})
    assert bad.status_code == 422


async def test_filter_limits_and_offsets(client: httpx.AsyncClient) -> None:
    made = await task_world(client)
    page = await found(client, made, {"sort": "NAME_ASC", "limit": 2, "offset": 1})
    assert page == ["b", "d"]
    over = await client.post("/task_runs/filter", json={"limit": 201})
    assert (over.status_code, over.json()) == (
        422,
        {"detail": "Invalid limit: must be less than or equal to 200."},
    )
    refused = await client.post("/task_runs/filter", json={"task_runs": {"bogus": 1}})
    assert refused.json()["exception_detail"][0]["loc"] == ["body", "task_runs", "bogus"]


async def test_paginate_answers_prefects_shorter_task_run_response(
    client: httpx.AsyncClient,
) -> None:
    made = await task_world(client)
    response = await client.post(
        "/task_runs/paginate", json={"sort": "NAME_ASC", "limit": 3, "page": 2}
    )
    body = response.json()
    assert (body["count"], body["limit"], body["pages"], body["page"]) == (4, 3, 2, 2)
    [only] = body["results"]
    assert made["by_id"][only["id"]] == "c"
    assert list(only) == [
        "id", "created", "updated", "name", "flow_run_id", "task_key", "state_id", "state",
        "task_version", "task_inputs", "empirical_policy", "tags", "start_time", "end_time",
        "total_run_time", "estimated_run_time", "estimated_start_time_delta",
    ]  # fmt: skip


async def test_flows_flow_runs_and_deployments_filter_by_their_task_runs(
    client: httpx.AsyncClient,
) -> None:
    made = await task_world(client)
    other_flow = await create_flow(client)
    await flow_run(client, flow=other_flow)
    completed = {"task_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}
    runs = (await client.post("/flow_runs/filter", json=completed)).json()
    assert [run["id"] for run in runs] == [made["plain"]["id"]]
    assert (await client.post("/flow_runs/count", json={"task_runs": {}})).json() == 2
    flows = (await client.post("/flows/filter", json={"task_runs": {}})).json()
    assert [flow["id"] for flow in flows] == [made["flow"]["id"]]
    not_on_that_run = {**completed, "flow_runs": {"id": {"any_": [made["deployed"]["id"]]}}}
    assert (await client.post("/flows/count", json=not_on_that_run)).json() == 0
    deployments = (
        await client.post("/deployments/filter", json={"task_runs": {"name": {"any_": ["gamma"]}}})
    ).json()
    assert [d["id"] for d in deployments] == [made["deployment"]["id"]]
    assert (await client.post("/deployments/count", json=completed)).json() == 0


async def test_mirror_subflow_state_copies_the_subflows_state_onto_its_parent_task(
    client: httpx.AsyncClient, database: Database
) -> None:
    parent_flow = await flow_run(client)
    parent_task = await task_run(client, parent_flow, name="child-0")
    # Created PENDING, which creation already mirrors; then the subflow starts running.
    child = await flow_run(client, state="PENDING", parent_task_run_id=parent_task["id"])
    assert (await client.get(f"/task_runs/{parent_task['id']}")).json()["state_type"] == "PENDING"
    running = {**child["state"], "type": "RUNNING", "name": "Running"}
    async with database.write() as conn:
        result = await mirror_subflow_state(
            conn, uuid.UUID(parent_task["id"]), uuid.UUID(child["id"]), running, now=now()
        )
    assert (result.status_code, result.body["status"]) == (201, "ACCEPT")
    read = (await client.get(f"/task_runs/{parent_task['id']}")).json()
    assert (read["state_type"], read["state_name"], read["run_count"]) == ("RUNNING", "Running", 1)
    details = read["state"]["state_details"]
    assert details["child_flow_run_id"] == child["id"]
    assert (details["task_run_id"], details["flow_run_id"]) == (
        parent_task["id"],
        parent_flow["id"],
    )
    assert read["state"]["id"] != child["state"]["id"]
