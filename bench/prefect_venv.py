"""Finding, or creating on request, the reference Prefect 3.9.1 virtualenv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_VENV = REPO / "bench" / ".venv-prefect"
#: Made by ``make test`` for the end-to-end journeys; reused when present.
TEST_VENV = REPO / ".venv-prefect"
CONSTRAINTS = REPO / "tests" / "e2e" / "prefect-constraints.txt"
PREFECT_VERSION = "3.9.1"


def prefect_binary(venv: Path) -> Path:
    """The ``prefect`` command inside ``venv``."""
    return venv / "bin" / "prefect"


def find_prefect_venv(explicit: Path | None = None) -> Path | None:
    """The first usable venv: ``explicit``, then bench/.venv-prefect, then .venv-prefect."""
    candidates = [explicit] if explicit else [BENCH_VENV, TEST_VENV]
    for venv in candidates:
        if venv is not None and prefect_binary(venv).exists():
            return venv
    return None


def create_prefect_venv(venv: Path = BENCH_VENV) -> Path:
    """Create ``venv`` with prefect==3.9.1 pinned by the e2e constraints; returns it."""
    print(f"creating {venv} with prefect=={PREFECT_VERSION} (a minute or two)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"prefect=={PREFECT_VERSION}", "-c", str(CONSTRAINTS)], check=True)
    return venv


def installed_version(venv: Path) -> str:
    """The Prefect version installed in ``venv`` (read without importing Prefect here)."""
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('prefect'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


if __name__ == "__main__":
    print(create_prefect_venv())
