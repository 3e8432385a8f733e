"""Block schemas in the service layer: Prefect's checksum (proven on every schema Prefect
ships), nested blocks registered and put back as Prefect does, idempotent and race-safe
creation, reads, filters, capabilities and deletes."""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import importlib.metadata
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from databases import counted_statements
from deputy.blocks.checksum import InvalidSchemaFields, schema_checksum
from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.errors import Conflict, Forbidden, NotFound, Unprocessable
from deputy.schemas.blocks import BlockSchemaCreate, BlockSchemaFilter, BlockTypeCreate
from deputy.services.blocks import schemas as block_schemas
from deputy.services.blocks import types as block_types
from prefect_venv import PREFECT_VENV

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def prefect_file(relative: str) -> Path | None:
    """A file of the installed Prefect 3.9.1 distribution (the ``ui`` extra or the e2e
    virtualenv); never copied into this repository."""
    try:
        found = Path(str(importlib.metadata.distribution("prefect").locate_file(relative)))
        if found.is_file():
            return found
    except importlib.metadata.PackageNotFoundError:
        pass
    matches = glob.glob(str(PREFECT_VENV / "lib" / "python3*" / "site-packages" / relative))
    return Path(matches[0]) if matches else None


def require(path: Path | None) -> Path:
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Prefect 3.9.1 distribution not found")
        pytest.skip("Prefect 3.9.1 distribution not found")
    return path


# --- the checksum --------------------------------------------------------------------------


def test_checksums_match_every_schema_prefect_ships() -> None:
    data = json.loads(
        require(prefect_file("prefect/server/collection_blocks_data.json")).read_text()
    )
    pairs = [
        (slug, block_type["block_schema"])
        for collection in data["collections"].values()
        for slug, block_type in collection["block_types"].items()
    ]
    assert len(pairs) >= 40
    mismatched = [slug for slug, s in pairs if schema_checksum(s["fields"]) != s["checksum"]]
    assert mismatched == []


def test_secret_fields_and_block_definitions_do_not_count() -> None:
    base: dict[str, Any] = {
        "title": "B",
        "properties": {"x": {"$ref": "#/definitions/Thing"}, "b": {"$ref": "#/definitions/B2"}},
        "definitions": {"Thing": {"title": "Thing", "type": "object"}},
    }
    checksum = schema_checksum(base)
    assert checksum.startswith("sha256:")
    assert len(checksum) == 71
    with_secrets = {**base, "secret_fields": ["x"], "properties": {**base["properties"]}}
    with_secrets["properties"]["x"] = {"$ref": "#/definitions/Thing", "secret_fields": ["y"]}
    assert schema_checksum(with_secrets) == checksum
    # A block's definition and a definition nothing refers to are left out.
    definitions = {
        **base["definitions"],
        "B2": {"title": "B2", "block_type_slug": "b2"},
        "Unused": {"type": "string"},
    }
    assert schema_checksum({**base, "definitions": definitions}) == checksum
    # A definition something refers to counts; a secret_fields inside an array counts too.
    changed = {**base, "definitions": {"Thing": {"title": "Thing", "type": "array"}}}
    assert schema_checksum(changed) != checksum
    assert schema_checksum({**base, "x": [{"secret_fields": 1}]}) != checksum


def test_block_only_definitions_checksum_as_no_definitions() -> None:
    fields = {"title": "A", "properties": {"b": {"$ref": "#/definitions/B"}}}
    only_blocks = {**fields, "definitions": {"B": {"title": "B", "block_type_slug": "b"}}}
    assert schema_checksum(only_blocks) == schema_checksum(fields)


def test_definitions_referring_to_each_other_in_a_cycle_end() -> None:
    fields = {
        "properties": {"a": {"$ref": "#/definitions/A"}},
        "definitions": {
            "A": {"properties": {"b": {"$ref": "#/definitions/B"}}},
            "B": {"properties": {"a": {"$ref": "#/definitions/A"}}},
        },
    }
    assert schema_checksum(fields).startswith("sha256:")


@pytest.mark.parametrize(
    "definitions",
    [["not", "an", "object"], {"A": ["not", "an", "object"]}, {"A": "text"}],
)
def test_definitions_prefect_would_crash_on_are_refused(definitions: Any) -> None:
    fields = {"properties": {"a": {"$ref": "#/definitions/A"}}, "definitions": definitions}
    with pytest.raises(InvalidSchemaFields):
        schema_checksum(fields)


# --- helpers -------------------------------------------------------------------------------


async def new_type(database: Database, slug: str) -> Any:
    async with database.write() as conn:
        row, _ = await block_types.create_block_type(
            conn, BlockTypeCreate(name=slug.title(), slug=slug), now=NOW
        )
    return row


async def save(database: Database, fields: dict[str, Any], block_type: Any, **extra: Any) -> Any:
    async with database.write() as conn:
        body = BlockSchemaCreate(fields=fields, block_type_id=block_type.id, **extra)
        return await block_schemas.create_block_schema(conn, body, now=NOW)


async def count(database: Database, table: Any) -> int:
    query = select(func.count()).select_from(table)
    if table is t.configuration:
        query = query.where(t.configuration.c.key == "server-default-result-storage")
    async with database.read() as conn:
        return int((await conn.execute(query)).scalar_one())


def nested_fields(checksum: str = "sha256:not-registered-yet") -> dict[str, Any]:
    """A schema shaped as the SDK sends it: a nested ``child`` block, a union ``either`` of
    two blocks, and a non-block definition used by the child."""
    return {
        "title": "Parent",
        "type": "object",
        "block_type_slug": "parent",
        "properties": {
            "child": {"$ref": "#/definitions/Child"},
            "either": {"anyOf": [{"$ref": "#/definitions/Child"}, {"$ref": "#/definitions/Other"}]},
        },
        "secret_fields": ["child.token", "either.token"],
        "block_schema_references": {
            "child": {"block_type_slug": "child", "block_schema_checksum": checksum},
            "either": [
                {"block_type_slug": "child", "block_schema_checksum": checksum},
                {"block_type_slug": "other", "block_schema_checksum": "sha256:other"},
            ],
        },
        "definitions": {
            "Child": {
                "title": "Child",
                "type": "object",
                "block_type_slug": "child",
                "properties": {"token": {"type": "string"}, "mode": {"$ref": "#/definitions/Mode"}},
                "secret_fields": ["token"],
                "block_schema_references": {},
            },
            "Other": {
                "title": "Other",
                "type": "object",
                "block_type_slug": "other",
                "properties": {"port": {"type": "integer"}},
                "secret_fields": [],
                "block_schema_references": {},
            },
            "Mode": {"title": "Mode", "enum": ["a", "b"]},
        },
    }


# --- create --------------------------------------------------------------------------------


async def test_saving_the_same_schema_twice_answers_the_first(database: Database) -> None:
    kind = await new_type(database, "plain")
    fields = {"title": "Plain", "properties": {"a": {"type": "string"}}, "secret_fields": []}
    schema, block_type, created = await save(database, fields, kind, capabilities=["x"])
    assert created
    assert block_type.id == kind.id
    assert schema.checksum == schema_checksum(fields)
    assert schema.fields == {**fields, "block_schema_references": {}}
    again, _, created_again = await save(database, fields, kind)
    assert (created_again, again.id, again.capabilities) == (False, schema.id, ["x"])
    # Another version of the same fields is another schema.
    versioned, _, created_versioned = await save(database, fields, kind, version="2")
    assert created_versioned
    assert versioned.id != schema.id
    assert await count(database, t.block_schema) == 2


async def test_nested_blocks_are_registered_from_the_definitions(database: Database) -> None:
    parent, child, other = [await new_type(database, s) for s in ("parent", "child", "other")]
    fields = nested_fields()
    schema, _, created = await save(database, fields, parent, capabilities=["c"], version="1")
    assert created
    # The answer to a creation: the stored fields with the references and definitions sent.
    assert schema.fields == {**fields, "definitions": fields["definitions"]}
    async with database.read() as conn:
        rows = (await conn.execute(select(t.block_schema).order_by(t.block_schema.c.created))).all()
        references = (await conn.execute(select(t.block_schema_reference))).all()
    assert [(r.block_type_id, r.version, r.capabilities) for r in rows] == [
        (parent.id, "1", ["c"]),
        (child.id, "non-versioned", []),
        (other.id, "non-versioned", []),
    ]
    # Stored: only the non-block definitions, and no block_schema_references.
    assert rows[0].fields == {
        key: value for key, value in fields.items() if key != "block_schema_references"
    } | {"definitions": {"Mode": fields["definitions"]["Mode"]}}
    # The child's checksum counts the root's non-block definitions it refers to.
    child_fields = {**fields["definitions"]["Child"], "definitions": fields["definitions"]}
    assert rows[1].checksum == schema_checksum(child_fields)
    assert rows[1].fields["definitions"] == {"Mode": fields["definitions"]["Mode"]}
    assert sorted((r.name, r.reference_block_schema_id) for r in references) == sorted(
        [("child", rows[1].id), ("either", rows[1].id), ("either", rows[2].id)]
    )


async def test_reading_puts_nested_blocks_back(database: Database) -> None:
    parent, _, _ = [await new_type(database, s) for s in ("parent", "child", "other")]
    fields = nested_fields()
    created, _, _ = await save(database, fields, parent)
    async with database.read() as conn:
        schema, block_type = await block_schemas.read_block_schema(conn, created.id)
        full = await block_schemas.read_block_schema_fields(conn, created.id)
        child_id = (
            await conn.execute(
                select(t.block_schema.c.id).where(t.block_schema.c.block_type_id != parent.id)
            )
        ).scalars()
    assert block_type.slug == "parent"
    assert full == schema.fields
    child_checksum = schema_checksum(
        {**fields["definitions"]["Child"], "definitions": fields["definitions"]}
    )
    # As in Prefect, a nested block's checksum counts every non-block definition of the root
    # that some definition refers to (``Mode`` here, though ``Other`` does not use it).
    other_checksum = schema_checksum(
        {**fields["definitions"]["Other"], "definitions": fields["definitions"]}
    )
    child_ref = {"block_schema_checksum": child_checksum, "block_type_slug": "child"}
    other_ref = {"block_schema_checksum": other_checksum, "block_type_slug": "other"}
    assert schema.fields["block_schema_references"] == {
        "child": child_ref,
        "either": [child_ref, other_ref],
    }
    child_full = {
        **fields["definitions"]["Child"],
        "block_schema_references": {},
    }
    assert schema.fields["definitions"] == {
        "Mode": fields["definitions"]["Mode"],
        "Child": child_full,
        "Other": fields["definitions"]["Other"],
    }
    assert schema.fields["secret_fields"] == fields["secret_fields"]
    assert len(list(child_id)) == 2


async def test_an_existing_nested_schema_is_referenced_not_copied(database: Database) -> None:
    parent, child, _ = [await new_type(database, s) for s in ("parent", "child", "other")]
    known, _, _ = await save(database, {"title": "Child", "block_type_slug": "child"}, child)
    fields = nested_fields(checksum=known.checksum)
    await save(database, fields, parent)
    async with database.read() as conn:
        links = (await conn.execute(select(t.block_schema_reference))).all()
    assert {link.reference_block_schema_id for link in links if link.name == "child"} == {known.id}
    assert await count(database, t.block_schema) == 3  # parent, the known child, other


async def test_a_union_lists_its_blocks_in_the_order_their_schemas_were_saved(
    database: Database,
) -> None:
    parent, _, other = [await new_type(database, s) for s in ("parent", "child", "other")]
    other_schema, _, _ = await save(database, nested_fields()["definitions"]["Other"], other)
    fields = nested_fields()
    fields["block_schema_references"]["either"][1]["block_schema_checksum"] = other_schema.checksum
    created, _, _ = await save(database, fields, parent)
    async with database.read() as conn:
        schema, _ = await block_schemas.read_block_schema(conn, created.id)
    either = schema.fields["block_schema_references"]["either"]
    assert [entry["block_type_slug"] for entry in either] == ["other", "child"]


async def test_a_nested_block_of_an_unknown_type_is_prefects_409(database: Database) -> None:
    parent = await new_type(database, "parent")
    with pytest.raises(Conflict) as refused:
        await save(database, nested_fields(), parent)
    assert refused.value.message == (
        "Cannot create block schema because block type 'child' was not found.Did you forget "
        "to register the block type?"
    )
    assert await count(database, t.block_schema) == 0  # nothing half-written


async def test_an_unknown_block_type_is_a_404(database: Database) -> None:
    missing = uuid.uuid4()
    body = BlockSchemaCreate(fields={}, block_type_id=missing)
    async with database.write() as conn:
        with pytest.raises(NotFound) as refused:
            await block_schemas.create_block_schema(conn, body, now=NOW)
    assert refused.value.message == f"Block type {missing} not found."


def _broken(case: str) -> dict[str, Any]:
    fields = nested_fields()
    if case == "references not an object":
        fields["block_schema_references"] = ["child"]
    elif case == "reference not an object":
        fields["block_schema_references"] = {"child": "sha256:x"}
    elif case == "no definitions":
        del fields["definitions"]
    elif case == "no such property":
        fields["properties"] = {}
    elif case == "definition missing":
        fields["definitions"] = {"Mode": {"enum": []}}
    return fields


@pytest.mark.parametrize(
    "case",
    [
        "references not an object",
        "reference not an object",
        "no definitions",
        "no such property",
        "definition missing",
    ],
)
async def test_fields_prefect_would_fail_on_are_a_422(database: Database, case: str) -> None:
    parent, _, _ = [await new_type(database, s) for s in ("parent", "child", "other")]
    with pytest.raises(Unprocessable):
        await save(database, _broken(case), parent)
    assert await count(database, t.block_schema) == 0


async def test_a_block_containing_itself_is_refused(database: Database) -> None:
    await new_type(database, "child")
    parent = await new_type(database, "parent")
    loop_reference = {"block_type_slug": "child", "block_schema_checksum": "sha256:bogus"}
    child = {
        "title": "Child",
        "block_type_slug": "child",
        "properties": {"again": {"$ref": "#/definitions/Child"}},
        "block_schema_references": {"again": loop_reference},
    }
    fields = {
        "title": "Parent",
        "properties": {"child": {"$ref": "#/definitions/Child"}},
        "block_schema_references": {"child": loop_reference},
        "definitions": {"Child": child},
    }
    with pytest.raises(Unprocessable) as refused:
        await save(database, fields, parent)
    assert refused.value.message == block_schemas.REFERENCE_CYCLE
    assert await count(database, t.block_schema) == 0


async def test_a_concurrent_save_of_the_same_schema_answers_the_winner(
    database: Database,
) -> None:
    """The second writer starts while the first holds its uncommitted row: on PostgreSQL its
    insert waits on the unique constraint and then yields; on SQLite it waits for the write
    lock and then finds the row. Both answer the same schema, one row exists."""
    parent, _, _ = [await new_type(database, s) for s in ("parent", "child", "other")]
    body = BlockSchemaCreate(fields=nested_fields(), block_type_id=parent.id)

    async def second() -> tuple[Any, Any, bool]:
        async with database.write() as conn:
            return await block_schemas.create_block_schema(conn, body, now=NOW)

    async with database.write() as conn:
        first, _, first_created = await block_schemas.create_block_schema(conn, body, now=NOW)
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.3)
    other, _, other_created = await asyncio.wait_for(waiting, timeout=30)
    assert (first_created, other_created) == (True, False)
    assert other.id == first.id
    assert other.fields["block_schema_references"]["child"]["block_type_slug"] == "child"
    assert await count(database, t.block_schema) == 3
    assert await count(database, t.block_schema_reference) == 3


async def test_many_concurrent_saves_end_with_one_schema_each(database: Database) -> None:
    parent, _, _ = [await new_type(database, s) for s in ("parent", "child", "other")]
    body = BlockSchemaCreate(fields=nested_fields(), block_type_id=parent.id)

    async def attempt() -> tuple[Any, Any, bool]:
        async with database.write() as conn:
            return await block_schemas.create_block_schema(conn, body, now=NOW)

    results = await asyncio.wait_for(asyncio.gather(*(attempt() for _ in range(4))), 60)
    assert sorted(created for _, _, created in results) == [False, False, False, True]
    assert len({schema.id for schema, _, _ in results}) == 1
    assert await count(database, t.block_schema) == 3


# --- reads ---------------------------------------------------------------------------------


async def test_reads_by_id_checksum_and_version(database: Database) -> None:
    kind = await new_type(database, "plain")
    fields = {"title": "Plain"}
    old, _, _ = await save(database, fields, kind, version="1")
    async with database.write() as conn:
        body = BlockSchemaCreate(fields=fields, block_type_id=kind.id, version="2")
        new, _, _ = await block_schemas.create_block_schema(
            conn, body, now=NOW + dt.timedelta(seconds=1)
        )
    async with database.read() as conn:
        newest, _ = await block_schemas.read_block_schema_by_checksum(conn, old.checksum, None)
        first, _ = await block_schemas.read_block_schema_by_checksum(conn, old.checksum, "1")
        found = await block_schemas.read_block_schemas_by_id(conn, [old.id, new.id, uuid.uuid4()])
        with pytest.raises(NotFound) as no_version:
            await block_schemas.read_block_schema_by_checksum(conn, old.checksum, "3")
        with pytest.raises(NotFound) as no_id:
            await block_schemas.read_block_schema(conn, uuid.uuid4())
    assert (newest.id, first.id) == (new.id, old.id)
    assert set(found) == {old.id, new.id}
    assert found[old.id][0].fields == {"title": "Plain", "block_schema_references": {}}
    assert found[old.id][1].slug == "plain"
    assert no_version.value.message == no_id.value.message == "Block schema not found"


async def test_filters_answer_newest_first(database: Database) -> None:
    a, b = await new_type(database, "a"), await new_type(database, "b")
    saved = []
    for index, (kind, capabilities, version) in enumerate(
        [(a, ["read"], "1"), (b, ["read", "write"], "1"), (a, ["write"], "2")]
    ):
        async with database.write() as conn:
            body = BlockSchemaCreate(
                fields={"title": f"S{index}"},
                block_type_id=kind.id,
                capabilities=capabilities,
                version=version,
            )
            schema, _, _ = await block_schemas.create_block_schema(
                conn, body, now=NOW + dt.timedelta(seconds=index)
            )
            saved.append(schema.id)

    async def titles(flt: dict[str, Any] | None, offset: int = 0, limit: int = 200) -> list[str]:
        parsed = BlockSchemaFilter.model_validate(flt) if flt is not None else None
        async with database.read() as conn:
            found = await block_schemas.filter_block_schemas(
                conn, parsed, offset=offset, limit=limit
            )
        return [schema.fields["title"] for schema, _ in found]

    assert await titles(None) == ["S2", "S1", "S0"]
    assert await titles(None, offset=1, limit=1) == ["S1"]
    assert await titles({"block_type_id": {"any_": [str(a.id)]}}) == ["S2", "S0"]
    assert await titles({"block_capabilities": {"all_": ["write"]}}) == ["S2", "S1"]
    assert await titles({"block_capabilities": {"all_": ["read", "write"]}}) == ["S1"]
    assert await titles({"version": {"any_": ["2"]}}) == ["S2"]
    assert await titles({"id": {"any_": [str(saved[0])]}}) == ["S0"]
    either = {"operator": "or_", "id": {"any_": [str(saved[0])]}, "version": {"any_": ["2"]}}
    assert await titles(either) == ["S2", "S0"]
    async with database.read() as conn:
        assert await block_schemas.read_block_capabilities(conn) == ["read", "write"]


async def test_reading_a_schema_takes_two_statements(database: Database) -> None:
    kind = await new_type(database, "plain")
    with counted_statements(database) as creating:
        schema, _, _ = await save(database, {"title": "Plain"}, kind)
    # The type, the lookup by checksum, the insert.
    assert len(creating) == 3, creating
    with counted_statements(database) as reading:
        async with database.read() as conn:
            await block_schemas.read_block_schema(conn, schema.id)
    assert len(reading) == 2, reading  # the schema with its type, the reference tree


# --- delete --------------------------------------------------------------------------------


async def test_delete_refuses_protected_types_and_clears_the_default_storage(
    database: Database,
) -> None:
    kind = await new_type(database, "storage")
    kept_kind = await new_type(database, "kept")
    schema, _, _ = await save(database, {"title": "Storage"}, kind)
    kept, _, _ = await save(database, {"title": "Kept"}, kept_kind)
    document_id = uuid.uuid4()
    async with database.write() as conn:
        await conn.execute(
            insert(t.block_document).values(
                id=document_id,
                created=NOW,
                updated=NOW,
                name="default",
                block_type_id=kind.id,
                block_schema_id=schema.id,
                encrypted_data="-",
            )
        )
        await conn.execute(
            insert(t.configuration).values(
                id=uuid.uuid4(),
                created=NOW,
                updated=NOW,
                key="server-default-result-storage",
                value={"default_result_storage_block_id": str(document_id)},
            )
        )
        await conn.execute(
            update(t.block_type).where(t.block_type.c.id == kind.id).values(is_protected=True)
        )
    async with database.write() as conn:
        with pytest.raises(Forbidden) as refused:
            await block_schemas.delete_block_schema(conn, schema.id)
    assert refused.value.message == "Block schemas for protected block types cannot be deleted."
    async with database.write() as conn:
        await block_schemas.delete_block_schema(conn, kept.id)  # another schema: kept
    assert await count(database, t.configuration) == 1
    async with database.write() as conn:
        await conn.execute(
            update(t.block_type).where(t.block_type.c.id == kind.id).values(is_protected=False)
        )
        await block_schemas.delete_block_schema(conn, schema.id)
        with pytest.raises(NotFound):
            await block_schemas.delete_block_schema(conn, schema.id)
    assert await count(database, t.configuration) == 0
    assert await count(database, t.block_document) == 0
