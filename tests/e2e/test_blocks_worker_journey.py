"""A flow run executed by a process worker loads a Secret block saved with the real Prefect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.conftest import PrefectEnv, assert_no_server_complaints, stop, wait_for

POOL = "blocks-pool"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

BLOCK_FLOWS = """
from pathlib import Path

from prefect import flow
from prefect.blocks.system import Secret


@flow
def uses_secret(block: str, out: str) -> int:
    value = Secret.load(block).get()
    Path(out).write_text(value)
    return len(value)
"""


@pytest.fixture(scope="module")
def worker(prefect: PrefectEnv) -> Iterator[None]:
    """A process worker on this module's pool."""
    (prefect.flows / "block_flows.py").write_text(BLOCK_FLOWS)
    created = prefect.cli("work-pool", "create", POOL, "--type", "process")
    assert created.returncode == 0, created.stdout + created.stderr
    process = prefect.start(
        "prefect", "worker", "start", "--pool", POOL, "--type", "process", log="blocks-worker.log"
    )
    try:
        wait_for(lambda: "started" in prefect.log("blocks-worker.log"), timeout=60)
        yield
    finally:
        stop(process)
    assert_no_server_complaints(prefect.log("blocks-worker.log"))


def flow_run(prefect: PrefectEnv, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{prefect.server.url}/flow_runs/{run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def test_a_worker_run_loads_a_secret_block(
    prefect: PrefectEnv, worker: None, tmp_path: Path
) -> None:
    out = tmp_path / "secret.txt"
    run_id = prefect.python(
        f"""
        import json
        from prefect import flow
        from prefect.blocks.system import Secret
        from prefect.deployments import run_deployment

        Secret(value="worker-sees-this").save("worker-secret")
        flow.from_source(source={str(prefect.flows)!r},
                         entrypoint="block_flows.py:uses_secret").deploy(
            name="secret-user", work_pool_name={POOL!r}, print_next_steps=False)
        run = run_deployment("uses-secret/secret-user", timeout=0,
                             parameters={{"block": "worker-secret", "out": {str(out)!r}}})
        print(json.dumps(str(run.id)))
        """
    )
    final = wait_for(
        lambda: (run := flow_run(prefect, run_id))["state_type"] in FINAL and run, timeout=90
    )
    assert final["state_type"] == "COMPLETED", final["state"]
    assert out.read_text() == "worker-sees-this"
