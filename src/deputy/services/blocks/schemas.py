"""Block schemas: create (idempotent on checksum and version), read, filter, delete, and the
capabilities of all of them.

A schema whose fields hold other blocks is stored as Prefect stores it: each nested block is a
schema of its own (registered from the root's ``definitions`` when its checksum is not known
yet), linked by a ``block_schema_reference`` row named after the field; the stored fields keep
only the definitions that are not blocks, and no ``block_schema_references``. Reading a schema
puts both back (:func:`full_fields`), from the reference tree read with one recursive query.

The unique constraint (checksum, version) decides concurrent saves of the same schema: the
first insert wins and the other request answers the winner (200), so two replicas saving the
same block at once both succeed and one row exists.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Select, delete, select

from deputy.blocks.checksum import (
    InvalidSchemaFields,
    child_fields,
    non_block_definitions,
    reference_entries,
    schema_checksum,
)
from deputy.db import tables as t
from deputy.db.dialect import insert_unless_exists
from deputy.errors import Conflict, Forbidden, NotFound, Unprocessable
from deputy.schemas.blocks import (
    DEFAULT_BLOCK_SCHEMA_VERSION,
    BlockSchemaCreate,
    BlockSchemaFilter,
)
from deputy.services.blocks.types import (
    block_schema_clause,
    find_block_type,
    find_block_type_by_slug,
    forget_default_storage,
)

if TYPE_CHECKING:
    from deputy.db.connection import Connection

BLOCK_SCHEMA_NOT_FOUND = "Block schema not found"
PROTECTED_SCHEMA = "Block schemas for protected block types cannot be deleted."
NO_DEFINITIONS = (
    "Unable to create nested block schema due to missing definitions in root block schema fields"
)
REFERENCE_CYCLE = "The block schema references form a cycle: a block cannot contain itself."
#: Deepest chain of nested block schemas registered in one request.
MAX_NESTING = 64

_s = t.block_schema.c
_r = t.block_schema_reference.c
_TYPE_COLUMNS = [column.label(f"type_{column.name}") for column in t.block_type.c]


def missing_block_type(slug: str) -> Conflict:
    """Prefect's 409 for a nested block whose type is not registered (its text, missing
    space included)."""
    return Conflict(
        f"Cannot create block schema because block type {slug!r} was not found.Did you forget "
        "to register the block type?"
    )


# --- create --------------------------------------------------------------------------------


async def create_block_schema(
    conn: Connection, body: BlockSchemaCreate, *, now: dt.datetime
) -> tuple[Any, Any, bool]:
    """``(schema, type, created)``: a new schema, or the one already stored with the same
    checksum and version (then ``created`` is False and Prefect answers 200).

    The nested blocks' types must exist (409 otherwise, as Prefect); fields Prefect would
    fail on (references that are not objects, definitions missing) are a 422.
    """
    block_type = await find_block_type(conn, body.block_type_id)
    if block_type is None:
        raise NotFound(f"Block type {body.block_type_id} not found.")
    try:
        checksum = schema_checksum(body.fields)
        existing = await _read_roots(conn, _by_checksum(checksum, body.version))
        if existing:
            return *existing[0], False
        registration = _Registration(conn, now)
        root = await registration.register(
            body.fields, block_type.id, body.capabilities, body.version, None, ()
        )
    except InvalidSchemaFields as error:
        raise Unprocessable(str(error)) from None
    if not root.created:  # an identical schema was saved meanwhile
        return *(await _read_roots(conn, _s.id == root.id))[0], False
    answered = {**root.stored_fields, "block_schema_references": root.references}
    if root.definitions is not None:
        answered["definitions"] = root.definitions
    schema = SimpleNamespace(
        id=root.id,
        created=now,
        updated=now,
        checksum=checksum,
        fields=answered,
        capabilities=body.capabilities,
        version=body.version,
        block_type_id=block_type.id,
    )
    return schema, block_type, True


@dataclass
class _Registered:
    id: uuid.UUID
    created: bool
    stored_fields: dict[str, Any] = field(default_factory=dict)
    references: Any = None
    definitions: Any = None


class _Registration:
    """One request's inserts: each new row's ``created`` a microsecond after the previous
    one, so nested schemas sort after their parent and references keep their order."""

    def __init__(self, conn: Connection, now: dt.datetime) -> None:
        self.conn = conn
        self.now = now
        self.count = 0

    def tick(self) -> dt.datetime:
        self.count += 1
        return self.now + dt.timedelta(microseconds=self.count - 1)

    async def register(
        self,
        fields: dict[str, Any],
        block_type_id: uuid.UUID,
        capabilities: list[str],
        version: str,
        definitions: Any,
        chain: tuple[uuid.UUID, ...],
    ) -> _Registered:
        """Insert one schema, then its nested ones (``chain``: the schemas being registered
        around this one, outermost first)."""
        if len(chain) >= MAX_NESTING:
            raise InvalidSchemaFields(f"Blocks are nested more than {MAX_NESTING} levels deep.")
        fields = dict(fields)
        definitions = definitions or fields.get("definitions")
        if definitions:
            fields["definitions"] = definitions
        checksum = schema_checksum(fields)
        if chain:
            found = await _id_by_checksum(self.conn, checksum, version)
            if found is not None:
                return _Registered(found, created=False)
        if definitions:
            kept = non_block_definitions(fields, definitions)
            if kept:
                fields["definitions"] = kept
            else:
                fields.pop("definitions", None)
        references = fields.pop("block_schema_references", {})
        entries = reference_entries(references)
        schema_id = uuid.uuid4()
        created = self.tick()
        values = {
            "id": schema_id,
            "created": created,
            "updated": created,
            "checksum": checksum,
            "fields": fields,
            "capabilities": capabilities,
            "version": version,
            "block_type_id": block_type_id,
        }
        statement = insert_unless_exists(self.conn.dialect.name, t.block_schema, _UNIQUE)
        if (await self.conn.execute(statement, values)).first() is None:
            found = await _id_by_checksum(self.conn, checksum, version)
            assert found is not None  # the conflicting row is committed and visible
            return _Registered(found, created=False)
        await self._register_nested(schema_id, fields, entries, definitions, (*chain, schema_id))
        return _Registered(schema_id, True, fields, references, definitions)

    async def _register_nested(
        self,
        parent_id: uuid.UUID,
        parent_fields: dict[str, Any],
        entries: list[tuple[str, dict[str, str]]],
        definitions: Any,
        chain: tuple[uuid.UUID, ...],
    ) -> None:
        linked: set[tuple[str, uuid.UUID]] = set()
        for name, entry in entries:
            child_id = await self._nested(parent_fields, name, entry, definitions, chain)
            if child_id in chain:
                raise InvalidSchemaFields(REFERENCE_CYCLE)
            if (name, child_id) in linked:
                continue
            linked.add((name, child_id))
            created = self.tick()
            await self.conn.execute(
                t.block_schema_reference.insert().values(
                    id=uuid.uuid4(),
                    created=created,
                    updated=created,
                    name=name,
                    parent_block_schema_id=parent_id,
                    reference_block_schema_id=child_id,
                )
            )

    async def _nested(
        self,
        parent_fields: dict[str, Any],
        name: str,
        entry: dict[str, str],
        definitions: Any,
        chain: tuple[uuid.UUID, ...],
    ) -> uuid.UUID:
        """The nested block's schema: the stored one with the checksum the reference names,
        or a new one from the root's definitions."""
        block_type = await find_block_type_by_slug(self.conn, entry["block_type_slug"])
        if block_type is None:
            raise missing_block_type(entry["block_type_slug"])
        found = await _id_by_checksum(self.conn, entry["block_schema_checksum"], None)
        if found is not None:
            return found
        if definitions is None:
            raise InvalidSchemaFields(NO_DEFINITIONS)
        fields = child_fields(definitions, parent_fields, name, block_type.slug)
        registered = await self.register(
            fields, block_type.id, [], DEFAULT_BLOCK_SCHEMA_VERSION, definitions, chain
        )
        return registered.id


_UNIQUE = ("checksum", "version")


async def _id_by_checksum(conn: Connection, checksum: str, version: str | None) -> uuid.UUID | None:
    """The newest schema with this checksum (and version, if given)."""
    query = select(_s.id).where(_by_checksum(checksum, version))
    query = query.order_by(_s.created.desc(), _s.id.desc()).limit(1)
    found: uuid.UUID | None = (await conn.execute(query)).scalar()
    return found


def _by_checksum(checksum: str, version: str | None) -> ColumnElement[bool]:
    if version is None:
        return _s.checksum == checksum
    return (_s.checksum == checksum) & (_s.version == version)


# --- reads ---------------------------------------------------------------------------------


async def read_block_schema(conn: Connection, block_schema_id: uuid.UUID) -> tuple[Any, Any]:
    """``(schema, type)`` with the schema's full fields (nested blocks put back);
    :class:`NotFound` with Prefect's message."""
    found = await _read_roots(conn, _s.id == block_schema_id)
    if not found:
        raise NotFound(BLOCK_SCHEMA_NOT_FOUND)
    return found[0]


async def read_block_schema_fields(conn: Connection, block_schema_id: uuid.UUID) -> Any:
    """The full fields of a schema, as :func:`read_block_schema` answers them."""
    schema, _ = await read_block_schema(conn, block_schema_id)
    return schema.fields


async def read_block_schemas_by_id(
    conn: Connection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, tuple[Any, Any]]:
    """``{id: (schema, type)}`` for the ids that exist, fields in full, in two or three
    queries whatever their number (for the block documents, which embed their schema)."""
    wanted = list(set(ids))
    if not wanted:
        return {}
    return {
        schema.id: (schema, kind) for schema, kind in await _read_roots(conn, _s.id.in_(wanted))
    }


async def read_block_schema_by_checksum(
    conn: Connection, checksum: str, version: str | None
) -> tuple[Any, Any]:
    """The newest schema with this checksum (and version, if given)."""
    found = await _read_roots(conn, _by_checksum(checksum, version), limit=1)
    if not found:
        raise NotFound(BLOCK_SCHEMA_NOT_FOUND)
    return found[0]


async def filter_block_schemas(
    conn: Connection, flt: BlockSchemaFilter | None, *, offset: int, limit: int
) -> list[tuple[Any, Any]]:
    """One page of ``(schema, type)``, newest first, as Prefect orders them."""
    where = block_schema_clause(flt) if flt is not None else None
    return await _read_roots(conn, where, offset=offset, limit=limit)


async def read_block_capabilities(conn: Connection) -> list[str]:
    """Every capability some schema has, each once, sorted."""
    rows = (await conn.execute(select(_s.capabilities).distinct())).scalars()
    found = {item for capabilities in rows if capabilities for item in capabilities}
    return sorted(item for item in found if isinstance(item, str))


# --- delete --------------------------------------------------------------------------------


async def delete_block_schema(conn: Connection, block_schema_id: uuid.UUID) -> None:
    """Delete the schema (its documents and references go with it); a schema of a protected
    type is a 403."""
    query = (
        select(t.block_type.c.is_protected)
        .select_from(t.block_schema.join(t.block_type))
        .where(_s.id == block_schema_id)
    )
    protected = (await conn.execute(query)).scalar()
    if protected is None:
        raise NotFound(BLOCK_SCHEMA_NOT_FOUND)
    if protected:
        raise Forbidden(PROTECTED_SCHEMA)
    await forget_default_storage(conn, t.block_document.c.block_schema_id == block_schema_id)
    await conn.execute(delete(t.block_schema).where(_s.id == block_schema_id))


# --- reconstruction ------------------------------------------------------------------------


def _with_type() -> Select[Any]:
    return select(t.block_schema, *_TYPE_COLUMNS).join(
        t.block_type, t.block_type.c.id == _s.block_type_id
    )


def _split(row: Any) -> tuple[SimpleNamespace, SimpleNamespace]:
    values = row._mapping
    schema = SimpleNamespace(**{column.name: values[column.name] for column in t.block_schema.c})
    kind = SimpleNamespace(
        **{column.name: values[f"type_{column.name}"] for column in t.block_type.c}
    )
    return schema, kind


@dataclass
class _Tree:
    """Schemas by id, each one's type, and each one's references, ordered by when the
    nested schemas were saved: ``children[parent] = [(field name, child id), ...]``."""

    schemas: dict[uuid.UUID, SimpleNamespace] = field(default_factory=dict)
    types: dict[uuid.UUID, SimpleNamespace] = field(default_factory=dict)
    children: dict[uuid.UUID, list[tuple[str, uuid.UUID]]] = field(default_factory=dict)

    def add(self, rows: Iterable[Any]) -> None:
        for row in rows:
            schema, kind = _split(row)
            self.schemas[schema.id] = schema
            self.types[schema.id] = kind


async def _read_roots(
    conn: Connection,
    where: ColumnElement[bool] | None,
    *,
    offset: int = 0,
    limit: int | None = None,
) -> list[tuple[Any, Any]]:
    """The schemas ``where`` selects, newest first, each with its full fields and type."""
    query = _with_type().order_by(_s.created.desc(), _s.id.desc())
    if where is not None:
        query = query.where(where)
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = (await conn.execute(query)).all()
    if not rows:
        return []
    tree = _Tree()
    tree.add(rows)
    roots = list(tree.schemas)
    await _load_references(conn, tree, roots)
    memo: dict[uuid.UUID, dict[str, Any]] = {}
    answers = []
    for root_id in roots:
        schema = tree.schemas[root_id]
        full = SimpleNamespace(**{**vars(schema), "fields": full_fields(tree, root_id, (), memo)})
        answers.append((full, tree.types[root_id]))
    return answers


async def _load_references(conn: Connection, tree: _Tree, roots: Sequence[uuid.UUID]) -> None:
    """Every reference below ``roots`` (one recursive query; UNION so that even a cycle
    ends), then the nested schemas not loaded yet."""
    columns = (_r.id, _r.created, _r.name, _r.parent_block_schema_id, _r.reference_block_schema_id)
    below = (
        select(*columns).where(_r.parent_block_schema_id.in_(roots)).cte("below", recursive=True)
    )
    step = select(*columns).select_from(
        t.block_schema_reference.join(
            below, _r.parent_block_schema_id == below.c.reference_block_schema_id
        )
    )
    below = below.union(step)
    query = select(below)
    references = (await conn.execute(query)).all()
    missing = {r.reference_block_schema_id for r in references} - tree.schemas.keys()
    if missing:
        tree.add((await conn.execute(_with_type().where(_s.id.in_(missing)))).all())
    # A field's blocks in the order their schemas were saved (Prefect's order on SQLite).
    found = [r for r in references if r.reference_block_schema_id in tree.schemas]
    found.sort(key=lambda r: (tree.schemas[r.reference_block_schema_id].created, r.created, r.id))
    for reference in found:
        tree.children.setdefault(reference.parent_block_schema_id, []).append(
            (reference.name, reference.reference_block_schema_id)
        )


def full_fields(
    tree: _Tree,
    schema_id: uuid.UUID,
    path: tuple[uuid.UUID, ...],
    memo: dict[uuid.UUID, dict[str, Any]],
) -> dict[str, Any]:
    """A schema's fields as Prefect answers them: its ``block_schema_references`` rebuilt
    from the reference rows (a field with several blocks lists them), and each nested
    block's full fields added to ``definitions`` under its title, with the nested block's
    own definitions merged flat beside it."""
    if schema_id in memo:
        return memo[schema_id]
    fields: dict[str, Any] = {**tree.schemas[schema_id].fields, "block_schema_references": {}}
    references, nested = _references(tree, schema_id)
    fields["block_schema_references"] = references
    definitions: dict[str, Any] = {}
    for name in references:
        for child_id in nested[name]:
            if child_id in path or child_id == schema_id:
                continue  # a cycle: never stored by deputy, but never followed either
            child = full_fields(tree, child_id, (*path, schema_id), memo)
            title = child.get("title")
            if title is None:
                continue
            child_definitions = child.get("definitions")
            definitions = {
                **definitions,
                title: {key: value for key, value in child.items() if key != "definitions"},
                **(child_definitions if isinstance(child_definitions, dict) else {}),
            }
    own = fields.get("definitions")
    if definitions or own:
        fields["definitions"] = {**(own if isinstance(own, dict) else {}), **definitions}
    memo[schema_id] = fields
    return fields


def _references(
    tree: _Tree, schema_id: uuid.UUID
) -> tuple[dict[str, Any], dict[str, list[uuid.UUID]]]:
    """``block_schema_references`` of a schema, and the child ids behind each name."""
    references: dict[str, Any] = {}
    nested: dict[str, list[uuid.UUID]] = {}
    for name, child_id in tree.children.get(schema_id, []):
        child = tree.schemas.get(child_id)
        if child is None:
            continue
        entry = {
            "block_schema_checksum": child.checksum,
            "block_type_slug": tree.types[child_id].slug,
        }
        current = references.get(name)
        if name not in references:
            references[name] = entry
            nested[name] = [child_id]
        elif isinstance(current, list):
            if entry not in current:
                current.append(entry)
                nested[name].append(child_id)
        elif current != entry:
            references[name] = [current, entry]
            nested[name].append(child_id)
    return references, nested
