"""End-to-end journeys: the real Prefect 3.9.1 SDK, CLI and workers against a real deputy.

Prefect runs from its own virtualenv (``.venv-prefect``, made by ``make test``), as a user's
would: deputy never imports it. Every Prefect process gets ``PREFECT_API_URL`` pointing at a
``deputy server start`` process on a free loopback port and a throwaway ``PREFECT_HOME``.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from databases import DatabaseBackends
from prefect_venv import PREFECT_PYTHON, PREFECT_VENV, require_prefect
from servers import RunningServer, deputy_server

#: Lines a Prefect process prints when something about the server is wrong.
SERVER_COMPLAINTS = (
    "Error logging to API",
    "Unable to connect to",
    "failed to connect to the events stream",
    "404 Not Found",
    "405 Method Not Allowed",
    "500 Internal Server Error",
    "503 Service Unavailable",
    "retryable status code",
    "HTTPStatusError",
)


@dataclass
class PrefectEnv:
    """Runs Prefect commands and scripts against one deputy server."""

    server: RunningServer
    home: Path
    flows: Path

    @property
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PREFECT_", "DEPUTY_", "VIRTUAL_ENV"))
        }
        env.update(
            PREFECT_API_URL=self.server.url,
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
            PREFECT_WORKER_PREFETCH_SECONDS="5",
            PREFECT_RUNNER_POLL_FREQUENCY="1",
            PREFECT_LOGGING_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            COLUMNS="400",  # rich tables print whole names
        )
        return env

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PREFECT_VENV / "bin" / "prefect"), *args],
            env=self.env,
            cwd=self.flows,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str, timeout: float = 120) -> Any:
        """Run ``code`` in the Prefect venv; its last stdout line is parsed as JSON."""
        done = subprocess.run(
            [str(PREFECT_PYTHON), "-c", textwrap.dedent(code)],
            env=self.env,
            cwd=self.flows,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert_no_server_complaints(output)
        return json.loads(done.stdout.strip().splitlines()[-1])

    def start(self, *args: str, log: str) -> subprocess.Popen[str]:
        """A long-running Prefect process (a worker, a served flow); stop it with ``stop``."""
        # The child writes to its own copy of the descriptor; ours is closed once it started.
        with (self.home / log).open("w") as out:
            return subprocess.Popen(
                [str(PREFECT_VENV / "bin" / args[0]), *args[1:]],
                env=self.env,
                cwd=self.flows,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def log(self, name: str) -> str:
        return (self.home / name).read_text()


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def assert_no_server_complaints(output: str) -> None:
    complaints = [line for line in output.splitlines() if any(c in line for c in SERVER_COMPLAINTS)]
    assert not complaints, "\n".join(complaints)


def wait_for(predicate: Any, *, timeout: float, interval: float = 0.25) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


FLOWS = """
import os
import time

from prefect import flow, task, get_run_logger


@task
def double(x: int) -> int:
    get_run_logger().info("doubling %s", x)
    return 2 * x


@flow(log_prints=True)
def happy(x: int = 1) -> int:
    total = sum(double(i) for i in range(x))
    print(f"happy total {total}")
    return total


@flow(retries=1, retry_delay_seconds=0)
def flaky(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return "second attempt works"


@flow
def broken() -> None:
    raise ValueError("always fails")


@flow
def crashing() -> None:
    os._exit(17)


@flow
def sleepy(seconds: float = 120) -> None:
    print("sleeping")
    time.sleep(seconds)
"""


@contextmanager
def prefect_environment(
    tmp_path_factory: pytest.TempPathFactory, test_databases: DatabaseBackends, **settings: str
) -> Iterator[PrefectEnv]:
    """A fresh deputy server (extra ``DEPUTY_*`` ``settings``) and Prefect's environment."""
    require_prefect()
    home = tmp_path_factory.mktemp("prefect-home")
    flows = tmp_path_factory.mktemp("flows")
    (flows / "flows.py").write_text(FLOWS)
    deputy_home = tmp_path_factory.mktemp("deputy")
    database_url = test_databases.fresh(deputy_home)
    try:
        with deputy_server(deputy_home, database_url, timeout=20.0, **settings) as server:
            yield PrefectEnv(server=server, home=home, flows=flows)
    finally:
        test_databases.drop(database_url)


@pytest.fixture(scope="module")
def prefect(
    tmp_path_factory: pytest.TempPathFactory, test_databases: DatabaseBackends
) -> Iterator[PrefectEnv]:
    """Prefect's environment against one deputy server on the suite's database backend."""
    with prefect_environment(tmp_path_factory, test_databases) as env:
        yield env
