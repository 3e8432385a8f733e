"""The Alembic history builds exactly the schema ``db/tables.py`` describes, and so does
creating an empty database at head straight from ``tables.py``."""

from __future__ import annotations

import asyncio
import json
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


def _schema(connection: Connection) -> dict[str, dict[str, Any]]:
    """Everything the database reports about its tables, as comparable values."""
    inspector = inspect(connection)

    def texts(items: Any) -> list[str]:  # partial-index predicates compare by their SQL
        return sorted(json.dumps(item, sort_keys=True, default=str) for item in items)

    return {
        table: {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c["default"])
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table),
            "foreign_keys": texts(inspector.get_foreign_keys(table)),
            "indexes": texts(inspector.get_indexes(table)),
            "unique": texts(inspector.get_unique_constraints(table)),
            "checks": texts(inspector.get_check_constraints(table)),
        }
        for table in sorted(inspector.get_table_names())
    }


async def _upgrade_through_the_history(database: Database) -> None:
    await database.run_sync(lambda c: command.upgrade(migrate.alembic_config(c), "head"))


async def test_upgrading_an_empty_database_matches_the_tables(database_url: str) -> None:
    """On the suite's backend: the history, applied from empty, builds ``tables.py``."""
    database = Database(Settings(database_url=database_url))
    try:
        await database_reset(database)
        await _upgrade_through_the_history(database)
        differences = await database.run_sync(_differences)
        assert differences == []
        assert await migrate.current_revision(database) == migrate.head_revision()
    finally:
        await database.dispose()


async def test_an_empty_database_is_created_at_head_as_the_history_builds_it(
    database_url: str,
) -> None:
    """Start-up creates an empty database from ``tables.py`` (no Alembic); the result, down
    to column order, defaults, constraint and index names, is what the history builds."""
    database = Database(Settings(database_url=database_url))
    try:
        await database_reset(database)
        await _upgrade_through_the_history(database)
        migrated = await database.run_sync(_schema)
        await database_reset(database)
        await migrate.upgrade(database)
        created = await database.run_sync(_schema)
        assert await migrate.current_revision(database) == migrate.head_revision()
        # And an existing database at head upgrades through the history from there on.
        await database.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), "-1"))
        await migrate.upgrade(database)
        assert await database.run_sync(_schema) == migrated
    finally:
        await database.dispose()
    assert "alembic_version" in created
    assert created == migrated


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
