"""Apply, inspect and reset the schema through Alembic, on deputy's own engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from deputy.db.engine import Database
from deputy.db.tables import metadata

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


#: Key of the PostgreSQL advisory lock replicas take to migrate one at a time.
_MIGRATION_LOCK = 0x6465707574790001


def _upgrade(connection: Connection) -> None:
    if _current_revision(connection) == head_revision():
        return
    if connection.dialect.name == "postgresql":
        # Replicas starting together: the first migrates, the others wait, then find the
        # schema current. Released when this transaction ends.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        if _current_revision(connection) == head_revision():
            return
    command.upgrade(alembic_config(connection), "head")


def _drop_everything(connection: Connection) -> None:
    metadata.drop_all(connection)
    connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")


async def upgrade(database: Database) -> None:
    """Bring the schema to the newest revision; cheap when it is already there."""
    await database.run_sync(_upgrade)


async def reset(database: Database) -> None:
    """Drop every deputy table and recreate the schema from the first migration."""
    await database.run_sync(_drop_everything)
    await upgrade(database)


async def current_revision(database: Database) -> str | None:
    return await database.run_sync(_current_revision)
