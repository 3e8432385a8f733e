"""Block documents: create, read, filter, count, update and delete, as Prefect 3.9.1 does.

Rules kept from Prefect:

* A named document is unique per block type; the unique constraint decides a duplicate
  (409 ``Block already exists``). An anonymous document sent without a name is named
  ``anonymous-<uuid>``.
* Data values ``{"$ref": {"block_document_id": ...}}`` at top-level keys are references
  (``references.py``), stored apart from the data; deeper ones are plain data.
* Filters leave anonymous documents out unless they ask for them.
* PATCH writes nothing unless ``data`` is part of the update (``merge_existing_data`` false
  sends all fields, so there it always is); a secret sent back as ``********`` keeps the
  stored value; merged data is the stored data (references taken out) updated with the keys
  sent, so a reference not sent again is dropped, as in Prefect; a new schema must be of the
  document's type.
* Unknown type, schema or referenced document: Prefect's foreign-key 409 (Prefect itself
  answers a 500 for an unknown type on create; deputy answers the same 409 as for a schema).

The data (references taken out) is stored encrypted (``deputy.blocks.crypto``); the
``Cipher`` is handed in by the route, opened once at start.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from deputy.blocks import crypto, secrets
from deputy.blocks.crypto import Cipher
from deputy.db import tables as t
from deputy.db.dialect import insert_on_conflict
from deputy.db.filters.clauses import Clause, all_of, combine, ilike_contains
from deputy.errors import BadRequest, Conflict, NotFound, Unprocessable, integrity_conflict
from deputy.schemas.block_documents import (
    BlockDocumentCreate,
    BlockDocumentFilter,
    BlockDocumentSort,
    BlockDocumentUpdate,
)
from deputy.schemas.blocks import BlockSchemaFilter, BlockTypeFilter
from deputy.services.blocks import references
from deputy.services.blocks.schemas import read_block_schema_fields
from deputy.services.blocks.types import (
    block_schema_clause,
    block_type_clause,
    find_block_type_by_slug,
    forget_default_storage,
)
from deputy.services.events import lifecycle as lifecycle_events

if TYPE_CHECKING:
    from deputy.db.connection import Connection

DOCUMENT_NOT_FOUND = "Block document not found"
TYPE_NOT_FOUND = "Block type not found"
ALREADY_EXISTS = "Block already exists"
OTHER_TYPE_SCHEMA = "Must migrate block document to a block schema of the same block type."
#: The largest data a document may hold, as the UTF-8 bytes of its compact JSON (Prefect has
#: no limit; credentials and configuration are far smaller).
MAX_DATA_BYTES = 1_048_576
DATA_TOO_LARGE = f"Block document data must be at most {MAX_DATA_BYTES:,} bytes as JSON."

_c = t.block_document.c
_type = t.block_type.c
_schema = t.block_schema.c

_SORTS = {
    BlockDocumentSort.NAME_DESC: [_c.name.desc()],
    BlockDocumentSort.NAME_ASC: [_c.name.asc()],
    BlockDocumentSort.BLOCK_TYPE_AND_NAME_ASC: [_c.block_type_name.asc(), _c.name.asc()],
}

Reference = tuple[str, uuid.UUID]


def split_references(data: dict[str, Any]) -> tuple[dict[str, Any], list[Reference]]:
    """The data without its top-level references, and the references (key, document id)."""
    own: dict[str, Any] = {}
    found: list[Reference] = []
    for key, value in data.items():
        if not (isinstance(value, dict) and "$ref" in value):
            own[key] = value
            continue
        target = value["$ref"]
        document_id = target.get("block_document_id") if isinstance(target, dict) else None
        if document_id is None:
            raise BadRequest(f"Received block reference without a block_document_id in key {key}")
        if not _storable(key):
            raise BadRequest(f"Received block reference in a key that cannot be stored: {key!r}")
        try:
            found.append((key, uuid.UUID(str(document_id))))
        except ValueError:
            raise BadRequest(
                f"Received block reference with an invalid block_document_id in key {key}"
            ) from None
    return own, found


def _encrypt(cipher: Cipher, data: dict[str, Any]) -> str:
    plaintext = crypto.encode(data)
    if len(plaintext) > MAX_DATA_BYTES:
        raise Unprocessable(DATA_TOO_LARGE)
    return cipher.encrypt_encoded(plaintext)


# --- create --------------------------------------------------------------------------------


async def create_block_document(
    conn: Connection, body: BlockDocumentCreate, *, cipher: Cipher, now: dt.datetime
) -> dict[str, Any]:
    """Insert the document and its references; answer it as read back (secrets hidden)."""
    name = body.name
    if body.is_anonymous and not name:
        name = f"anonymous-{uuid.uuid4()}"
    # Prefect refuses a taken name before looking at references: keep a bad one for later.
    refused: BadRequest | None = None
    try:
        own, found = split_references(body.data)
    except BadRequest as error:
        own, found, refused = {}, [], error
    document_id = uuid.uuid4()
    type_name = select(_type.name).where(_type.id == body.block_type_id).scalar_subquery()
    insert = (
        insert_on_conflict(conn.dialect.name, t.block_document)
        .values(
            id=document_id,
            created=now,
            updated=now,
            name=name,
            block_type_id=body.block_type_id,
            block_schema_id=body.block_schema_id,
            block_type_name=type_name,
            is_anonymous=body.is_anonymous,
            encrypted_data=_encrypt(cipher, own),
        )
        .on_conflict_do_nothing(index_elements=["block_type_id", "name"])
        .returning(_c.id)
    )
    try:
        inserted = (await conn.execute(insert)).first()
    except IntegrityError:
        raise integrity_conflict() from None  # an unknown type or schema
    if inserted is None:
        raise Conflict(ALREADY_EXISTS)
    if refused is not None:
        raise refused
    await references.check_new_references(conn, document_id, found, new_parent=True)
    await _insert_references(conn, document_id, found, now=now)
    answer = await _read_one(conn, document_id, cipher=cipher, include_secrets=False)
    _changed("created", answer, now=now)
    return answer


async def _insert_references(
    conn: Connection, parent: uuid.UUID, found: Sequence[Reference], *, now: dt.datetime
) -> None:
    if not found:
        return
    rows = [
        {
            "id": uuid.uuid4(),
            "created": now,
            "updated": now,
            "name": key,
            "parent_block_document_id": parent,
            "reference_block_document_id": target,
        }
        for key, target in found
    ]
    await conn.execute(t.block_document_reference.insert(), rows)


# --- read ----------------------------------------------------------------------------------


async def read_block_document(
    conn: Connection, document_id: uuid.UUID, *, cipher: Cipher, include_secrets: bool
) -> dict[str, Any]:
    return await _read_one(conn, document_id, cipher=cipher, include_secrets=include_secrets)


async def _read_one(
    conn: Connection, document_id: uuid.UUID, *, cipher: Cipher, include_secrets: bool
) -> dict[str, Any]:
    found = await references.read_documents(
        conn, [document_id], cipher=cipher, include_secrets=include_secrets
    )
    if not found:
        raise NotFound(DOCUMENT_NOT_FOUND)
    return found[0]


async def read_block_document_data(
    conn: Connection, document_id: uuid.UUID, *, cipher: Cipher, include_secrets: bool
) -> dict[str, Any] | None:
    """A document's data with its references resolved, or ``None`` when there is none."""
    return await references.read_data(
        conn, document_id, cipher=cipher, include_secrets=include_secrets
    )


def _storable(text: str) -> bool:
    """Whether ``text`` could be a stored name (no NUL, no lone surrogate): others are
    refused before they reach a database that cannot compare them."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


async def read_block_document_by_name(
    conn: Connection, slug: str, name: str, *, cipher: Cipher, include_secrets: bool
) -> dict[str, Any]:
    """The document ``name`` of the type ``slug``, anonymous or not."""
    if not (_storable(slug) and _storable(name)):
        raise NotFound(DOCUMENT_NOT_FOUND)
    query = (
        select(_c.id)
        .join_from(t.block_document, t.block_type, _type.id == _c.block_type_id)
        .where(_type.slug == slug, _c.name == name)
    )
    document_id = (await conn.execute(query)).scalar()
    if document_id is None:
        raise NotFound(DOCUMENT_NOT_FOUND)
    return await _read_one(conn, document_id, cipher=cipher, include_secrets=include_secrets)


async def read_type_documents(
    conn: Connection, slug: str, *, cipher: Cipher, include_secrets: bool
) -> list[dict[str, Any]]:
    """The named documents of the type ``slug`` by name (404 when there is no such type)."""
    block_type = await find_block_type_by_slug(conn, slug) if _storable(slug) else None
    if block_type is None:
        raise NotFound(TYPE_NOT_FOUND)
    query = (
        select(_c.id)
        .where(_c.block_type_id == block_type.id, _c.is_anonymous.is_(False))
        .order_by(_c.name.asc(), _c.id)
    )
    ids = list((await conn.execute(query)).scalars().all())
    return await references.read_documents(
        conn, ids, cipher=cipher, include_secrets=include_secrets
    )


# --- filter and count ----------------------------------------------------------------------


def _document_clause(flt: BlockDocumentFilter | None) -> Clause:
    """Prefect's conditions; no filter at all leaves anonymous documents out."""
    flt = flt if flt is not None else BlockDocumentFilter()
    clauses: list[Clause] = []
    if flt.id is not None:
        clauses.append(all_of([] if flt.id.any_ is None else [_c.id.in_(flt.id.any_)]))
    if flt.is_anonymous is not None:
        eq = flt.is_anonymous.eq_
        clauses.append(all_of([] if eq is None else [_c.is_anonymous.is_(eq)]))
    if flt.block_type_id is not None:
        any_ = flt.block_type_id.any_
        clauses.append(all_of([] if any_ is None else [_c.block_type_id.in_(any_)]))
    if flt.name is not None:
        name: list[Clause] = []
        if flt.name.any_ is not None:
            name.append(_c.name.in_(flt.name.any_))
        if flt.name.like_:
            name.append(ilike_contains(_c.name, flt.name.like_))
        clauses.append(all_of(name))
    return combine(flt.operator, clauses)


def _where(
    documents: BlockDocumentFilter | None,
    block_types: BlockTypeFilter | None,
    block_schemas: BlockSchemaFilter | None,
) -> list[ColumnElement[bool]]:
    where = [_document_clause(documents)]
    if block_types is not None:
        where.append(exists().where(_type.id == _c.block_type_id, block_type_clause(block_types)))
    if block_schemas is not None:
        where.append(
            exists().where(_schema.id == _c.block_schema_id, block_schema_clause(block_schemas))
        )
    return where


async def filter_block_documents(
    conn: Connection,
    documents: BlockDocumentFilter | None,
    block_types: BlockTypeFilter | None,
    block_schemas: BlockSchemaFilter | None,
    *,
    cipher: Cipher,
    include_secrets: bool,
    sort: BlockDocumentSort,
    offset: int,
    limit: int,
) -> list[dict[str, Any]]:
    """One page of documents, answered in full; ties on the sort key broken by id."""
    query = (
        select(_c.id)
        .where(*_where(documents, block_types, block_schemas))
        .order_by(*_SORTS[sort], _c.id)
        .offset(offset)
        .limit(limit)
    )
    ids = list((await conn.execute(query)).scalars().all())
    return await references.read_documents(
        conn, ids, cipher=cipher, include_secrets=include_secrets
    )


async def count_block_documents(
    conn: Connection,
    documents: BlockDocumentFilter | None,
    block_types: BlockTypeFilter | None,
    block_schemas: BlockSchemaFilter | None,
) -> int:
    query = select(func.count()).select_from(t.block_document)
    query = query.where(*_where(documents, block_types, block_schemas))
    return int((await conn.execute(query)).scalar_one())


# --- update --------------------------------------------------------------------------------


async def update_block_document(
    conn: Connection,
    document_id: uuid.UUID,
    body: BlockDocumentUpdate,
    *,
    cipher: Cipher,
    now: dt.datetime,
) -> None:
    """Prefect's PATCH: see the module's rules. Checks come in Prefect's order: references
    without an id, then the schema, then each new reference (cycle 400, unknown 409)."""
    query = (
        select(t.block_document, _schema.fields.label("schema_fields"))
        .join_from(t.block_document, t.block_schema, _schema.id == _c.block_schema_id)
        .where(_c.id == document_id)
        .with_for_update(of=t.block_document)
    )
    current = (await conn.execute(query)).first()
    if current is None:
        raise NotFound(DOCUMENT_NOT_FOUND)
    sent = body.model_dump(exclude_unset=body.merge_existing_data)
    if "data" in sent:
        await _write_data(conn, current, body, cipher=cipher, now=now)
    # Prefect reads the document back and announces it, even when nothing was written.
    answer = await _read_one(conn, document_id, cipher=cipher, include_secrets=False)
    _changed("updated", answer, now=now)


async def _write_data(
    conn: Connection, current: Any, body: BlockDocumentUpdate, *, cipher: Cipher, now: dt.datetime
) -> None:
    document_id = current.id
    stored = cipher.decrypt(current.encrypted_data)
    fields = current.schema_fields
    if not (isinstance(fields, dict) and isinstance(fields.get("secret_fields"), list)):
        # Derived from the JSON schema: from the full fields, as answers derive them.
        fields = await read_block_schema_fields(conn, current.block_schema_id)
    paths = secrets.secret_fields(fields)
    data = secrets.keep_stored_secrets(body.data, stored, paths)
    if body.merge_existing_data:
        data = {**stored, **data}
    own, found = split_references(data)
    values: dict[str, Any] = {"encrypted_data": _encrypt(cipher, own), "updated": now}
    if body.block_schema_id is not None and body.block_schema_id != current.block_schema_id:
        await _check_schema_of_type(conn, body.block_schema_id, current.block_type_id)
        values["block_schema_id"] = body.block_schema_id
    await conn.execute(update(t.block_document).where(_c.id == document_id).values(**values))
    await _replace_references(conn, document_id, found, now=now)


async def _check_schema_of_type(conn: Connection, schema_id: uuid.UUID, type_id: uuid.UUID) -> None:
    query = select(_schema.block_type_id).where(_schema.id == schema_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise integrity_conflict()  # Prefect: an assertion (500); the foreign key would refuse it
    if row.block_type_id != type_id:
        raise BadRequest(OTHER_TYPE_SCHEMA)


async def _replace_references(
    conn: Connection, parent: uuid.UUID, found: list[Reference], *, now: dt.datetime
) -> None:
    """Keep the references sent again (same key, same document), add the new, drop the rest."""
    ref = t.block_document_reference.c
    query = select(ref.id, ref.name, ref.reference_block_document_id).where(
        ref.parent_block_document_id == parent
    )
    current = {
        (row.name, row.reference_block_document_id): row.id for row in await conn.execute(query)
    }
    new = [item for item in found if item not in current]
    await references.check_new_references(conn, parent, new)
    kept = set(found)
    dropped = [row_id for key, row_id in current.items() if key not in kept]
    if dropped:
        await conn.execute(delete(t.block_document_reference).where(ref.id.in_(dropped)))
    await _insert_references(conn, parent, new, now=now)


# --- delete --------------------------------------------------------------------------------


async def delete_block_document(
    conn: Connection, document_id: uuid.UUID, *, cipher: Cipher, now: dt.datetime
) -> None:
    """Delete the document. Its reference rows go with it (the foreign keys cascade), so a
    document that referenced it is answered without that key from then on, as in Prefect."""
    row = (await conn.execute(select(t.block_document).where(_c.id == document_id))).first()
    if row is None:
        raise NotFound(DOCUMENT_NOT_FOUND)
    answer = None
    if not row.is_anonymous:
        answer = await _read_one(conn, document_id, cipher=cipher, include_secrets=False)
    await forget_default_storage(conn, _c.id == document_id)
    await conn.execute(delete(t.block_document).where(_c.id == document_id))
    if answer is not None:
        _changed("deleted", answer, now=now)


# --- events --------------------------------------------------------------------------------


def _changed(action: str, answer: dict[str, Any], *, now: dt.datetime) -> None:
    """Prefect's ``prefect.block-document.<action>`` event (none for anonymous documents),
    carrying the document's top-level text values that are not secret."""
    if answer["is_anonymous"]:
        return
    schema = answer["block_schema"] or {}
    secret_keys = set(secrets.secret_fields(schema.get("fields")))
    data = {
        key: value
        for key, value in answer["data"].items()
        if key not in secret_keys and isinstance(value, str)
    }
    lifecycle_events.block_document_changed(
        action,
        _AnswerRow(answer),
        data=data,
        capabilities=schema.get("capabilities") or [],
        now=now,
    )


class _AnswerRow:
    """The few columns the event names, from the answer."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.id = answer["id"]
        self.name = answer["name"]
        self.block_type_id = answer["block_type_id"]
        self.block_type_name = answer["block_type_name"]
        self.block_schema_id = answer["block_schema_id"]
