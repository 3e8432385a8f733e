"""Where the real Prefect 3.9.1 lives for the tests: its own virtualenv (``.venv-prefect``,
made by ``make test``; ``DEPUTY_PREFECT_VENV`` names another). deputy never imports it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PREFECT_VENV = Path(os.environ.get("DEPUTY_PREFECT_VENV", REPO / ".venv-prefect"))
PREFECT_PYTHON = PREFECT_VENV / "bin" / "python"


def require_prefect() -> None:
    """Skip without the virtualenv; on CI, where ``make test`` made it, fail instead."""
    if PREFECT_PYTHON.exists():
        return
    message = f"Prefect 3.9.1 virtualenv missing at {PREFECT_VENV} (make test creates it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
