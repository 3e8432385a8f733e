"""Setting up the same data on each server through its API (httpx, not timed)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

#: The bulk endpoint's limit per call, on both servers.
BULK_SIZE = 100
BULK_ATTEMPTS = 10
PARAMETER_SCHEMA = {
    "title": "Parameters",
    "type": "object",
    "properties": {
        "x": {"title": "x", "type": "integer", "position": 0},
        "day": {"title": "day", "type": "string", "position": 1},
    },
    "required": ["x"],
}


@dataclass(frozen=True)
class Seeded:
    """What the scenarios need to know about the seeded data."""

    create_deployment: str  # runs are created from this one (pool bench-create)
    poll_deployment: str  # holds the seeded scheduled runs (pool bench-poll)
    poll_pool: str
    scheduled_before: str  # the poll's horizon: after every seeded run
    runs: int
    replay_keys: int


def seed(api_url: str, runs: int, replay_keys: int, first_start: datetime) -> Seeded:
    """A flow, two pools and deployments, ``runs`` SCHEDULED runs from ``first_start`` on
    (one a second, in the future so no "late runs" loop touches them), and ``replay_keys``
    runs with idempotency keys replay-0.. for the idempotency scenario."""
    with httpx.Client(base_url=api_url, timeout=300) as client:
        flow = _post(client, "/flows/", {"name": "bench"})["id"]
        for pool in ("bench-create", "bench-poll"):
            _post(client, "/work_pools/", {"name": pool, "type": "process"})
        create = _deployment(client, flow, "create", "bench-create")
        poll = _deployment(client, flow, "poll", "bench-poll")
        scheduled = [
            {
                "state": {
                    "type": "SCHEDULED",
                    "name": "Scheduled",
                    "state_details": {"scheduled_time": _iso(first_start + timedelta(seconds=i))},
                },
                "parameters": {"x": i},
            }
            for i in range(runs)
        ]
        _bulk(client, poll, scheduled)
        keyed = [
            {"parameters": {"x": i}, "idempotency_key": f"replay-{i}"} for i in range(replay_keys)
        ]
        _bulk(client, create, keyed)
        counted = _post(client, "/flow_runs/count", {"deployments": {"id": {"any_": [poll]}}})
        if counted != runs:
            raise RuntimeError(f"seeded {counted} scheduled runs, expected {runs}")
    horizon = first_start + timedelta(seconds=runs) + timedelta(days=1)
    return Seeded(create, poll, "bench-poll", _iso(horizon), runs, replay_keys)


def _deployment(client: httpx.Client, flow: str, name: str, pool: str) -> str:
    body = {
        "name": name,
        "flow_id": flow,
        "work_pool_name": pool,
        "parameter_openapi_schema": PARAMETER_SCHEMA,
        "parameters": {"x": 0, "day": "2026-11-30"},
        "enforce_parameter_schema": True,
    }
    deployment: str = _post(client, "/deployments/", body)["id"]
    return deployment


def _bulk(client: httpx.Client, deployment: str, items: list[dict[str, Any]]) -> None:
    """Create runs through POST /deployments/{id}/create_flow_run/bulk, 100 a call; items
    that fail (Prefect's SQLite answers "database is locked" inside the bulk) are sent again."""
    path = f"/deployments/{deployment}/create_flow_run/bulk"
    for start in range(0, len(items), BULK_SIZE):
        pending = items[start : start + BULK_SIZE]
        for _ in range(BULK_ATTEMPTS):
            results = _post(client, path, pending)["results"]
            pending = [
                item
                for item, result in zip(pending, results, strict=True)
                if result["status"] != "CREATED"
            ]
            if not pending:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"bulk create failed for {len(pending)} runs: {results[:1]}")


def _post(client: httpx.Client, path: str, body: Any, attempts: int = 20) -> Any:
    """POST, retrying on 503 (Prefect's SQLite answers it when busy)."""
    for _ in range(attempts):
        response = client.post(path, json=body)
        if response.status_code != 503:
            response.raise_for_status()
            return response.json()
        time.sleep(0.5)
    response.raise_for_status()
    return None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
