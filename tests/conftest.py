"""Shared fixtures: a real database per test (SQLite file, or PostgreSQL with ``--db
postgres``) and the app served in process.

The schema is migrated once per session into a template, which each test copies, so every
test starts from an empty, fully migrated database without paying for migrations.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from databases import DEFAULT_POSTGRES_URL, DatabaseBackends
from deputy.app import create_app
from deputy.db.engine import Database
from deputy.services.common import Clock, now
from deputy.settings import Settings

# Prefect's block catalog (the ``ui`` extra) is registered only where a test turns it on
# (tests/catalog/, the catalog journeys): elsewhere it would put Prefect's 54 block types in
# every fresh database, in the apps and in the server processes the tests start.
os.environ.setdefault("DEPUTY_BLOCK_CATALOG", "false")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgres"),
        default=os.environ.get("DEPUTY_TEST_DB", "sqlite"),
        help="database the suite runs on (PostgreSQL at DEPUTY_TEST_POSTGRES_URL)",
    )


@pytest.fixture(scope="session")
def test_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseBackends]:
    databases = DatabaseBackends(
        backend=request.config.getoption("--db"),
        workdir=tmp_path_factory.mktemp("template"),
        postgres_url=os.environ.get("DEPUTY_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL),
    )
    databases.prepare()
    yield databases
    databases.finish()


@pytest.fixture
def database_url(tmp_path: Path, test_databases: DatabaseBackends) -> Iterator[str]:
    url = test_databases.fresh(tmp_path)
    yield url
    test_databases.drop(url)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # Background loops are tested on their own; here they would race the assertions.
    return Settings(home=tmp_path, database_url=database_url, services_enabled=False)


@pytest.fixture
def sqlite_only(test_databases: DatabaseBackends) -> None:
    """For tests of SQLite's own mechanics (file copies, BEGIN IMMEDIATE, group commit)."""
    if test_databases.is_postgres:
        pytest.skip("SQLite-specific")


@pytest.fixture
def clock() -> Clock:
    """The app's clock: the real one; a test module overrides this fixture to stop time."""
    return now


@pytest.fixture
async def app(settings: Settings, clock: Clock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
def database(app: FastAPI) -> Database:
    db: Database = app.state.database
    return db


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://deputy.test/api") as c:
        yield c
