"""Starting deputy and the reference Prefect server on loopback, timing their start-up,
pausing the one not under load, and stopping them (only the processes this harness started)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import procs


@dataclass(frozen=True)
class Database:
    """Where both servers keep their data: SQLite files in their folders, or PostgreSQL."""

    name: str  # "sqlite" or "postgres"
    deputy_url: str | None = None  # DEPUTY_DATABASE_URL; None means $DEPUTY_HOME/deputy.db
    prefect_url: str | None = None  # PREFECT_API_DATABASE_CONNECTION_URL; None means SQLite


@dataclass
class Server:
    """One running server process (and its process group, which it leads)."""

    name: str  # "deputy" or "prefect"
    process: subprocess.Popen[bytes]
    base_url: str  # http://127.0.0.1:PORT, what wrk connects to
    log: Path
    startup_seconds: float = 0.0
    paused: bool = False
    #: False (--no-pause) turns pause() into nothing, for checking what pausing changes.
    pausable: bool = True

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def rss_bytes(self) -> int:
        return procs.rss_bytes(self.process.pid)

    def cpu_seconds(self) -> float:
        return procs.cpu_seconds(self.process.pid)

    def pause(self) -> None:
        """SIGSTOP the server so its background loops cost nothing while the other is measured."""
        if not self.pausable:
            return
        os.killpg(self.process.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """SIGTERM the process group this harness started, SIGKILL it if it lingers."""
        if self.process.poll() is not None:
            return
        try:
            self.resume()
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
        except ProcessLookupError:
            self.process.wait(timeout=20)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Prefect's or deputy's settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "DEPUTY_", "VIRTUAL_ENV"))
    }
    env.update(extra)
    return env


def start_deputy(deputy: Path, home: Path, database: Database) -> Server:
    """``deputy server start`` with DEPUTY_HOME=home; returns once /api/health answers."""
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env(DEPUTY_HOME=str(home))
    if database.deputy_url:
        env["DEPUTY_DATABASE_URL"] = database.deputy_url
    port = free_port()
    command = [str(deputy), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return _launch("deputy", command, env, port, home / "server.log", timeout=60)


def start_prefect(venv: Path, home: Path, database: Database) -> Server:
    """``prefect server start`` from its own venv with a throwaway PREFECT_HOME."""
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
    )
    if database.prefect_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database.prefect_url
    port = free_port()
    prefect = venv / "bin" / "prefect"
    command = [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return _launch("prefect", command, env, port, home / "server.log", timeout=180)


def _launch(
    name: str, command: list[str], env: dict[str, str], port: int, log: Path, timeout: float
) -> Server:
    """Start ``command`` in its own session; time it from spawn to a healthy /api/health."""
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    try:
        server.startup_seconds = _wait_healthy(server, started, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_healthy(server: Server, started: float, timeout: float) -> float:
    """Seconds from ``started`` to the first ``true`` from /api/health."""
    deadline = started + timeout
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited early; see {server.log}:\n{_tail(server)}"
                )
            try:
                if client.get(f"{server.api_url}/health").json() is True:
                    return time.perf_counter() - started
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.01)
    raise TimeoutError(f"{server.name} not healthy within {timeout}s:\n{_tail(server)}")


def _tail(server: Server, lines: int = 20) -> str:
    return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:])
