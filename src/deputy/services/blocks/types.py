"""Block types: create, read by id or slug, update, delete, filter; and the SQL of the block
type and block schema filters, which other block services use too.

A slug is unique, and the database's unique constraint decides a duplicate. Creating a type
identical to the one holding its slug answers that type (200): the SDK reads a type by slug
and creates it when it finds none, so two workers starting together both create it, and
Prefect fails one of them with a 409. A different type under a taken slug is Prefect's 409.
"""

from __future__ import annotations

import datetime as dt
import html
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, exists, select, update

from deputy.db import tables as t
from deputy.db.dialect import insert_unless_exists
from deputy.db.filters.clauses import all_of, array_has_all, combine, ilike_contains
from deputy.errors import Conflict, Forbidden, NotFound
from deputy.schemas.blocks import (
    BlockSchemaFilter,
    BlockTypeCreate,
    BlockTypeFilter,
    BlockTypeUpdate,
)
from deputy.services.events import lifecycle as lifecycle_events

if TYPE_CHECKING:
    from deputy.db.connection import Connection

BLOCK_TYPE_NOT_FOUND = "Block type not found"
RESERVED_NAME = "Block type names beginning with 'Prefect' are reserved."
PROTECTED_TYPE = "protected block types cannot be deleted."
#: The ``configuration`` key of the server's default result storage (a block document id).
DEFAULT_STORAGE_KEY = "server-default-result-storage"

_c = t.block_type.c
_s = t.block_schema.c

#: The columns a PATCH may write, in Prefect's ``BlockTypeUpdate``.
UPDATABLE = ("logo_url", "documentation_url", "description", "code_example")
_URLS = ("logo_url", "documentation_url")
_ESCAPED = ("description", "code_example")


def duplicate_slug(name: str) -> Conflict:
    """Prefect's 409 for a taken slug (it names the type by its name)."""
    return Conflict(f'Block type with name "{name}" already exists')


# --- reads ---------------------------------------------------------------------------------


async def find_block_type(conn: Connection, block_type_id: uuid.UUID) -> Any | None:
    """The ``block_type`` row, or None."""
    return (await conn.execute(select(t.block_type).where(_c.id == block_type_id))).first()


async def find_block_type_by_slug(conn: Connection, slug: str) -> Any | None:
    """The ``block_type`` row with this slug, or None."""
    return (await conn.execute(select(t.block_type).where(_c.slug == slug))).first()


async def read_block_type(conn: Connection, block_type_id: uuid.UUID) -> Any:
    """The ``block_type`` row; :class:`NotFound` with Prefect's message if there is none."""
    row = await find_block_type(conn, block_type_id)
    if row is None:
        raise NotFound(BLOCK_TYPE_NOT_FOUND)
    return row


async def read_block_type_by_slug(conn: Connection, slug: str) -> Any:
    """The ``block_type`` row with this slug; :class:`NotFound` with Prefect's message."""
    row = await find_block_type_by_slug(conn, slug)
    if row is None:
        raise NotFound(BLOCK_TYPE_NOT_FOUND)
    return row


async def filter_block_types(
    conn: Connection,
    type_filter: BlockTypeFilter | None,
    schema_filter: BlockSchemaFilter | None,
    *,
    offset: int,
    limit: int,
) -> list[Any]:
    """One page of types by name (slug breaks ties); ``schema_filter`` keeps the types with
    at least one schema that matches it."""
    query = select(t.block_type).order_by(_c.name, _c.slug).offset(offset).limit(limit)
    if type_filter is not None:
        query = query.where(block_type_clause(type_filter))
    if schema_filter is not None:
        query = query.where(
            exists().where(_s.block_type_id == _c.id, block_schema_clause(schema_filter))
        )
    return list((await conn.execute(query)).all())


# --- writes --------------------------------------------------------------------------------


def _refuse_reserved(name: str) -> None:
    if name.lower().startswith("prefect"):
        raise Forbidden(RESERVED_NAME)


def new_block_type_values(body: BlockTypeCreate) -> dict[str, Any]:
    """The columns of a type created from ``body``, as Prefect stores them: URLs without
    surrounding blanks, description and code example HTML-escaped (``<`` as ``&lt;``)."""
    values: dict[str, Any] = body.model_dump()
    for key in _URLS:
        if values[key] is not None:
            values[key] = values[key].strip()
    for key in _ESCAPED:
        if values[key] is not None:
            values[key] = html.escape(values[key], quote=False)
    values["is_protected"] = False
    return values


async def create_block_type(
    conn: Connection, body: BlockTypeCreate, *, now: dt.datetime
) -> tuple[Any, bool]:
    """Insert the type: ``(row, True)``; when its slug is taken, ``(that type, False)`` if it
    is the same type, else Prefect's 409. A name starting with "Prefect" is Prefect's 403."""
    _refuse_reserved(body.name)
    values = {"id": uuid.uuid4(), "created": now, "updated": now, **new_block_type_values(body)}
    statement = insert_unless_exists(conn.dialect.name, t.block_type, ("slug",))
    if (await conn.execute(statement, values)).first() is not None:
        row = SimpleNamespace(**values)
        lifecycle_events.block_type_changed("created", row, now=now)
        return row, True
    existing = await find_block_type_by_slug(conn, body.slug)
    if existing is None or any(
        getattr(existing, key) != values[key] for key in ("name", "is_protected", *UPDATABLE)
    ):
        raise duplicate_slug(body.name)
    return existing, False


async def update_block_type(
    conn: Connection, block_type_id: uuid.UUID, body: BlockTypeUpdate, *, now: dt.datetime
) -> None:
    """Write the keys sent (protected types too, as Prefect). Nothing is written when all
    four are sent and equal the stored ones (HTML escapes aside), as Prefect skips it."""
    existing = await read_block_type(conn, block_type_id)
    sent = body.model_dump(exclude_unset=True)
    if not _changes(sent, existing):
        return
    for key in _URLS:
        if sent.get(key) is not None:
            sent[key] = sent[key].strip()
    statement = (
        update(t.block_type)
        .where(_c.id == block_type_id)
        .values(**sent, updated=now)
        .returning(*t.block_type.c)
    )
    row = (await conn.execute(statement)).first()
    if row is None:  # deleted meanwhile
        raise NotFound(BLOCK_TYPE_NOT_FOUND)
    lifecycle_events.block_type_changed("updated", row, now=now)


def _changes(sent: dict[str, Any], existing: Any) -> bool:
    """Prefect's test: the keys sent differ from all four stored ones (unescaped)."""
    sent = dict(sent)
    stored = {key: getattr(existing, key) for key in UPDATABLE}
    for values in (sent, stored):
        for key in _ESCAPED:
            if values.get(key) is not None:
                values[key] = html.unescape(values[key])
    if stored.get("logo_url") is not None:
        stored["logo_url"] = stored["logo_url"].strip()
    if stored.get("documentation_url") is not None:
        stored["documentation_url"] = stored["documentation_url"].strip()
    return sent != stored


async def delete_block_type(
    conn: Connection, block_type_id: uuid.UUID, *, now: dt.datetime
) -> None:
    """Delete the type with its schemas and documents; a protected type is a 403."""
    existing = await read_block_type(conn, block_type_id)
    if existing.is_protected:
        raise Forbidden(PROTECTED_TYPE)
    await forget_default_storage(conn, t.block_document.c.block_type_id == block_type_id)
    await conn.execute(delete(t.block_type).where(_c.id == block_type_id))
    lifecycle_events.block_type_changed("deleted", existing, now=now)


async def forget_default_storage(conn: Connection, documents: ColumnElement[bool]) -> None:
    """Clear the server's default result storage when it is one of ``documents`` (about to
    be deleted), as Prefect does."""
    configuration = t.configuration.c
    query = select(configuration.value).where(configuration.key == DEFAULT_STORAGE_KEY)
    value = (await conn.execute(query)).scalar()
    document_id = value.get("default_result_storage_block_id") if isinstance(value, dict) else None
    if not isinstance(document_id, str):
        return
    try:
        parsed = uuid.UUID(document_id)
    except ValueError:
        return
    documents_query = select(t.block_document.c.id).where(
        t.block_document.c.id == parsed, documents
    )
    if (await conn.execute(documents_query)).first() is not None:
        await conn.execute(delete(t.configuration).where(configuration.key == DEFAULT_STORAGE_KEY))


# --- filters -------------------------------------------------------------------------------


def block_type_clause(flt: BlockTypeFilter) -> ColumnElement[bool]:
    """Prefect's ``BlockTypeFilter``: ``name.like_`` and ``slug.any_``, ANDed."""
    conditions: list[ColumnElement[bool]] = []
    if flt.name is not None and flt.name.like_:
        conditions.append(ilike_contains(_c.name, flt.name.like_))
    if flt.slug is not None and flt.slug.any_ is not None:
        conditions.append(_c.slug.in_(flt.slug.any_))
    return all_of(conditions)


def block_schema_clause(flt: BlockSchemaFilter) -> ColumnElement[bool]:
    """Prefect's ``BlockSchemaFilter`` on ``block_schema`` rows, joined by its operator."""
    conditions: list[ColumnElement[bool]] = []
    if flt.block_type_id is not None:
        ids = flt.block_type_id.any_
        conditions.append(all_of([_s.block_type_id.in_(ids)] if ids is not None else []))
    if flt.block_capabilities is not None:
        wanted = flt.block_capabilities.all_
        conditions.append(all_of([array_has_all(_s.capabilities, wanted)] if wanted else []))
    if flt.id is not None:
        conditions.append(all_of([_s.id.in_(flt.id.any_)] if flt.id.any_ is not None else []))
    if flt.version is not None:
        versions = flt.version.any_
        conditions.append(all_of([_s.version.in_(versions)] if versions is not None else []))
    return combine(flt.operator, conditions)
