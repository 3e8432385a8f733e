"""Shared fixtures: a real SQLite file database per test and the app served in process.

The schema is migrated once per session into a template file, which each test copies, so
every test starts from an empty, fully migrated database without paying for migrations.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from deputy.app import create_app
from deputy.db import migrate
from deputy.db.engine import Database
from deputy.settings import Settings


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "deputy.db"

    async def build() -> None:
        database = Database(Settings(database_url=f"sqlite:///{path}"))
        try:
            await migrate.upgrade(database)
        finally:
            await database.dispose()

    asyncio.run(build())
    return path


@pytest.fixture
def settings(tmp_path: Path, template_database: Path) -> Settings:
    database_file = tmp_path / "deputy.db"
    shutil.copyfile(template_database, database_file)
    # Background loops are tested on their own; here they would race the assertions.
    return Settings(
        home=tmp_path, database_url=f"sqlite:///{database_file}", services_enabled=False
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
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
