"""Variables: named JSON values, addressed by id or by name.

Names are unique, and the database's unique constraint is what decides a duplicate: two
clients creating the same name at once get one 201 and one 409, never two rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.db.filters.objects import variable_clause
from deputy.errors import Conflict, NotFound, integrity_conflict
from deputy.schemas.filters import VariableFilter, VariableSort
from deputy.schemas.variables import VariableCreate, VariableUpdate
from deputy.services.events import lifecycle as lifecycle_events

if TYPE_CHECKING:
    from deputy.db.connection import Connection

VARIABLE_NOT_FOUND = "Variable not found."

_c = t.variable.c


_SORTS = {
    VariableSort.CREATED_DESC: [_c.created.desc()],
    VariableSort.UPDATED_DESC: [_c.updated.desc()],
    VariableSort.NAME_DESC: [_c.name.desc()],
    VariableSort.NAME_ASC: [_c.name.asc()],
}

#: Columns that are NOT NULL: Prefect answers its generic 409 when a PATCH sets them to null.
_NOT_NULL_FIELDS = ("name", "tags")


def duplicate_name(name: str) -> Conflict:
    """The 409 Prefect answers when a variable is created with a name already taken."""
    return Conflict(f"A variable with the name {name!r} already exists.")


async def create_variable(conn: Connection, body: VariableCreate, *, now: dt.datetime) -> Any:
    """Insert the variable; a taken name is a 409 decided by the unique constraint.

    The answer echoes the values as sent, not as stored, as Prefect's does (on SQLite a
    stored ``1.0`` reads back as ``1``).
    """
    values = {
        "id": uuid.uuid4(),
        "created": now,
        "updated": now,
        "name": body.name,
        "value": body.value,
        "tags": body.tags,
    }
    insert = (
        insert_on_conflict(conn.dialect.name, t.variable)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(_c.id)
    )
    if (await conn.execute(insert)).first() is None:
        raise duplicate_name(body.name)
    created = SimpleNamespace(**values)
    lifecycle_events.variable_changed("created", created, now=now)
    return created


async def read_variable(conn: Connection, variable_id: uuid.UUID) -> Any:
    return await _read_one(conn, _c.id == variable_id)


async def read_variable_by_name(conn: Connection, name: str) -> Any:
    return await _read_one(conn, _c.name == name)


async def update_variable(
    conn: Connection, variable_id: uuid.UUID, body: VariableUpdate, *, now: dt.datetime
) -> None:
    await _update(conn, _c.id == variable_id, body, now=now)


async def update_variable_by_name(
    conn: Connection, name: str, body: VariableUpdate, *, now: dt.datetime
) -> None:
    await _update(conn, _c.name == name, body, now=now)


async def delete_variable(conn: Connection, variable_id: uuid.UUID, *, now: dt.datetime) -> None:
    await _delete(conn, _c.id == variable_id, now=now)


async def delete_variable_by_name(conn: Connection, name: str, *, now: dt.datetime) -> None:
    await _delete(conn, _c.name == name, now=now)


async def filter_variables(
    conn: Connection,
    flt: VariableFilter | None,
    *,
    sort: VariableSort,
    offset: int,
    limit: int,
) -> list[Any]:
    """One page of variables; ties on the sort key are broken by id so pages are stable."""
    query = select(t.variable).order_by(*_SORTS[sort], _c.id).offset(offset).limit(limit)
    if flt is not None:
        query = query.where(variable_clause(flt))
    return list((await conn.execute(query)).all())


async def count_variables(conn: Connection, flt: VariableFilter | None) -> int:
    query = select(func.count()).select_from(t.variable)
    if flt is not None:
        query = query.where(variable_clause(flt))
    return int((await conn.execute(query)).scalar_one())


async def read_variable_values(conn: Connection, names: Collection[str]) -> dict[str, Any]:
    """``{name: value}`` for those of ``names`` that exist, in one query.

    Parameter hydration resolves ``workspace_variable`` placeholders with this, so it reads
    only the names a request refers to and never the whole table.
    """
    if not names:
        return {}
    query = select(_c.name, _c.value).where(_c.name.in_(list(names)))
    return {name: value for name, value in (await conn.execute(query)).all()}


# --- helpers ------------------------------------------------------------------------------


async def _read_one(conn: Connection, where: ColumnElement[bool]) -> Any:
    row = (await conn.execute(select(t.variable).where(where))).first()
    if row is None:
        raise NotFound(VARIABLE_NOT_FOUND)
    return row


async def _update(
    conn: Connection, where: ColumnElement[bool], body: VariableUpdate, *, now: dt.datetime
) -> None:
    """Write the keys the client sent (``updated`` always moves, even for ``{}``).

    A missing variable is a 404 before anything else, as in Prefect; a name or tags set to
    null, or a rename onto a taken name, is then Prefect's generic integrity 409.
    """
    values = body.model_dump(exclude_unset=True)
    if any(field in values and values[field] is None for field in _NOT_NULL_FIELDS):
        await _read_one(conn, where)
        raise integrity_conflict()
    statement = update(t.variable).where(where).values(**values, updated=now)
    try:
        row = (await conn.execute(statement.returning(*t.variable.c))).first()
    except IntegrityError:
        raise integrity_conflict() from None
    if row is None:
        raise NotFound(VARIABLE_NOT_FOUND)
    lifecycle_events.variable_changed("updated", row, now=now)


async def _delete(conn: Connection, where: ColumnElement[bool], *, now: dt.datetime) -> None:
    row = (await conn.execute(delete(t.variable).where(where).returning(*t.variable.c))).first()
    if row is None:
        raise NotFound(VARIABLE_NOT_FOUND)
    lifecycle_events.variable_changed("deleted", row, now=now)
