"""The everyday Prefect journeys, run with the real Prefect 3.9.1 against a real deputy."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from e2e.conftest import PrefectEnv, assert_no_server_complaints, stop, wait_for

POOL = "e2e-pool"


def deploy(prefect: PrefectEnv, flow: str, name: str, **options: Any) -> str:
    """Deploy ``flows.py:<flow>`` to the e2e pool with the SDK; returns the deployment id."""
    return str(
        prefect.python(
            f"""
            import json
            from prefect import flow
            deployed = flow.from_source(source={str(prefect.flows)!r}, entrypoint="flows.py:{flow}")
            print(json.dumps(str(deployed.deploy(name={name!r}, work_pool_name={POOL!r},
                                                  print_next_steps=False, **{options!r}))))
            """
        )
    )


def run_state(prefect: PrefectEnv, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{prefect.server.url}/flow_runs/{run_id}")
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def wait_final(prefect: PrefectEnv, run_id: str, timeout: float = 90) -> dict[str, Any]:
    final = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
    result: dict[str, Any] = wait_for(
        lambda: (run := run_state(prefect, run_id))["state_type"] in final and run,
        timeout=timeout,
    )
    return result


@pytest.fixture(scope="module")
def worker(prefect: PrefectEnv) -> Iterator[None]:
    """A process worker on the e2e pool for the whole module."""
    created = prefect.cli("work-pool", "create", POOL, "--type", "process")
    assert created.returncode == 0, created.stdout + created.stderr
    process = prefect.start(
        "prefect", "worker", "start", "--pool", POOL, "--type", "process", log="worker.log"
    )
    try:
        wait_for(lambda: "started" in prefect.log("worker.log"), timeout=60)
        yield
    finally:
        stop(process)
    assert_no_server_complaints(prefect.log("worker.log"))


def test_journey_1_client_creates_runs_from_a_deployment(prefect: PrefectEnv) -> None:
    result = prefect.python(
        """
        import asyncio, json
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import PrefectHTTPStatusError

        async def main():
            async with get_client() as client:
                flow_id = await client.create_flow_from_name("journey-one")
                await client.create_work_pool(WorkPoolCreate(name="j1", type="process"))
                deployment_id = await client.create_deployment(
                    flow_id=flow_id, name="d", work_pool_name="j1", tags=["dep"],
                    parameters={"x": 1}, enforce_parameter_schema=True,
                    parameter_openapi_schema={"type": "object",
                                              "properties": {"x": {"type": "integer"}}},
                )
                run = await client.create_flow_run_from_deployment(
                    deployment_id, parameters={"x": 2}, tags=["run"], name="named",
                    idempotency_key="key-1", job_variables={"env": {"A": "1"}},
                )
                again = await client.create_flow_run_from_deployment(
                    deployment_id, idempotency_key="key-1")
                read = await client.read_flow_run(run.id)
                try:
                    await client.create_flow_run_from_deployment(
                        deployment_id, parameters={"x": "not a number"})
                    status = None
                except PrefectHTTPStatusError as error:
                    status = error.response.status_code
                return {
                    "name": read.name, "tags": sorted(read.tags), "parameters": read.parameters,
                    "job_variables": read.job_variables, "same": again.id == run.id,
                    "state": read.state.type.value, "schema_status": status,
                }

        print(json.dumps(asyncio.run(main())))
        """
    )
    assert result == {
        "name": "named",
        "tags": ["dep", "run"],
        "parameters": {"x": 2},
        "job_variables": {"env": {"A": "1"}},
        "same": True,
        "state": "SCHEDULED",
        "schema_status": 409,
    }


def test_journey_2_cli_deployment_run(prefect: PrefectEnv, worker: None) -> None:
    deployment_id = deploy(prefect, "happy", "cli-run")
    done = prefect.cli("deployment", "run", "happy/cli-run", "--param", "x=1", "--tag", "t")
    assert done.returncode == 0, done.stdout + done.stderr
    assert_no_server_complaints(done.stdout + done.stderr)
    runs = httpx.post(
        f"{prefect.server.url}/flow_runs/filter",
        json={"deployments": {"id": {"any_": [deployment_id]}}},
    ).json()
    assert len(runs) == 1
    assert runs[0]["parameters"] == {"x": 1}
    assert "t" in runs[0]["tags"]
    unknown = prefect.cli("deployment", "run", "happy/no-such-deployment")
    assert unknown.returncode != 0
    assert "not found" in (unknown.stdout + unknown.stderr).lower()


def test_journey_3_run_deployment_returns_or_waits(prefect: PrefectEnv, worker: None) -> None:
    deploy(prefect, "happy", "run-deployment")
    result = prefect.python(
        """
        import json
        from prefect.deployments import run_deployment
        scheduled = run_deployment("happy/run-deployment", parameters={"x": 2}, timeout=0)
        finished = run_deployment("happy/run-deployment", parameters={"x": 3}, timeout=90,
                                  poll_interval=1)
        print(json.dumps({"first": scheduled.state.type.value,
                          "second": finished.state.type.value}))
        """,
        timeout=150,
    )
    assert result == {"first": "SCHEDULED", "second": "COMPLETED"}


def test_journey_4_worker_runs_a_deployment_with_tasks_and_logs(
    prefect: PrefectEnv, worker: None
) -> None:
    deploy(prefect, "happy", "with-tasks")
    run = prefect.python(
        """
        import json
        from prefect.deployments import run_deployment
        run = run_deployment("happy/with-tasks", parameters={"x": 3}, timeout=0)
        print(json.dumps(str(run.id)))
        """
    )
    final = wait_final(prefect, run)
    assert final["state_type"] == "COMPLETED"
    assert final["labels"]["prefect.worker.type"] == "process"
    assert final["labels"]["prefect.work-pool.name"] == POOL
    script = f"""
        import asyncio, json
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter
        from prefect.client.schemas.filters import LogFilterFlowRunId

        async def main():
            async with get_client() as client:
                runs = FlowRunFilter(id=FlowRunFilterId(any_=["{run}"]))
                tasks = await client.read_task_runs(flow_run_filter=runs)
                logs = await client.read_logs(
                    LogFilter(flow_run_id=LogFilterFlowRunId(any_=["{run}"])))
                return {{"tasks": sorted(t.state.type.value for t in tasks),
                         "messages": [log.message for log in logs]}}

        print(json.dumps(asyncio.run(main())))
        """
    # The flow process sends its last log batch as it exits, just after the final state.
    details = wait_for(
        lambda: (
            (found := prefect.python(script)) and "happy total 6" in found["messages"] and found
        ),
        timeout=30,
        interval=1,
    )
    assert details["tasks"] == ["COMPLETED"] * 3


def test_journey_5_retries_failures_and_crashes(
    prefect: PrefectEnv, worker: None, tmp_path_factory: pytest.TempPathFactory
) -> None:
    marker = tmp_path_factory.mktemp("marker") / "attempted"
    deploy(prefect, "flaky", "flaky")
    deploy(prefect, "broken", "broken")
    deploy(prefect, "crashing", "crashing")
    ids = prefect.python(
        f"""
        import json
        from prefect.deployments import run_deployment
        runs = [run_deployment("flaky/flaky", parameters={{"marker": {str(marker)!r}}}, timeout=0),
                run_deployment("broken/broken", timeout=0),
                run_deployment("crashing/crashing", timeout=0)]
        print(json.dumps([str(r.id) for r in runs]))
        """
    )
    flaky, broken, crashing = (wait_final(prefect, run_id) for run_id in ids)
    assert (flaky["state_type"], flaky["run_count"]) == ("COMPLETED", 2)
    assert broken["state_type"] == "FAILED"
    assert crashing["state_type"] == "CRASHED"


def test_journey_6_served_flow_picks_up_a_run(prefect: PrefectEnv) -> None:
    script = prefect.flows / "serve_happy.py"
    script.write_text(
        "from flows import happy\nif __name__ == '__main__':\n    happy.serve(name='served')\n"
    )
    served = prefect.start("python", str(script), log="serve.log")
    try:
        wait_for(lambda: "happy/served" in prefect.log("serve.log"), timeout=60)
        result = prefect.python(
            """
            import json
            from prefect.deployments import run_deployment
            run = run_deployment("happy/served", parameters={"x": 2}, timeout=90,
                                 poll_interval=1)
            print(json.dumps(run.state.type.value))
            """,
            timeout=150,
        )
        assert result == "COMPLETED"
    finally:
        stop(served)
    assert_no_server_complaints(prefect.log("serve.log"))


def test_journey_7_cancelling_a_running_run_kills_it(prefect: PrefectEnv, worker: None) -> None:
    deploy(prefect, "sleepy", "sleepy")
    run_id = prefect.python(
        """
        import json
        from prefect.deployments import run_deployment
        print(json.dumps(str(run_deployment("sleepy/sleepy", timeout=0).id)))
        """
    )
    wait_for(lambda: run_state(prefect, run_id)["state_type"] == "RUNNING", timeout=90)
    cancel = httpx.post(
        f"{prefect.server.url}/flow_runs/{run_id}/set_state",
        json={
            "state": {"type": "CANCELLING", "state_details": {"transition_id": str(uuid.uuid4())}}
        },
    )
    assert cancel.json()["status"] == "ACCEPT", cancel.text
    final = wait_final(prefect, run_id, timeout=90)
    assert final["state_type"] == "CANCELLED"


def test_journey_8_cli_lists_what_exists(prefect: PrefectEnv, worker: None) -> None:
    deploy(prefect, "happy", "listed")
    run_name = f"listed-{uuid.uuid4().hex[:8]}"
    created = prefect.cli("deployment", "run", "happy/listed", "--flow-run-name", run_name)
    assert created.returncode == 0, created.stdout + created.stderr
    for args, expected in (
        (("flow-run", "ls"), run_name),
        (("deployment", "ls"), "happy/listed"),
        (("deployment", "inspect", "happy/listed"), "'automations': []"),
        (("work-pool", "ls"), POOL),
    ):
        done = prefect.cli(*args)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert expected in output.replace("\n", ""), output
        assert_no_server_complaints(output)


def _auto_runs(prefect: PrefectEnv, deployment_id: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"{prefect.server.url}/flow_runs/filter",
        json={
            "deployments": {"id": {"any_": [deployment_id]}},
            "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
            "sort": "EXPECTED_START_TIME_ASC",
        },
    )
    response.raise_for_status()
    return [run for run in response.json() if run["auto_scheduled"]]


def test_journey_9_schedules_from_the_sdk_and_cli(prefect: PrefectEnv, worker: None) -> None:
    deployment_id = deploy(prefect, "happy", "nightly", cron="0 9 * * *")
    runs = _auto_runs(prefect, deployment_id)
    assert len(runs) == 3, runs  # Prefect's minimum, created with the deployment
    assert all(run["expected_start_time"].endswith("T09:00:00Z") for run in runs), runs
    assert all("auto-scheduled" in run["tags"] for run in runs)

    listed = prefect.cli("deployment", "schedule", "ls", "happy/nightly")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "cron: 0 9 * * *" in listed.stdout, listed.stdout

    added = prefect.cli(
        "deployment", "schedule", "create", "happy/nightly", "--interval", "3600",
        "--anchor-date", "2026-01-01T00:00:00Z", "--timezone", "UTC",
    )  # fmt: skip
    assert added.returncode == 0, added.stdout + added.stderr
    slots = [run["expected_start_time"] for run in _auto_runs(prefect, deployment_id)]
    # Three daily and three hourly runs, one slot per time: an hourly run may fall on 09:00.
    assert len(slots) == len(set(slots)), slots
    assert len(slots) >= 5, slots

    schedules = prefect.python(
        f"""
        import asyncio, json
        from prefect.client.orchestration import get_client

        async def main():
            async with get_client() as client:
                schedules = await client.read_deployment_schedules({deployment_id!r})
                cron = next(s for s in schedules if hasattr(s.schedule, "cron"))
                await client.update_deployment_schedule({deployment_id!r}, cron.id, active=False)
                await client.pause_deployment({deployment_id!r})
                paused = await client.read_deployment({deployment_id!r})
                await client.resume_deployment({deployment_id!r})
                resumed = await client.read_deployment({deployment_id!r})
                print(json.dumps([paused.paused, resumed.paused,
                                  sorted(s.active for s in resumed.schedules)]))

        asyncio.run(main())
        """
    )
    assert schedules == [True, False, [False, True]]
    runs = _auto_runs(prefect, deployment_id)
    # Only the hourly schedule is active now: its runs stay, the cron's are gone.
    assert runs
    assert all(run["expected_start_time"][14:] == "00:00Z" for run in runs), runs
    assert {run["created_by"]["display_value"] for run in runs} == {"IntervalSchedule"}


def test_journey_10_a_flow_reports_artifacts_and_the_cli_lists_them(
    prefect: PrefectEnv,
) -> None:
    key = f"report-{uuid.uuid4().hex[:8]}"
    reported = prefect.python(
        f"""
        import asyncio, json
        from prefect import flow, task
        from prefect.artifacts import (
            create_link_artifact, create_markdown_artifact, create_progress_artifact,
            create_table_artifact, update_progress_artifact,
        )
        from prefect.client.orchestration import get_client

        @task
        def rows():
            create_table_artifact(table=[{{"a": 1}}, {{"a": 2}}], key={key!r} + "-rows")
            return 2

        @flow
        def reporting():
            progress = create_progress_artifact(0.0)
            create_markdown_artifact("# first", key={key!r})
            update_progress_artifact(progress, 50.0)
            create_markdown_artifact("# second", key={key!r}, description="v2")
            create_link_artifact("https://example.com", link_text="example")
            update_progress_artifact(progress, 100.0)
            return rows()

        async def latest():
            async with get_client() as client:
                return await client.read_latest_artifacts()

        assert reporting() == 2
        print(json.dumps(sorted([a.key, a.data] for a in asyncio.run(latest()))))
        """
    )
    assert reported == [[key, "# second"], [f"{key}-rows", '[{"a": 1}, {"a": 2}]']]
    listed = prefect.cli("artifact", "ls")
    output = listed.stdout + listed.stderr
    assert listed.returncode == 0, output
    assert key in output, output
    assert f"{key}-rows" in output, output
    inspected = prefect.cli("artifact", "inspect", key)
    output = inspected.stdout + inspected.stderr
    assert inspected.returncode == 0, output
    # every version, newest first
    assert "# second" in output, output
    assert "# first" in output, output
    assert_no_server_complaints(output)


def test_journey_11_cli_manages_work_queues(prefect: PrefectEnv, worker: None) -> None:
    queue = f"q-{uuid.uuid4().hex[:6]}"
    for args, expected in (
        (("work-queue", "create", queue, "--pool", POOL, "--limit", "2"), "Created work queue"),
        (("work-queue", "pause", queue, "--pool", POOL), "paused"),
        (("work-queue", "inspect", queue, "--pool", POOL), "is_paused=True"),
        (("work-queue", "resume", queue, "--pool", POOL), "resumed"),
        (("work-queue", "set-concurrency-limit", queue, "5", "--pool", POOL), "5"),
        (("work-queue", "inspect", queue, "--pool", POOL), "concurrency_limit=5"),
        (("work-queue", "ls", "--pool", POOL), queue),
        (("work-queue", "read-runs", queue, "--pool", POOL), "Read 0 runs"),
        (("work-queue", "slots", queue, "--pool", POOL), "Slots"),
        (("work-pool", "slots", POOL), "Slots"),
        (("work-queue", "delete", queue, "--pool", POOL), "Successfully deleted"),
    ):
        done = prefect.cli(*args)
        output = done.stdout + done.stderr
        assert done.returncode == 0, (args, output)
        assert expected in output.replace("\n", ""), (args, output)
        assert_no_server_complaints(output)
    gone = prefect.cli("work-queue", "inspect", queue, "--pool", POOL)
    assert gone.returncode == 1, gone.stdout + gone.stderr


def test_journey_12_a_paused_flow_waits_for_input_and_gets_it(prefect: PrefectEnv) -> None:
    approved = prefect.python(
        """
        import asyncio, json, threading
        from prefect import flow, pause_flow_run
        from prefect.client.orchestration import get_client
        from prefect.input import RunInput

        class Approval(RunInput):
            approver: str
            level: int = 1

        @flow
        def needs_approval():
            approval = pause_flow_run(wait_for_input=Approval, timeout=90)
            return [approval.approver, approval.level]

        result = {}
        runner = threading.Thread(target=lambda: result.update(value=needs_approval()))
        runner.start()

        async def resume_when_paused():
            async with get_client() as client:
                for _ in range(300):
                    paused = [r for r in await client.read_flow_runs()
                              if r.state is not None and r.state.type.value == "PAUSED"]
                    if paused:
                        refused = await client.resume_flow_run(paused[0].id, run_input={})
                        accepted = await client.resume_flow_run(
                            paused[0].id, run_input={"approver": "ann", "level": 2})
                        return [refused.status.value, accepted.status.value]
                    await asyncio.sleep(0.2)
                raise TimeoutError("the flow never paused")

        statuses = asyncio.run(resume_when_paused())
        runner.join(90)
        print(json.dumps([statuses, result.get("value")]))
        """,
        timeout=180,
    )
    assert approved == [["REJECT", "ACCEPT"], ["ann", 2]]
