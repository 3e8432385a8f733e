"""Block types in the service layer: creation rules, the replica race on a slug, updates as
Prefect decides them, deletes with what goes with them, and the filters."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select, update

from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.errors import Conflict, Forbidden, NotFound
from deputy.schemas.blocks import (
    BlockSchemaCreate,
    BlockSchemaFilter,
    BlockTypeCreate,
    BlockTypeFilter,
    BlockTypeUpdate,
)
from deputy.services.blocks import schemas as block_schemas
from deputy.services.blocks import types as block_types

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def body(slug: str, **fields: Any) -> BlockTypeCreate:
    return BlockTypeCreate.model_validate({"name": slug.title(), "slug": slug, **fields})


async def create(database: Database, slug: str, **fields: Any) -> Any:
    async with database.write() as conn:
        row, created = await block_types.create_block_type(conn, body(slug, **fields), now=NOW)
    assert created
    return row


async def count(database: Database, table: Any) -> int:
    async with database.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def protect(database: Database, block_type_id: uuid.UUID) -> None:
    async with database.write() as conn:
        await conn.execute(
            update(t.block_type).where(t.block_type.c.id == block_type_id).values(is_protected=True)
        )


# --- create --------------------------------------------------------------------------------


async def test_a_created_type_is_stored_as_prefect_stores_it(database: Database) -> None:
    row = await create(
        database,
        "fancy",
        logo_url="  https://logo  ",
        documentation_url="https://docs",
        description="<b>bold</b> & 'q'",
        code_example='x = "<y>"',
    )
    async with database.read() as conn:
        stored = await block_types.read_block_type(conn, row.id)
        by_slug = await block_types.read_block_type_by_slug(conn, "fancy")
    assert stored == by_slug
    assert (stored.name, stored.slug, stored.is_protected) == ("Fancy", "fancy", False)
    # URLs lose surrounding blanks; description and code example are HTML-escaped, not quotes.
    assert (stored.logo_url, stored.documentation_url) == ("https://logo", "https://docs")
    assert stored.description == "&lt;b&gt;bold&lt;/b&gt; &amp; 'q'"
    assert stored.code_example == 'x = "&lt;y&gt;"'
    assert (stored.created, stored.updated) == (NOW, NOW)


@pytest.mark.parametrize("name", ["Prefect", "prefect thing", "PREFECTED", "Prefectly"])
async def test_names_starting_with_prefect_are_reserved(database: Database, name: str) -> None:
    reserved = BlockTypeCreate(name=name, slug="reserved")
    async with database.write() as conn:
        with pytest.raises(Forbidden) as refused:
            await block_types.create_block_type(conn, reserved, now=NOW)
    assert refused.value.message == "Block type names beginning with 'Prefect' are reserved."
    assert await count(database, t.block_type) == 0


async def test_a_slug_taken_meanwhile_by_the_same_type_answers_it(database: Database) -> None:
    """Two replicas registering the same block: one inserts, the other gets the winner back
    (created False), and one row exists."""
    same = body("raced", description="a < b")
    async with database.write() as conn:
        first, created_first = await block_types.create_block_type(conn, same, now=NOW)
    async with database.write() as conn:
        second, created_second = await block_types.create_block_type(conn, same, now=NOW)
    assert (created_first, created_second) == (True, False)
    assert second.id == first.id
    assert await count(database, t.block_type) == 1


async def test_a_slug_taken_meanwhile_by_another_type_is_a_409(database: Database) -> None:
    await create(database, "raced")
    async with database.write() as conn:
        with pytest.raises(Conflict) as refused:
            await block_types.create_block_type(conn, body("raced", name="Else"), now=NOW)
    assert refused.value.message == 'Block type with name "Else" already exists'


async def test_concurrent_creations_of_one_type_end_with_one_row(database: Database) -> None:
    same = body("together", logo_url="https://l")

    async def write() -> tuple[Any, bool]:
        async with database.write() as conn:
            return await block_types.create_block_type(conn, same, now=NOW)

    results = await asyncio.wait_for(asyncio.gather(write(), write()), timeout=30)
    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0].id == results[1][0].id
    assert await count(database, t.block_type) == 1


# --- reads ---------------------------------------------------------------------------------


async def test_missing_types_are_prefects_404(database: Database) -> None:
    async with database.read() as conn:
        with pytest.raises(NotFound) as by_id:
            await block_types.read_block_type(conn, uuid.uuid4())
        with pytest.raises(NotFound) as by_slug:
            await block_types.read_block_type_by_slug(conn, "nope")
        assert await block_types.find_block_type(conn, uuid.uuid4()) is None
    assert by_id.value.message == by_slug.value.message == "Block type not found"


# --- update --------------------------------------------------------------------------------


async def test_update_writes_only_the_keys_sent(database: Database) -> None:
    row = await create(database, "upd", description="d", code_example="c", logo_url="l")
    later = NOW + dt.timedelta(minutes=1)
    async with database.write() as conn:
        patch = BlockTypeUpdate(description="new <d>", logo_url=None)
        await block_types.update_block_type(conn, row.id, patch, now=later)
    async with database.read() as conn:
        stored = await block_types.read_block_type(conn, row.id)
    # Updates are not escaped (only creation is), as in Prefect.
    assert (stored.description, stored.logo_url, stored.code_example) == ("new <d>", None, "c")
    assert stored.updated == later


async def test_an_update_equal_to_the_stored_type_writes_nothing(database: Database) -> None:
    """Prefect skips the write when all four fields are sent and equal (escapes aside)."""
    row = await create(database, "same", description="a < b", code_example="x", logo_url="l")
    later = NOW + dt.timedelta(minutes=1)
    unchanged = BlockTypeUpdate(
        description="a < b", code_example="x", logo_url="l", documentation_url=None
    )
    async with database.write() as conn:
        await block_types.update_block_type(conn, row.id, unchanged, now=later)
        stored = await block_types.read_block_type(conn, row.id)
    assert stored.updated == NOW
    # A subset differs from the four stored fields, so it is written (``updated`` moves).
    async with database.write() as conn:
        await block_types.update_block_type(conn, row.id, BlockTypeUpdate(logo_url="l"), now=later)
        stored = await block_types.read_block_type(conn, row.id)
    assert (stored.logo_url, stored.updated) == ("l", later)


async def test_protected_types_can_be_updated_as_in_prefect(database: Database) -> None:
    row = await create(database, "system")
    await protect(database, row.id)
    async with database.write() as conn:
        await block_types.update_block_type(
            conn, row.id, BlockTypeUpdate(description="fresh"), now=NOW
        )
        assert (await block_types.read_block_type(conn, row.id)).description == "fresh"


async def test_updating_a_missing_type_is_a_404(database: Database) -> None:
    async with database.write() as conn:
        with pytest.raises(NotFound):
            await block_types.update_block_type(conn, uuid.uuid4(), BlockTypeUpdate(), now=NOW)


# --- delete --------------------------------------------------------------------------------


async def test_deleting_a_type_takes_its_schemas_and_references(database: Database) -> None:
    inner = await create(database, "inner")
    outer = await create(database, "outer")
    fields = {
        "title": "Outer",
        "properties": {"inner": {"$ref": "#/definitions/Inner"}},
        "block_schema_references": {
            "inner": {"block_type_slug": "inner", "block_schema_checksum": "sha256:unknown"}
        },
        "definitions": {"Inner": {"title": "Inner", "block_type_slug": "inner"}},
    }
    async with database.write() as conn:
        await block_schemas.create_block_schema(
            conn, BlockSchemaCreate(fields=fields, block_type_id=outer.id), now=NOW
        )
    # The outer schema, the inner one registered from its definitions, one reference.
    assert (
        await count(database, t.block_schema),
        await count(database, t.block_schema_reference),
    ) == (2, 1)
    async with database.write() as conn:
        await block_types.delete_block_type(conn, inner.id, now=NOW)
    # The nested schema went with its type, and the reference with it; the outer stays.
    assert await count(database, t.block_schema) == 1
    assert await count(database, t.block_schema_reference) == 0
    async with database.write() as conn:
        await block_types.delete_block_type(conn, outer.id, now=NOW)
        with pytest.raises(NotFound):
            await block_types.delete_block_type(conn, outer.id, now=NOW)
    assert (await count(database, t.block_type), await count(database, t.block_schema)) == (0, 0)


async def test_protected_types_cannot_be_deleted(database: Database) -> None:
    row = await create(database, "guarded")
    await protect(database, row.id)
    async with database.write() as conn:
        with pytest.raises(Forbidden) as refused:
            await block_types.delete_block_type(conn, row.id, now=NOW)
    assert refused.value.message == "protected block types cannot be deleted."
    assert await count(database, t.block_type) == 1


# --- filters -------------------------------------------------------------------------------


async def _filter(database: Database, **kwargs: Any) -> list[str]:
    options = {"type_filter": None, "schema_filter": None, "offset": 0, "limit": 200, **kwargs}
    async with database.read() as conn:
        rows = await block_types.filter_block_types(
            conn,
            options["type_filter"],
            options["schema_filter"],
            offset=options["offset"],
            limit=options["limit"],
        )
    return [row.slug for row in rows]


async def test_filters_sort_by_name_and_match_as_prefect(database: Database) -> None:
    for slug, name in [("b", "Beta"), ("a", "Alpha"), ("g", "Gamma"), ("ab", "Alphabet")]:
        await create(database, slug, name=name)
    assert await _filter(database) == ["a", "ab", "b", "g"]  # by name
    like = BlockTypeFilter.model_validate({"name": {"like_": "ALP"}})
    assert await _filter(database, type_filter=like) == ["a", "ab"]
    slugs = BlockTypeFilter.model_validate({"slug": {"any_": ["g", "a", "zzz"]}})
    assert await _filter(database, type_filter=slugs) == ["a", "g"]
    none = BlockTypeFilter.model_validate({"slug": {"any_": []}})
    assert await _filter(database, type_filter=none) == []
    assert await _filter(database, offset=1, limit=2) == ["ab", "b"]


async def test_the_schema_filter_keeps_types_with_a_matching_schema(database: Database) -> None:
    storage = await create(database, "storage")
    plain = await create(database, "plain")
    await create(database, "schemaless")
    async with database.write() as conn:
        for row, capabilities, title in [
            (storage, ["read-path", "write-path"], "S"),
            (plain, ["read-path"], "P"),
        ]:
            schema = BlockSchemaCreate(
                fields={"title": title}, block_type_id=row.id, capabilities=capabilities
            )
            await block_schemas.create_block_schema(conn, schema, now=NOW)
    both = BlockSchemaFilter.model_validate(
        {"block_capabilities": {"all_": ["write-path", "read-path"]}}
    )
    assert await _filter(database, schema_filter=both) == ["storage"]
    read = BlockSchemaFilter.model_validate({"block_capabilities": {"all_": ["read-path"]}})
    assert await _filter(database, schema_filter=read) == ["plain", "storage"]
    # An empty capability list is no condition, but a schema must still exist.
    anything = BlockSchemaFilter.model_validate({"block_capabilities": {"all_": []}})
    assert await _filter(database, schema_filter=anything) == ["plain", "storage"]
