"""Starting real ``deputy server start`` processes on free loopback ports, for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def deputy_server(
    home: Path,
    database_url: str | None = None,
    *,
    host: str = "127.0.0.1",
    timeout: float = 20.0,
    **settings: str,
) -> Iterator[RunningServer]:
    """A real server process with its files under ``home`` and its database at
    ``database_url`` (default: SQLite in ``home``), listening on ``host`` (reached through
    127.0.0.1); stopped (by its PID) afterwards.
    ``settings`` are extra ``DEPUTY_*`` variables, e.g. ``LATE_RUNS_INTERVAL_SECONDS="1"``."""
    port = free_port()
    log = home / f"server-{port}.log"
    env = {**os.environ, "DEPUTY_HOME": str(home)}
    env.pop("DEPUTY_DATABASE_URL", None)
    if database_url is not None:
        env["DEPUTY_DATABASE_URL"] = database_url
    env.update({f"DEPUTY_{name.upper()}": value for name, value in settings.items()})
    deputy = Path(sys.executable).with_name("deputy")
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(deputy), "server", "start", "--host", host, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            text=True,
        )
    server = RunningServer(f"http://127.0.0.1:{port}/api", process, log)
    try:
        _wait_healthy(server, timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_healthy(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"deputy exited early:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).json() is True:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"deputy was not healthy within {timeout}s:\n{server.output()}")


def setup_deployment(url: str) -> str:
    """A flow, a process pool and a deployment on it; returns the deployment id."""
    with httpx.Client(base_url=url) as client:
        flow = client.post("/flows/", json={"name": "etl"}).json()
        client.post("/work_pools/", json={"name": "local", "type": "process"})
        deployment = client.post(
            "/deployments/",
            json={"name": "nightly", "flow_id": flow["id"], "work_pool_name": "local"},
        ).json()
        return str(deployment["id"])
