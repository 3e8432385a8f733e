"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, func

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from deputy.db.connection import Connection


def insert_on_conflict(dialect: str, table: Table) -> Any:
    """``dialect``'s own INSERT for ``table``, the one with ``on_conflict_do_nothing`` and
    ``on_conflict_do_update`` (``dialect`` is ``conn.dialect.name``).

    The dialect's module is imported here, on first use: SQLAlchemy's PostgreSQL dialect
    costs over 2 MiB of memory, which a server on SQLite should not carry.
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


@functools.cache
def insert_unless_exists(dialect: str, table: Table, key: tuple[str, ...]) -> Any:
    """``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id``, built once per dialect:
    no row returned means the key was taken."""
    return (
        insert_on_conflict(dialect, table)
        .on_conflict_do_nothing(index_elements=list(key))
        .returning(table.c.id)
    )


def is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def greatest(conn: Connection, *values: Any) -> ColumnElement[Any]:
    """The largest of ``values`` (SQLite's many-argument ``max``, PostgreSQL's ``greatest``)."""
    return func.greatest(*values) if is_postgres(conn) else func.max(*values)
