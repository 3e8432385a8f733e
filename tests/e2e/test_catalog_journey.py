"""The catalogs of a fresh deputy with Prefect's distribution beside it (the ``ui`` extra),
compared with a real Prefect 3.9.1 server started for the purpose: the same block types with
the same schemas and checksums, and ``prefect work-pool create --type docker`` /
``--type kubernetes`` giving pools with the same base job template.

The Prefect server runs from ``.venv-prefect`` on a free loopback port with a throwaway
``PREFECT_HOME`` (and SQLite); deputy runs on the suite's database, starting with no cached
catalog, so its first-start generation is part of the journey.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalogs import prefect_site_packages
from databases import DatabaseBackends
from e2e.conftest import PrefectEnv, wait_for
from prefect_venv import PREFECT_VENV, require_prefect
from servers import RunningServer, deputy_server, free_port

TYPE_FIELDS = (
    "name",
    "slug",
    "is_protected",
    "logo_url",
    "documentation_url",
    "description",
    "code_example",
)


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A fresh Prefect 3.9.1 server (its own process group, stopped by its id)."""
    require_prefect()
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "DEPUTY_", "VIRTUAL_ENV"))
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
    )
    command = [
        str(PREFECT_VENV / "bin" / "prefect"),
        *("server", "start", "--host", "127.0.0.1", "--port", str(port)),
    ]
    with (home / "server.log").open("w") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
        )
    server = RunningServer(f"http://127.0.0.1:{port}/api", process, home / "server.log")
    try:
        wait_for(lambda: _healthy(server), timeout=240, interval=0.5)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _healthy(server: RunningServer) -> bool:
    if server.process.poll() is not None:
        raise RuntimeError(server.output()[-3000:])
    try:
        return httpx.get(f"{server.url}/health", timeout=2).json() is True
    except (httpx.HTTPError, ValueError):
        return False


@pytest.fixture(scope="module")
def deputy(
    tmp_path_factory: pytest.TempPathFactory, test_databases: DatabaseBackends
) -> Iterator[RunningServer]:
    """A fresh deputy with Prefect's distribution and no catalog cached yet."""
    require_prefect()
    home = tmp_path_factory.mktemp("deputy-catalog")
    database_url = test_databases.fresh(home)
    try:
        with deputy_server(
            home,
            database_url,
            block_catalog="true",
            prefect_path=str(prefect_site_packages()),
        ) as server:
            yield server
    finally:
        test_databases.drop(database_url)


def read_all(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with httpx.Client(base_url=url, timeout=30) as client:
        types = client.post("/block_types/filter", json={})
        schemas = client.post("/block_schemas/filter", json={})
    assert types.status_code == schemas.status_code == 200, (types.text, schemas.text)
    return types.json(), schemas.json()


def by_slug(types: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["slug"]: {key: row[key] for key in TYPE_FIELDS} for row in types}


def by_checksum(schemas: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in schemas:
        key = (row["block_type"]["slug"], row["checksum"], row["version"])
        assert key not in found, key
        # Prefect stores a block's capabilities from a frozenset: their order is random.
        found[key] = {"fields": row["fields"], "capabilities": sorted(row["capabilities"])}
    return found


def test_a_fresh_deputy_offers_the_block_catalog_of_a_fresh_prefect(
    prefect_server: RunningServer, deputy: RunningServer
) -> None:
    started = time.monotonic()
    # Registered in one transaction, in the background once generated: all or nothing.
    wait_for(lambda: read_all(deputy.url)[0], timeout=180, interval=0.5)
    generated_in = time.monotonic() - started
    prefect_types, prefect_schemas = read_all(prefect_server.url)
    deputy_types, deputy_schemas = read_all(deputy.url)

    assert len(prefect_types) == 54
    assert by_slug(deputy_types) == by_slug(prefect_types)
    assert {row["slug"] for row in deputy_types if row["is_protected"]} == {
        "secret",
        "webhook",
        "local-file-system",
    }
    assert len(deputy_schemas) == len(prefect_schemas) == 64
    assert by_checksum(deputy_schemas) == by_checksum(prefect_schemas)
    # The block types come back in Prefect's order (by name).
    assert [row["slug"] for row in deputy_types] == [row["slug"] for row in prefect_types]
    assert "Traceback" not in deputy.output(), deputy.output()
    print(f"deputy's catalog was in {generated_in:.1f} s after the test began")


def test_the_views_match_prefects(prefect_server: RunningServer, deputy: RunningServer) -> None:
    for view in ("aggregate-worker-metadata", "nope"):
        ours = httpx.get(f"{deputy.url}/collections/views/{view}", timeout=10)
        theirs = httpx.get(f"{prefect_server.url}/collections/views/{view}", timeout=10)
        assert (ours.status_code, ours.json()) == (theirs.status_code, theirs.json())


@pytest.mark.parametrize("pool_type", ["docker", "kubernetes"])
def test_work_pool_create_takes_the_base_job_template_of_prefect(
    prefect_server: RunningServer,
    deputy: RunningServer,
    tmp_path: Path,
    pool_type: str,
) -> None:
    templates = []
    for name, server in (("deputy", deputy), ("prefect", prefect_server)):
        home = tmp_path / f"{name}-home"
        home.mkdir()
        env = PrefectEnv(server=server, home=home, flows=tmp_path)
        created = env.cli("work-pool", "create", f"{pool_type}-pool", "--type", pool_type)
        assert created.returncode == 0, created.stdout + created.stderr
        assert f"Created work pool '{pool_type}-pool'" in created.stdout, created.stdout
        pool = httpx.get(f"{server.url}/work_pools/{pool_type}-pool", timeout=10).json()
        assert pool["type"] == pool_type
        templates.append(pool["base_job_template"])
    ours, prefects = templates
    assert ours == prefects
    assert set(ours) == {"job_configuration", "variables"}
    assert "image" in ours["variables"]["properties"]


def test_prefect_block_type_ls_lists_the_catalog(deputy: RunningServer, tmp_path: Path) -> None:
    env = PrefectEnv(server=deputy, home=tmp_path, flows=tmp_path)
    listed = env.cli("block", "type", "ls")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for slug in (
        "aws-credentials",
        "gcs-bucket",
        "slack-webhook",
        "secret",
        "kubernetes-cluster-config",
    ):
        assert slug in listed.stdout
    inspected = env.cli("block", "type", "inspect", "secret")
    assert inspected.returncode == 0, inspected.stdout + inspected.stderr
