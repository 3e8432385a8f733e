"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Table

if TYPE_CHECKING:
    from deputy.db.connection import Connection


def upsert_base(dialect: str, table: Table) -> Any:
    """``dialect``'s own INSERT for ``table``, the one with ``on_conflict_do_nothing`` and
    ``on_conflict_do_update``.

    The dialect's module is imported here, on first use: SQLAlchemy's PostgreSQL dialect
    costs over 2 MiB of memory, which a server on SQLite should not carry.
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def insert_on_conflict(conn: Connection, table: Table) -> Any:
    """An INSERT that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    return upsert_base(conn.dialect.name, table)


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"
