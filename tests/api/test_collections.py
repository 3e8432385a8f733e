"""/collections/views/{view} and /block_types/install_system_block_types, served from
Prefect's distribution (the ``ui`` extra), and the block catalog registered at start.

The bodies are the ones a Prefect 3.9.1 server answers offline, except the two flow views
(Prefect answers 500 there: it cannot reach the registry; deputy answers them empty).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from catalogs import catalog_home, prefect_files, prefect_site_packages
from deputy.app import create_app
from deputy.catalog.files import COLLECTION_BLOCKS, VIEWS_FOLDER
from deputy.settings import Settings

PROTECTED = {"secret", "webhook", "local-file-system"}
PROTECTED_403 = {"detail": "protected block types cannot be deleted."}


def catalog_settings(home: Path, database_url: str, **fields: Any) -> Settings:
    values: dict[str, Any] = {
        "home": catalog_home(home),
        "database_url": database_url,
        "services_enabled": False,
        "block_catalog": True,
        "prefect_path": prefect_site_packages(),
        **fields,
    }
    return Settings(**values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return catalog_settings(tmp_path, database_url)


@pytest.fixture
async def bare_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The API without its lifespan (the database is migrated already): no start-up
    registration running beside the test."""
    app = create_app(settings)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://deputy.test/api"
        ) as client:
            yield client
    finally:
        await app.state.database.dispose()


async def block_types(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.post("/block_types/filter", json={})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


# --- views ---------------------------------------------------------------------------------


async def test_the_worker_view_is_prefects_shipped_file(bare_client: httpx.AsyncClient) -> None:
    response = await bare_client.get("/collections/views/aggregate-worker-metadata")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    shipped = prefect_files().data_file(f"{VIEWS_FOLDER}/aggregate-worker-metadata.json")
    assert response.json() == json.loads(shipped.read_text())


async def test_the_block_view_lists_the_shipped_collections(
    bare_client: httpx.AsyncClient,
) -> None:
    response = await bare_client.get("/collections/views/aggregate-block-metadata")
    assert response.status_code == 200
    shipped = json.loads(prefect_files().data_file(COLLECTION_BLOCKS).read_text())
    assert response.json() == shipped["collections"]


@pytest.mark.parametrize("view", ["aggregate-flow-metadata", "demo-flows"])
async def test_the_flow_views_are_empty(bare_client: httpx.AsyncClient, view: str) -> None:
    response = await bare_client.get(f"/collections/views/{view}")
    assert (response.status_code, response.json()) == (200, {})


@pytest.mark.parametrize(
    ("path", "view"),
    [
        ("nope", "nope"),
        ("aggregate-worker-metadata.json", "aggregate-worker-metadata.json"),
        ("%00", "\x00"),
        ("%F0%9F%90%8D", "\U0001f40d"),
        ("..%2Faggregate-worker-metadata", "../aggregate-worker-metadata"),
        ("x" * 5000, "x" * 5000),
    ],
)
async def test_an_unknown_view_is_prefects_404(
    bare_client: httpx.AsyncClient, path: str, view: str
) -> None:
    response = await bare_client.get(f"/collections/views/{path}")
    assert response.status_code == 404
    if "%2F" not in path:  # an encoded slash may not reach the route at all
        assert response.json() == {"detail": f"View {view} not found in registry"}


async def test_a_lone_surrogate_or_invalid_utf8_is_a_404_not_a_500(
    bare_client: httpx.AsyncClient,
) -> None:
    for path in ("%ED%A0%80", "%FF%FE", "\\ud800"):
        response = await bare_client.get(f"/collections/views/{path}")
        assert response.status_code == 404, (path, response.text)


async def test_without_a_distribution_the_shipped_views_are_missing(
    tmp_path: Path, database_url: str
) -> None:
    empty = tmp_path / "site-packages"
    empty.mkdir()
    app = create_app(catalog_settings(tmp_path, database_url, prefect_path=empty))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://d/api"
        ) as client:
            for view in ("aggregate-worker-metadata", "aggregate-block-metadata"):
                response = await client.get(f"/collections/views/{view}")
                assert response.status_code == 404
                assert response.json() == {"detail": f"Requested content missing for view {view}"}
            flows = await client.get("/collections/views/aggregate-flow-metadata")
            assert (flows.status_code, flows.json()) == (200, {})
            installed = await client.post("/block_types/install_system_block_types")
            assert (installed.status_code, installed.json()) == (200, None)
            assert await block_types(client) == []
    finally:
        await app.state.database.dispose()


# --- install_system_block_types ------------------------------------------------------------


async def test_install_system_block_types_installs_the_protected_types(
    bare_client: httpx.AsyncClient,
) -> None:
    for _ in range(2):  # idempotent, as Prefect's
        response = await bare_client.post("/block_types/install_system_block_types")
        assert (response.status_code, response.json()) == (200, None)
    installed = await block_types(bare_client)
    assert {row["slug"] for row in installed} == PROTECTED
    assert all(row["is_protected"] for row in installed)
    secret = next(row for row in installed if row["slug"] == "secret")
    refused = await bare_client.delete(f"/block_types/{secret['id']}")
    assert (refused.status_code, refused.json()) == (403, PROTECTED_403)
    schemas = await bare_client.post(
        "/block_schemas/filter",
        json={"block_schemas": {"block_type_id": {"any_": [secret["id"]]}}},
    )
    assert schemas.status_code == 200
    assert [(s["version"], s["fields"]["title"]) for s in schemas.json()] == [("3.9.1", "Secret")]


async def test_turned_off_install_system_block_types_installs_nothing(
    tmp_path: Path, database_url: str
) -> None:
    app = create_app(catalog_settings(tmp_path, database_url, block_catalog=False))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://d/api"
        ) as client:
            response = await client.post("/block_types/install_system_block_types")
            assert (response.status_code, response.json()) == (200, None)
            assert await block_types(client) == []
            view = await client.get("/collections/views/aggregate-worker-metadata")
            assert view.status_code == 200  # the views do not depend on the block catalog
    finally:
        await app.state.database.dispose()


# --- registration at start -----------------------------------------------------------------


async def test_the_catalog_is_registered_in_the_background_at_start(settings: Settings) -> None:
    app: FastAPI = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://d/api"
        ) as client,
    ):
        assert (await client.get("/health")).json() is True
        for _ in range(600):
            found = await block_types(client)
            if len(found) == 54:
                break
            await asyncio.sleep(0.05)
        assert len(found) == 54
        assert {row["slug"] for row in found if row["is_protected"]} == PROTECTED
        capabilities = await client.get("/block_capabilities/")
        assert capabilities.status_code == 200
        assert {"notify", "read-path", "write-path"} <= set(capabilities.json())
