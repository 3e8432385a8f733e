"""Several real server processes on one database: crashes and database restarts.

On SQLite the replicas share one file; on PostgreSQL (``--db postgres``) one database, which
is the scale-out set-up (docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from databases import DatabaseBackends
from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.settings import Settings
from live import prefect_socket, receive
from servers import deputy_server, setup_deployment


async def _load(
    urls: list[str],
    path: str,
    count: int,
    acknowledged: list[str],
    halfway: asyncio.Event | None = None,
) -> None:
    """Creates with unique idempotency keys, spread over ``urls``; records acknowledged keys
    and sets ``halfway`` once a quarter of them are acknowledged.

    Connection errors (the killed replica) are expected and not recorded.
    """
    clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
    limit = asyncio.Semaphore(16)

    async def one(index: int) -> None:
        key = f"key-{index}"
        async with limit:
            try:
                response = await clients[index % len(clients)].post(
                    path, json={"idempotency_key": key}
                )
            except httpx.HTTPError:
                return
            if response.status_code in (200, 201):
                acknowledged.append(key)
                if halfway is not None and len(acknowledged) >= count // 4:
                    halfway.set()

    try:
        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        for client in clients:
            await client.aclose()


async def _stored(database_url: str) -> tuple[set[str], int, int]:
    """Idempotency keys of stored runs, runs without a state, and states without a run."""
    database = Database(Settings(database_url=database_url))
    try:
        async with database.read() as conn:
            keys = set((await conn.execute(select(t.flow_run.c.idempotency_key))).scalars())
            stateless = (
                await conn.execute(
                    select(func.count())
                    .select_from(t.flow_run)
                    .outerjoin(t.flow_run_state, t.flow_run_state.c.id == t.flow_run.c.state_id)
                    .where(t.flow_run_state.c.id.is_(None))
                )
            ).scalar_one()
            orphans = (
                await conn.execute(
                    select(func.count())
                    .select_from(t.flow_run_state)
                    .outerjoin(t.flow_run, t.flow_run.c.id == t.flow_run_state.c.flow_run_id)
                    .where(t.flow_run.c.id.is_(None))
                )
            ).scalar_one()
        return keys, int(stateless), int(orphans)
    finally:
        await database.dispose()


def test_a_replica_killed_mid_load_loses_no_acknowledged_run(
    tmp_path: Path, database_url: str
) -> None:
    with deputy_server(tmp_path, database_url) as survivor:
        deployment_id = setup_deployment(survivor.url)
        path = f"/deployments/{deployment_id}/create_flow_run"
        acknowledged: list[str] = []
        with deputy_server(tmp_path, database_url) as victim:

            async def load_and_kill() -> None:
                halfway = asyncio.Event()
                load = asyncio.create_task(
                    _load([survivor.url, victim.url], path, 600, acknowledged, halfway)
                )
                await asyncio.wait_for(halfway.wait(), timeout=60)
                os.kill(victim.process.pid, signal.SIGKILL)
                await load

            asyncio.run(load_and_kill())
        keys, stateless, orphans = asyncio.run(_stored(database_url))
        # The survivor still serves after its peer died.
        assert httpx.get(f"{survivor.url}/health").json() is True
    assert len(acknowledged) >= 150
    assert set(acknowledged) <= keys  # every acknowledged run was committed
    assert (stateless, orphans) == (0, 0)  # nothing half-written


def _postgres_dir() -> Path:
    directory = os.environ.get("DEPUTY_TEST_POSTGRES_DIR")
    if not directory:
        pytest.skip("needs the cluster started by .ci/postgres.sh (DEPUTY_TEST_POSTGRES_DIR)")
    return Path(directory)


def _restart_postgres(directory: Path) -> None:
    binary = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    command = [
        str(binary),
        "-D",
        str(directory / "data"),
        "-l",
        str(directory / "server.log"),
        "-m",
        "fast",
        "-w",
        "restart",
    ]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    # No pipes: the restarted server would inherit them and keep them open.
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
    )


def test_a_database_restart_answers_503_then_recovers_without_a_server_restart(
    tmp_path: Path, database_url: str, test_databases: DatabaseBackends
) -> None:
    if not test_databases.is_postgres:
        pytest.skip("a PostgreSQL server restart")
    directory = _postgres_dir()
    with deputy_server(tmp_path, database_url) as server:
        deployment_id = setup_deployment(server.url)
        path = f"{server.url}/deployments/{deployment_id}/create_flow_run"
        statuses: list[int] = []
        retry_after: set[str] = set()

        async def requests_through_restart() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                restart = asyncio.create_task(asyncio.to_thread(_restart_postgres, directory))
                while not restart.done():
                    response = await client.post(path, json={})
                    statuses.append(response.status_code)
                    if response.status_code == 503:
                        retry_after.add(response.headers.get("retry-after", ""))
                    await asyncio.sleep(0.005)
                await restart

        asyncio.run(requests_through_restart())
        after = [httpx.post(path, json={}).status_code for _ in range(5)]
    assert set(statuses) <= {201, 503}, statuses
    assert "" not in retry_after
    assert after == [201] * 5


def test_a_subscriber_on_one_replica_hears_a_cancellation_made_through_another(
    tmp_path: Path, database_url: str
) -> None:
    """The worker's cancellation observer may be connected to any replica."""
    with (
        deputy_server(tmp_path, database_url) as listening,
        deputy_server(tmp_path, database_url) as acting,
    ):
        deployment_id = setup_deployment(acting.url)
        run = httpx.post(f"{acting.url}/deployments/{deployment_id}/create_flow_run", json={})
        run_id = run.json()["id"]
        window = {
            "since": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat(),
            "until": (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat(),
        }
        subscription = {
            "type": "filter",
            "filter": {"event": {"prefix": ["prefect.flow-run."]}, "occurred": window},
            "backfill": False,
        }

        async def listen_while_cancelling() -> list[str]:
            url = listening.url.replace("http://", "ws://") + "/events/out"
            async with prefect_socket(url) as websocket:
                await websocket.send(json.dumps(subscription))
                await asyncio.sleep(0.5)  # subscribed before the cancellation happens
                async with httpx.AsyncClient() as client:
                    await client.post(
                        f"{acting.url}/flow_runs/{run_id}/set_state",
                        json={"state": {"type": "CANCELLING"}},
                    )
                seen: list[str] = []
                async with asyncio.timeout(15):
                    while "prefect.flow-run.Cancelled" not in seen:
                        message = await receive(websocket)
                        if message.get("type") == "event":
                            seen.append(message["event"]["event"])
                return seen

        seen = asyncio.run(listen_while_cancelling())
    assert "prefect.flow-run.Cancelled" in seen


async def _slot_counts(database_url: str) -> tuple[int, int]:
    """Auto-scheduled runs, and slots (deployment, time) holding more than one of them."""
    database = Database(Settings(database_url=database_url))
    run = t.flow_run.c
    try:
        async with database.read() as conn:
            total = (
                await conn.execute(
                    select(func.count()).select_from(t.flow_run).where(run.auto_scheduled)
                )
            ).scalar_one()
            repeated = (
                await conn.execute(
                    select(func.count()).select_from(
                        select(run.deployment_id)
                        .where(run.auto_scheduled)
                        .group_by(run.deployment_id, run.expected_start_time)
                        .having(func.count() > 1)
                        .subquery()
                    )
                )
            ).scalar_one()
        return int(total), int(repeated)
    finally:
        await database.dispose()


def test_two_replicas_scheduling_and_editing_at_once_make_one_run_per_slot(
    tmp_path: Path, database_url: str
) -> None:
    """Both replicas run the scheduler every 0.2 s on every-second schedules (so each pass has
    work) while schedules are edited through both: no duplicate, no failed pass, no 5xx."""
    fast = functools.partial(
        deputy_server, scheduler_interval_seconds="0.2", scheduler_min_runs="20"
    )
    with fast(tmp_path, database_url) as first, fast(tmp_path, database_url) as second:
        urls = [first.url, second.url]
        with httpx.Client(base_url=first.url, timeout=30) as client:
            flow = client.post("/flows/", json={"name": "ticking"}).json()
            deployments = [
                client.post(
                    "/deployments/",
                    json={
                        "name": f"every-second-{index}",
                        "flow_id": flow["id"],
                        "schedules": [{"schedule": {"interval": 1}, "slug": "tick"}],
                    },
                ).json()
                for index in range(4)
            ]

        async def edit() -> list[int]:
            statuses: list[int] = []
            clients = [httpx.AsyncClient(base_url=url, timeout=30) for url in urls]
            try:
                for round_ in range(15):
                    for index, deployment in enumerate(deployments):
                        body = {
                            "schedules": [
                                {"slug": "tick", "schedule": {"interval": 1 + round_ % 2}}
                            ]
                        }
                        client = clients[(round_ + index) % 2]
                        response = await client.patch(f"/deployments/{deployment['id']}", json=body)
                        statuses.append(response.status_code)
                    await asyncio.sleep(0.1)
            finally:
                for client in clients:
                    await client.aclose()
            return statuses

        statuses = asyncio.run(edit())
        total, repeated = asyncio.run(_slot_counts(database_url))
        logs = first.output() + second.output()
    assert set(statuses) == {204}
    assert total >= 4 * 20
    assert repeated == 0
    assert "pass failed" not in logs, logs


def test_two_replicas_saving_the_same_new_block_at_once_make_one_type_one_schema(
    tmp_path: Path, database_url: str
) -> None:
    """As two workers starting together: the same new block type and schema saved through
    both replicas at once, round after round. Every answer is a 2xx, one type and one schema
    exist per round; the same document name is one 201 and one 409; a secret saved through
    one replica reads back in clear through the other (the replicas share one key)."""
    rounds = 12
    with (
        deputy_server(tmp_path, database_url) as first,
        deputy_server(tmp_path, database_url) as second,
    ):

        async def race() -> tuple[list[int], list[int], list[int], list[str]]:
            clients = [
                httpx.AsyncClient(base_url=url, timeout=30) for url in (first.url, second.url)
            ]
            type_statuses: list[int] = []
            schema_statuses: list[int] = []
            document_statuses: list[int] = []
            schema_ids: list[str] = []
            try:
                for round_ in range(rounds):
                    slug = f"race-{round_}"
                    answers = await asyncio.gather(
                        *(
                            c.post("/block_types/", json={"name": slug, "slug": slug})
                            for c in clients
                        )
                    )
                    type_statuses += [a.status_code for a in answers]
                    type_id = answers[0].json()["id"]
                    fields = {
                        "title": slug,
                        "type": "object",
                        "properties": {"token": {"type": "string", "format": "password"}},
                        "secret_fields": ["token"],
                    }
                    answers = await asyncio.gather(
                        *(
                            c.post(
                                "/block_schemas/", json={"block_type_id": type_id, "fields": fields}
                            )
                            for c in clients
                        )
                    )
                    schema_statuses += [a.status_code for a in answers]
                    schema_ids += [a.json()["id"] for a in answers]
                    document = {
                        "name": "shared",
                        "block_type_id": type_id,
                        "block_schema_id": answers[0].json()["id"],
                        "data": {"token": f"secret-{round_}"},
                    }
                    answers = await asyncio.gather(
                        *(c.post("/block_documents/", json=document) for c in clients)
                    )
                    document_statuses += sorted(a.status_code for a in answers)
                    created = next(a.json() for a in answers if a.status_code == 201)
                    other = clients[1 - [a.status_code for a in answers].index(201)]
                    read = await other.get(
                        f"/block_documents/{created['id']}", params={"include_secrets": "true"}
                    )
                    assert read.json()["data"] == {"token": f"secret-{round_}"}
            finally:
                for client in clients:
                    await client.aclose()
            return type_statuses, schema_statuses, document_statuses, schema_ids

        type_statuses, schema_statuses, document_statuses, schema_ids = asyncio.run(race())
        with httpx.Client(base_url=first.url, timeout=30) as client:
            types = client.post("/block_types/filter", json={}).json()
            schemas = client.post("/block_schemas/filter", json={}).json()
    assert set(type_statuses) <= {200, 201}
    assert type_statuses.count(201) == rounds
    assert set(schema_statuses) <= {200, 201}
    assert schema_statuses.count(201) == rounds
    assert document_statuses == [201, 409] * rounds
    assert sorted(t["slug"] for t in types) == sorted(f"race-{r}" for r in range(rounds))
    assert len(schemas) == rounds
    assert len(set(schema_ids)) == rounds  # both answers of a round name the one schema
