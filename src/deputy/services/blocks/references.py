"""Block documents with their references resolved, in a bounded number of queries.

A document whose data held ``{"$ref": {"block_document_id": ...}}`` at a top-level key is
stored without that key, plus one ``block_document_reference`` row (parent, key, referenced
document). It is answered as Prefect answers it: the referenced document's data (resolved in
turn, to any depth) inlined under the key, and an entry under the key in
``block_document_references``.

Reading documents costs two queries whatever the depth: one recursive query collects every
reference edge reachable from them with the documents and their types, one reads the schemas
involved. The recursion is a ``UNION`` over edges, so it yields each edge once: shared
subtrees (a diamond) do not multiply rows, and even a cycle (never written: see
:func:`check_new_references`) could not make it loop.

The answer inlines a subtree once per path to it, so a graph of diamonds could answer a
response exponentially larger than the database. Before building, the expanded size and the
depth are measured on the edges alone; Prefect's depth limit (50) and a limit on the number of
documents in one answer make those a clear 400.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, Uuid, cast, null, select

from deputy.blocks import secrets
from deputy.blocks.crypto import Cipher
from deputy.db import tables as t
from deputy.errors import BadRequest, integrity_conflict
from deputy.schemas.block_documents import block_document_to_wire, reference_to_wire
from deputy.services.blocks.schemas import read_block_schemas_by_id

if TYPE_CHECKING:
    from deputy.db.connection import Connection

#: Prefect's limit on reference depth (levels below the document answered).
MAX_DEPTH = 50
#: The most documents one answer may inline (the document itself included).
MAX_EXPANDED = 1000

TOO_DEEP = (
    f"Block document reference graph exceeds max depth {MAX_DEPTH}; refusing to recurse further."
)
TOO_LARGE = (
    f"Block document reference graph expands to more than {MAX_EXPANDED} documents; "
    "refusing to answer it."
)
CYCLE = (
    "Cannot create block document reference: it would introduce a cycle into the "
    "block_document_reference graph (parent={parent}, reference={reference})."
)

_doc = t.block_document
_ref = t.block_document_reference.c
_type = t.block_type

#: Type columns read beside each document, prefixed so they do not clash with its own.
_TYPE_PREFIX = "type_"


@dataclass
class _Graph:
    documents: dict[uuid.UUID, Any] = field(default_factory=dict)
    types: dict[uuid.UUID, Any] = field(default_factory=dict)
    edges: dict[uuid.UUID, list[tuple[str, uuid.UUID]]] = field(default_factory=dict)
    schemas: dict[uuid.UUID, Any] = field(default_factory=dict)
    schema_types: dict[uuid.UUID, Any] = field(default_factory=dict)


class _TypeRow:
    """A block type read under prefixed labels, seen with its own column names."""

    def __init__(self, row: Any, prefix: str) -> None:
        mapping = row._mapping
        for column in _type.c:
            setattr(self, column.name, mapping[f"{prefix}{column.name}"])


async def read_documents(
    conn: Connection, ids: Sequence[uuid.UUID], *, cipher: Cipher, include_secrets: bool
) -> list[dict[str, Any]]:
    """The documents ``ids`` (those that exist, in that order) as answered."""
    if not ids:
        return []
    graph = await _load(conn, ids)
    roots = [doc_id for doc_id in dict.fromkeys(ids) if doc_id in graph.documents]
    _measure(graph, roots)
    builder = _Builder(graph, cipher, include_secrets)
    return [builder.document(doc_id) for doc_id in roots]


async def read_data(
    conn: Connection, doc_id: uuid.UUID, *, cipher: Cipher, include_secrets: bool
) -> dict[str, Any] | None:
    """Only the data of one document, references resolved (``None``: no such document)."""
    graph = await _load(conn, [doc_id], with_schemas=include_secrets is False)
    if doc_id not in graph.documents:
        return None
    _measure(graph, [doc_id])
    return _Builder(graph, cipher, include_secrets).data(doc_id)[0]


async def _load(conn: Connection, ids: Sequence[uuid.UUID], *, with_schemas: bool = True) -> _Graph:
    roots = select(
        _doc.c.id, cast(null(), String).label("name"), cast(null(), Uuid).label("parent")
    )
    roots = roots.where(_doc.c.id.in_(list(ids)))
    tree = roots.cte("tree", recursive=True)
    edges = select(_ref.reference_block_document_id, _ref.name, _ref.parent_block_document_id)
    edges = edges.join_from(
        t.block_document_reference, tree, _ref.parent_block_document_id == tree.c.id
    )
    tree = tree.union(edges)
    type_columns = [column.label(f"{_TYPE_PREFIX}{column.name}") for column in _type.c]
    query = select(
        tree.c.name.label("reference_name"),
        tree.c.parent.label("reference_parent"),
        *_doc.c,
        *type_columns,
    ).select_from(
        tree.join(_doc, _doc.c.id == tree.c.id).join(_type, _type.c.id == _doc.c.block_type_id)
    )
    graph = _Graph()
    for row in (await conn.execute(query)).all():
        graph.documents[row.id] = row
        graph.types[row.id] = _TypeRow(row, _TYPE_PREFIX)
        if row.reference_parent is not None:
            graph.edges.setdefault(row.reference_parent, []).append((row.reference_name, row.id))
    for children in graph.edges.values():
        children.sort()
    if with_schemas:
        await _load_schemas(conn, graph)
    return graph


async def _load_schemas(conn: Connection, graph: _Graph) -> None:
    """Every schema of the graph, with its full fields and its type."""
    ids = {row.block_schema_id for row in graph.documents.values()}
    for schema_id, (schema, kind) in (await read_block_schemas_by_id(conn, ids)).items():
        graph.schemas[schema_id] = schema
        graph.schema_types[schema_id] = kind


def _measure(graph: _Graph, roots: Iterable[uuid.UUID]) -> None:
    """Refuse (400) documents whose references go deeper than Prefect allows, expand to too
    many documents, or (only possible in a database edited by hand) loop."""
    depth: dict[uuid.UUID, int] = {}
    size: dict[uuid.UUID, int] = {}
    for root in roots:
        on_path = {root}
        stack: list[tuple[uuid.UUID, Any]] = []
        if root not in depth:
            stack.append((root, iter(graph.edges.get(root, ()))))
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                on_path.discard(node)
                below = [c for _, c in graph.edges.get(node, ())]
                depth[node] = 1 + max((depth[c] for c in below), default=-1)
                size[node] = min(MAX_EXPANDED + 1, 1 + sum(size[c] for c in below))
                continue
            child_id = child[1]
            if child_id in on_path:
                raise BadRequest(CYCLE.format(parent=node, reference=child_id))
            if child_id not in depth:
                on_path.add(child_id)
                stack.append((child_id, iter(graph.edges.get(child_id, ()))))
        if depth[root] > MAX_DEPTH:
            raise BadRequest(TOO_DEEP)
        if size[root] > MAX_EXPANDED:
            raise BadRequest(TOO_LARGE)


class _Builder:
    """Builds answers from a measured graph, each document's data decrypted once."""

    def __init__(self, graph: _Graph, cipher: Cipher, include_secrets: bool) -> None:
        self.graph = graph
        self.cipher = cipher
        self.include_secrets = include_secrets
        self._built: dict[uuid.UUID, tuple[dict[str, Any], dict[str, Any]]] = {}

    def document(self, doc_id: uuid.UUID) -> dict[str, Any]:
        row = self.graph.documents[doc_id]
        data, references = self.data(doc_id)
        return block_document_to_wire(
            row,
            data=data,
            references=references,
            block_type=self.graph.types[doc_id],
            block_schema=self.graph.schemas.get(row.block_schema_id),
            schema_type=self.graph.schema_types.get(row.block_schema_id),
        )

    def data(self, doc_id: uuid.UUID) -> tuple[dict[str, Any], dict[str, Any]]:
        """The document's data with references inlined, and its references entry."""
        if doc_id in self._built:
            return self._built[doc_id]
        row = self.graph.documents[doc_id]
        data = self.cipher.decrypt(row.encrypted_data)
        if not self.include_secrets:
            schema = self.graph.schemas.get(row.block_schema_id)
            data = secrets.obfuscate(data, secrets.secret_fields(schema.fields if schema else None))
        references: dict[str, Any] = {}
        for name, child_id in self.graph.edges.get(doc_id, ()):
            child_data, child_references = self.data(child_id)
            data[name] = child_data
            references[name] = reference_to_wire(
                self.graph.documents[child_id],
                block_type=self.graph.types[child_id],
                references=child_references,
            )
        self._built[doc_id] = (data, references)
        return data, references


# --- writing references ---------------------------------------------------------------------


async def reachable_from(conn: Connection, starts: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Every document reachable from ``starts`` by references (``starts`` included)."""
    start_ids = list(starts)
    if not start_ids:
        return set()
    seed = select(_doc.c.id).where(_doc.c.id.in_(start_ids)).cte("reach", recursive=True)
    step = select(_ref.reference_block_document_id).join_from(
        t.block_document_reference, seed, _ref.parent_block_document_id == seed.c.id
    )
    reach = seed.union(step)
    return set((await conn.execute(select(reach.c.id))).scalars().all())


async def check_new_references(
    conn: Connection,
    parent: uuid.UUID,
    references: Sequence[tuple[str, uuid.UUID]],
    *,
    new_parent: bool = False,
) -> None:
    """Refuse, in ``references``' order, one that would close a cycle (400, Prefect's message;
    a self reference is one) or that names no document (Prefect's foreign-key 409). A
    ``new_parent`` (being created) is referenced by nothing, so it closes no cycle."""
    if not references:
        return
    targets = [target for _, target in references]
    existing = set(
        (await conn.execute(select(_doc.c.id).where(_doc.c.id.in_(targets)))).scalars().all()
    )
    reach: set[uuid.UUID] = set()
    if not new_parent:
        reach = await reachable_from(conn, [target for target in targets if target in existing])
    for _, target in references:
        if target == parent or (parent in reach and parent in await reachable_from(conn, [target])):
            raise BadRequest(CYCLE.format(parent=parent, reference=target))
        if target not in existing:
            raise integrity_conflict()  # Prefect's insert fails on the foreign key
