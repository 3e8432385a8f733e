"""The Alembic history builds exactly the schema ``db/tables.py`` describes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from deputy.db import migrate
from deputy.db.engine import Database
from deputy.db.tables import metadata
from deputy.settings import Settings


def _database(tmp_path: Path) -> Database:
    return Database(Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}"))


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_upgrading_an_empty_database_matches_the_tables(database_url: str) -> None:
    """On the suite's backend: the test database was migrated from empty by the history."""
    database = Database(Settings(database_url=database_url))
    try:
        await migrate.upgrade(database)
        differences = await database.run_sync(_differences)
        assert differences == []
        assert await migrate.current_revision(database) == migrate.head_revision()
    finally:
        await database.dispose()


async def test_downgrade_to_base_removes_every_table_and_reset_rebuilds(tmp_path: Path) -> None:
    database = _database(tmp_path)
    try:
        await migrate.upgrade(database)
        await database.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), "base"))
        tables = await database.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) <= {"alembic_version"}
        await migrate.reset(database)
        tables = await database.run_sync(lambda c: inspect(c).get_table_names())
        assert set(metadata.tables) <= set(tables)
    finally:
        await database.dispose()


async def test_upgrade_at_head_is_a_no_op(tmp_path: Path) -> None:
    database = _database(tmp_path)
    try:
        await migrate.upgrade(database)
        await migrate.upgrade(database)
        assert await migrate.current_revision(database) == migrate.head_revision()
    finally:
        await database.dispose()


async def test_replicas_migrating_at_once_do_it_once(tmp_path: Path, database_url: str) -> None:
    """Several processes starting together on one fresh database all end up at head."""
    databases = [Database(Settings(database_url=database_url)) for _ in range(4)]
    try:
        await database_reset(databases[0])
        await asyncio.gather(*(migrate.upgrade(d) for d in databases))
        assert await migrate.current_revision(databases[0]) == migrate.head_revision()
    finally:
        for database in databases:
            await database.dispose()


async def database_reset(database: Database) -> None:
    """Back to an empty database (no tables, no revision)."""
    await database.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), "base"))
    await database.run_sync(lambda c: c.exec_driver_sql("DROP TABLE IF EXISTS alembic_version"))


def test_head_revision_read_from_the_files_is_alembics_head() -> None:
    """Start-up reads the head without Alembic; it must agree with Alembic's own answer."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert migrate.head_revision() == script.get_current_head()
