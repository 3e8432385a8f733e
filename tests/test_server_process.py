"""The real ``deputy server start`` process: start-up, and concurrency across processes."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from live import prefect_socket
from servers import deputy_server, setup_deployment


async def _post_many(
    urls: list[str], path: str, bodies: list[dict[str, Any]], concurrency: int
) -> list[httpx.Response]:
    """POST each body, round-robin over ``urls``, at most ``concurrency`` at once."""
    limit = asyncio.Semaphore(concurrency)
    clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in urls]

    async def post(index: int, body: dict[str, Any]) -> httpx.Response:
        async with limit:
            return await clients[index % len(clients)].post(path, json=body)

    try:
        return await asyncio.gather(*(post(i, b) for i, b in enumerate(bodies)))
    finally:
        for client in clients:
            await client.aclose()


def test_server_starts_and_prints_address_and_database(tmp_path: Path, database_url: str) -> None:
    with deputy_server(tmp_path, database_url) as server:
        assert httpx.get(f"{server.url}/version").json() == "0.8.4"
        banner = server.output()
    assert server.url in banner
    assert make_url(database_url).render_as_string(hide_password=True) in banner
    ready = re.search(r"ready in (\d+\.\d\d)s", banner)
    assert ready is not None, banner
    assert 0 < float(ready[1]) < 60  # seconds since the process started


def test_server_restart_keeps_data_and_skips_applied_migrations(
    tmp_path: Path, database_url: str
) -> None:
    with deputy_server(tmp_path, database_url) as server:
        deployment_id = setup_deployment(server.url)
    with deputy_server(tmp_path, database_url) as server:
        response = httpx.get(f"{server.url}/deployments/{deployment_id}")
    assert response.status_code == 200


def test_concurrent_creates_on_two_processes_sharing_a_database_all_succeed(
    tmp_path: Path, database_url: str
) -> None:
    with (
        deputy_server(tmp_path, database_url) as first,
        deputy_server(tmp_path, database_url) as second,
    ):
        deployment_id = setup_deployment(first.url)
        path = f"/deployments/{deployment_id}/create_flow_run"
        bodies = [{"parameters": {"i": i}} for i in range(300)]
        responses = asyncio.run(_post_many([first.url, second.url], path, bodies, 32))
        statuses = Counter(r.status_code for r in responses)
        count = httpx.post(f"{first.url}/flow_runs/count", json={}).json()
    assert statuses == {201: 300}
    assert count == 300
    created = sorted(r.json()["parameters"]["i"] for r in responses)
    assert created == list(range(300))


def test_idempotency_race_across_processes_creates_exactly_one_run(
    tmp_path: Path, database_url: str
) -> None:
    with (
        deputy_server(tmp_path, database_url) as first,
        deputy_server(tmp_path, database_url) as second,
    ):
        deployment_id = setup_deployment(first.url)
        path = f"/deployments/{deployment_id}/create_flow_run"
        bodies = [{"idempotency_key": "once", "tags": [str(i)]} for i in range(50)]
        responses = asyncio.run(_post_many([first.url, second.url], path, bodies, 50))
        count = httpx.post(f"{first.url}/flow_runs/count", json={}).json()
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 200: 49}
    assert len({r.json()["id"] for r in responses}) == 1
    assert count == 1


def test_pending_race_across_processes_has_exactly_one_winner(
    tmp_path: Path, database_url: str
) -> None:
    with (
        deputy_server(tmp_path, database_url) as first,
        deputy_server(tmp_path, database_url) as second,
    ):
        deployment_id = setup_deployment(first.url)
        run = httpx.post(f"{first.url}/deployments/{deployment_id}/create_flow_run", json={}).json()
        path = f"/flow_runs/{run['id']}/set_state"
        bodies = [{"state": {"type": "PENDING"}} for _ in range(20)]
        responses = asyncio.run(_post_many([first.url, second.url], path, bodies, 20))
        history = httpx.get(f"{first.url}/flow_run_states/", params={"flow_run_id": run["id"]})
    assert Counter(r.json()["status"] for r in responses) == {"ACCEPT": 1, "ABORT": 19}
    assert [s["type"] for s in history.json()] == ["SCHEDULED", "PENDING"]


async def _worker_loop(url: str, pool: str, rounds: int) -> Counter[int]:
    """A worker's calls: poll, claim each run, run it to COMPLETED. Returns status counts."""
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        for _ in range(rounds):
            poll = await client.post(f"/work_pools/{pool}/get_scheduled_flow_runs", json={})
            statuses[poll.status_code] += 1
            for item in poll.json()[:5]:
                run_path = f"/flow_runs/{item['flow_run']['id']}/set_state"
                for state in ("PENDING", "RUNNING", "COMPLETED"):
                    response = await client.post(run_path, json={"state": {"type": state}})
                    statuses[response.status_code] += 1
                    if response.json()["status"] != "ACCEPT":
                        break  # another worker claimed it first
    return statuses


def test_mixed_load_on_two_processes_never_fails(tmp_path: Path, database_url: str) -> None:
    """Creates, polls and transitions at once on one SQLite file: no 5xx, no lost run."""
    with (
        deputy_server(tmp_path, database_url) as first,
        deputy_server(tmp_path, database_url) as second,
    ):
        deployment_id = setup_deployment(first.url)
        path = f"/deployments/{deployment_id}/create_flow_run"
        urls = [first.url, second.url]

        async def load() -> tuple[list[httpx.Response], list[Counter[int]]]:
            creates = _post_many(urls, path, [{} for _ in range(200)], 16)
            workers = [_worker_loop(url, "local", 15) for url in urls for _ in range(2)]
            created, statuses = await asyncio.gather(creates, asyncio.gather(*workers))
            return created, statuses

        created, worker_statuses = asyncio.run(load())
        count = httpx.post(f"{first.url}/flow_runs/count", json={}).json()
        completed = httpx.post(
            f"{first.url}/flow_runs/count",
            json={"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}},
        ).json()
    assert Counter(r.status_code for r in created) == {201: 200}
    totals: Counter[int] = sum(worker_statuses, Counter())
    assert set(totals) <= {200, 201}, totals
    assert count == 200
    assert completed > 0


def test_the_server_process_serves_websockets(tmp_path: Path, database_url: str) -> None:
    """The websocket protocol is loaded at the first upgrade (``deputy.lean``): a Prefect-style
    events socket still authenticates, and what it sends is stored."""
    sent = {
        "occurred": datetime.now(UTC).isoformat(),
        "event": "over.the.socket",
        "resource": {"prefect.resource.id": "socket.test"},
        "id": str(uuid.uuid4()),
    }

    async def send_one(url: str) -> None:
        async with prefect_socket(f"{url.replace('http://', 'ws://')}/events/in") as websocket:
            await websocket.send(json.dumps(sent))

    with deputy_server(tmp_path, database_url) as server:
        asyncio.run(send_one(server.url))
        deadline = time.monotonic() + 10
        found: list[str] = []
        while not found and time.monotonic() < deadline:
            page = httpx.post(
                f"{server.url}/events/filter",
                json={"filter": {"event": {"name": ["over.the.socket"]}}},
            ).json()
            found = [stored["id"] for stored in page["events"]]
            time.sleep(0.05)
    assert found == [sent["id"]]
