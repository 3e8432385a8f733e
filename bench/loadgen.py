"""Driving wrk with the Lua scenarios in lua/, and measuring what wrk itself costs."""

from __future__ import annotations

import json
import math
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
INSTALL_HINT = "wrk is missing: install it with `apt-get install wrk` (Debian/Ubuntu)."


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reported, plus its own CPU time and wall time."""

    elapsed: float  # first request to last response, from the Lua clock
    wall: float  # the whole wrk process
    responses: int
    ops: int  # scenario operations completed (lifecycles); 0 where not counted
    rejected: int  # 2xx answers that were not the expected outcome
    statuses: dict[int, int]
    socket_errors: dict[str, int]
    latency_us: dict[str, int]
    wrk_cpu: float  # user + system seconds of the wrk process

    @property
    def ok(self) -> int:
        """Responses with a 2xx status."""
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)


def find_wrk() -> str:
    """The wrk binary, or SystemExit with the install step."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(INSTALL_HINT)
    return wrk


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).splitlines()[0].strip()


def script_for(name: str, workdir: Path) -> Path:
    """lua/common.lua followed by lua/<name>.lua, written once into ``workdir``."""
    path = workdir / f"{name}.lua"
    if not path.exists():
        path.write_text((LUA / "common.lua").read_text() + "\n" + (LUA / f"{name}.lua").read_text())
    return path


def run_wrk(
    wrk: str,
    base_url: str,
    script: Path,
    *,
    connections: int,
    threads: int,
    seconds: int,
    max_responses: int,
    args: dict[str, str],
) -> WrkResult:
    """One bounded wrk run: at most ``seconds`` and about ``max_responses`` responses."""
    per_thread = max(1, math.ceil(max_responses / threads))
    command = [
        wrk,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=60s",
        f"--script={script}",
        base_url,
        "--",
        f"max={per_thread}",
        *(f"{key}={value}" for key, value in args.items()),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    marker = [line for line in done.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if done.returncode != 0 or not marker:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(marker[-1].removeprefix("BENCH_RESULT "))
    return WrkResult(
        elapsed=data["elapsed"],
        wall=wall,
        responses=data["responses"],
        ops=data["ops"],
        rejected=data["rejected"],
        statuses={int(status): count for status, count in data["statuses"].items()},
        socket_errors={kind: n for kind, n in data["socket_errors"].items() if n},
        latency_us=data["latency_us"],
        wrk_cpu=cpu,
    )
