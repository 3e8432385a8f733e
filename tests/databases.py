"""Which database the suite runs on: ``pytest --db sqlite`` (default) or ``--db postgres``.

SQLite: the schema is migrated once into a template file that each test copies.
PostgreSQL: the schema is migrated once into a template database, and each test gets its own
database created from it (``CREATE DATABASE ... TEMPLATE``), dropped afterwards. The server
is ``DEPUTY_TEST_POSTGRES_URL`` (default ``postgresql+asyncpg://postgres@127.0.0.1:5433/postgres``,
the cluster ``.ci/postgres.sh`` starts).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url

from deputy.db import migrate
from deputy.db.engine import Database
from deputy.settings import Settings

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5433/postgres"


async def _migrate(url: str) -> None:
    database = Database(Settings(database_url=url))
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()


async def _admin(url: str, *statements: str) -> None:
    import asyncpg

    parsed = make_url(url)
    connection = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
    )
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@dataclass
class DatabaseBackends:
    backend: str
    workdir: Path
    postgres_url: str = DEFAULT_POSTGRES_URL
    template: str = ""

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgres"

    def prepare(self) -> None:
        """Build the migrated template once per session."""
        if self.is_postgres:
            name = f"deputy_template_{os.getpid()}"
            asyncio.run(
                _admin(
                    self.postgres_url,
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                    f'CREATE DATABASE "{name}"',
                )
            )
            asyncio.run(_migrate(self._url(name)))
            self.template = name
        else:
            path = self.workdir / "template.db"
            asyncio.run(_migrate(f"sqlite:///{path}"))
            self.template = str(path)

    def fresh(self, tmp_path: Path) -> str:
        """The URL of a new, empty, migrated database for one test."""
        if self.is_postgres:
            name = f"deputy_test_{uuid.uuid4().hex[:12]}"
            asyncio.run(
                _admin(self.postgres_url, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            )
            return self._url(name)
        path = tmp_path / "deputy.db"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        if self.is_postgres:
            name = make_url(url).database
            asyncio.run(_admin(self.postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def finish(self) -> None:
        if self.is_postgres and self.template:
            self.drop(self._url(self.template))

    def _url(self, name: str) -> str:
        return make_url(self.postgres_url).set(database=name).render_as_string(hide_password=False)


@contextmanager
def counted_statements(database: Database) -> Iterator[list[str]]:
    """Every SQL statement sent while the block runs, except transaction control and the
    event bus writing earlier requests' events in the background (all its statements, and
    only those, start with ``INSERT INTO event``)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        ignored = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "INSERT INTO EVENT")
        if not statement.lstrip().upper().startswith(ignored):
            statements.append(statement)

    event.listen(database.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(database.sync_engine, "before_cursor_execute", record)
