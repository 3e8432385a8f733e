"""Registering Prefect's block catalog: a fresh database gets what a fresh Prefect 3.9.1 server
has, later starts cost one query, an upgraded catalog updates in place, protected types are
protected, failures are skipped, and replicas starting together register it once.

(tests/e2e/test_catalog_journey.py compares the result with a real Prefect server's.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, insert, select

from catalogs import catalog_home, prefect_files, source_for
from databases import counted_statements
from deputy.catalog.blocks import BlockCatalog, CatalogEntry, CatalogFiles
from deputy.catalog.cache import GENERATED_NAME, CatalogSource
from deputy.catalog.files import COLLECTION_BLOCKS
from deputy.db import tables as t
from deputy.db.engine import Database
from deputy.services.blocks import catalog as block_catalog
from deputy.settings import Settings

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
PROTECTED = {"secret", "webhook", "local-file-system"}


def real_catalog(tmp_path: Path) -> BlockCatalog:
    files = prefect_files()
    folder = catalog_home(tmp_path) / "catalog" / files.cache_key
    generated = (folder / GENERATED_NAME).read_bytes()
    collections = files.data_file(COLLECTION_BLOCKS).read_bytes()
    return CatalogFiles(files.version, generated, collections).parse()


async def register(database: Database, catalog: BlockCatalog, now: dt.datetime = NOW) -> bool:
    async with database.write() as conn:
        return await block_catalog.register_block_catalog(conn, catalog, now=now)


async def types_by_slug(database: Database) -> dict[str, Any]:
    async with database.read() as conn:
        rows = (await conn.execute(select(t.block_type))).all()
    return {row.slug: row for row in rows}


async def count(database: Database, table: Any) -> int:
    async with database.read() as conn:
        found: int = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
    return found


def with_digest(catalog: BlockCatalog, digest: str, **parts: Any) -> BlockCatalog:
    return dataclasses.replace(catalog, digest=digest, **parts)


def entry(slug: str, fields: dict[str, Any] | None = None, **block_type: Any) -> CatalogEntry:
    return CatalogEntry(
        block_type={"name": slug.title(), "slug": slug, **block_type},
        block_schema={"fields": fields or {"title": slug, "type": "object"}, "capabilities": []},
    )


def tiny(*collections: CatalogEntry, digest: str = "sha256:tiny") -> BlockCatalog:
    return BlockCatalog("3.9.1", digest, system=(), registry=(), collections=collections)


# --- a fresh database ----------------------------------------------------------------------


async def test_a_fresh_database_gets_the_catalog_of_a_fresh_prefect_server(
    database: Database, tmp_path: Path
) -> None:
    catalog = real_catalog(tmp_path)
    assert await register(database, catalog) is True
    types = await types_by_slug(database)
    assert set(types) == catalog.slugs
    assert len(types) == 54  # as many as Prefect 3.9.1 lists
    assert {slug for slug, row in types.items() if row.is_protected} == PROTECTED
    # 57 entries, and the nested blocks some collection schemas register from their
    # definitions, as Prefect does: 64 schemas, as Prefect 3.9.1 lists.
    assert await count(database, t.block_schema) == 64
    assert await count(database, t.block_schema_reference) > 0
    async with database.read() as conn:
        assert await block_catalog.registered_digest(conn) == catalog.digest
        value = (
            await conn.execute(
                select(t.configuration.c.value).where(
                    t.configuration.c.key == block_catalog.CATALOG_KEY
                )
            )
        ).scalar_one()
    assert value == {"digest": catalog.digest, "prefect_version": "3.9.1"}


async def test_every_schema_keeps_the_checksum_the_sdk_computes(
    database: Database, tmp_path: Path
) -> None:
    catalog = real_catalog(tmp_path)
    await register(database, catalog)
    generated = json.loads((tmp_path / "catalog" / "prefect-3.9.1" / GENERATED_NAME).read_text())
    async with database.read() as conn:
        stored = {
            (row.checksum, row.version)
            for row in (await conn.execute(select(t.block_schema))).all()
        }
    for part in ("system", "registry"):
        for written in generated[part]:
            schema = written["block_schema"]
            assert (schema["checksum"], schema["version"]) in stored
    collections = json.loads(prefect_files().data_file(COLLECTION_BLOCKS).read_text())
    for collection in collections["collections"].values():
        for block_type in collection["block_types"].values():
            schema = block_type["block_schema"]
            assert (schema["checksum"], schema["version"]) in stored


async def test_a_later_start_reads_one_row_and_writes_nothing(
    database: Database, tmp_path: Path
) -> None:
    catalog = real_catalog(tmp_path)
    await register(database, catalog)
    before = await types_by_slug(database)
    with counted_statements(database) as statements:
        async with database.read() as conn:
            assert await block_catalog.registered_digest(conn) == catalog.digest
    assert len(statements) == 1
    # Even asked to register (a replica that lost the race), it writes nothing.
    assert await register(database, catalog, now=NOW + dt.timedelta(days=1)) is False
    assert await types_by_slug(database) == before


async def test_register_at_start_does_it_once_in_the_background(
    database: Database, tmp_path: Path
) -> None:
    source = source_for(tmp_path)
    await block_catalog.register_at_start(source, database, lambda: NOW, delay_seconds=0)
    assert len(await types_by_slug(database)) == 54
    with counted_statements(database) as statements:
        await block_catalog.register_at_start(source, database, lambda: NOW, delay_seconds=0)
    assert len(statements) == 1  # the digest is the same: one read


async def test_without_the_extra_or_turned_off_nothing_is_registered(
    database: Database, tmp_path: Path
) -> None:
    off = source_for(tmp_path, enabled=False)
    await block_catalog.register_at_start(off, database, lambda: NOW, delay_seconds=0)
    empty = tmp_path / "site-packages"
    empty.mkdir()
    missing = CatalogSource(home=tmp_path, folder=empty, block_catalog=True)
    await block_catalog.register_at_start(missing, database, lambda: NOW, delay_seconds=0)
    assert await count(database, t.block_type) == 0
    assert not await _catalog_row(database)


async def _catalog_row(database: Database) -> bool:
    async with database.read() as conn:
        return await block_catalog.registered_digest(conn) is not None


async def test_an_unreadable_catalog_is_logged_not_retried(
    database: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = source_for(tmp_path)
    calls = 0

    async def broken() -> CatalogFiles:
        nonlocal calls
        calls += 1
        return CatalogFiles("3.9.1", b"{}", b"not json")

    source.block_catalog = broken  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="deputy.catalog"):
        await block_catalog.register_at_start(source, database, lambda: NOW, delay_seconds=0)
    assert calls == 1
    assert "block catalog is not registered" in caplog.text
    assert await count(database, t.block_type) == 0


# --- upgrades, protection, failures --------------------------------------------------------


async def test_a_new_catalog_updates_the_types_in_place(database: Database, tmp_path: Path) -> None:
    catalog = real_catalog(tmp_path)
    await register(database, catalog)
    before = await types_by_slug(database)
    first, *rest = catalog.collections
    changed = dataclasses.replace(
        first,
        block_type={**first.block_type, "name": "Renamed", "description": "x < y & z"},
        block_schema={**first.block_schema, "version": "9.9.9"},
    )
    secret = next(e for e in catalog.registry if e.slug == "secret")
    secret_changed = dataclasses.replace(
        secret, block_type={**secret.block_type, "documentation_url": " https://docs/x "}
    )
    registry = tuple(secret_changed if e.slug == "secret" else e for e in catalog.registry)
    upgraded = with_digest(
        catalog, "sha256:upgraded", registry=registry, collections=(changed, *rest)
    )
    assert await register(database, upgraded, now=NOW + dt.timedelta(days=1)) is True
    after = await types_by_slug(database)
    assert set(after) == set(before)  # no duplicates, nothing lost
    assert after[first.slug].id == before[first.slug].id
    assert after[first.slug].name == before[first.slug].name  # Prefect keeps the name
    assert after[first.slug].description == "x < y & z"  # updated as given, not escaped
    assert after["secret"].documentation_url == "https://docs/x"
    assert after["secret"].is_protected  # stays protected
    assert await count(database, t.block_schema) == 65  # the new version of one schema


async def test_a_type_registered_by_a_client_becomes_protected(
    database: Database, tmp_path: Path
) -> None:
    """Without the extra, the SDK registers ``secret`` on its first save (unprotected); once
    the catalog arrives, the system type is Prefect's again."""
    async with database.write() as conn:
        await conn.execute(
            insert(t.block_type).values(
                id=uuid.uuid4(),
                created=NOW,
                updated=NOW,
                name="Secret",
                slug="secret",
                description="mine",
                is_protected=False,
            )
        )
    catalog = real_catalog(tmp_path)
    await register(database, catalog)
    secret = (await types_by_slug(database))["secret"]
    assert secret.is_protected
    expected = next(e for e in catalog.system if e.slug == "secret").block_type
    assert secret.description == expected["description"]


async def test_a_deleted_type_is_not_brought_back_by_the_same_catalog(
    database: Database, tmp_path: Path
) -> None:
    catalog = real_catalog(tmp_path)
    await register(database, catalog)
    async with database.write() as conn:
        await conn.execute(delete(t.block_type).where(t.block_type.c.slug == "slack-webhook"))
    await register(database, catalog)
    assert "slack-webhook" not in await types_by_slug(database)


async def test_descriptions_are_escaped_when_created_as_prefect_does(database: Database) -> None:
    described = entry("described", description="a < b & c", code_example="x > 1")
    await register(database, tiny(described))
    row = (await types_by_slug(database))["described"]
    assert row.description == "a &lt; b &amp; c"
    assert row.code_example == "x &gt; 1"


async def test_an_entry_that_fails_is_skipped_and_the_rest_registered(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    nested_missing = entry(
        "broken",
        {
            "title": "Broken",
            "type": "object",
            "properties": {"inner": {"$ref": "#/definitions/Inner"}},
            "block_schema_references": {
                "inner": {"block_type_slug": "nowhere", "block_schema_checksum": "sha256:0"}
            },
        },
    )
    bad_name = entry("bad-name", name="Bad/Name")
    with caplog.at_level(logging.WARNING, logger="deputy.catalog"):
        assert await register(database, tiny(entry("good"), nested_missing, bad_name)) is True
    types = await types_by_slug(database)
    assert set(types) == {"good", "broken"}  # the type of the failed schema stays, as Prefect's
    async with database.read() as conn:
        owners = (await conn.execute(select(t.block_schema.c.block_type_id))).scalars().all()
    assert owners == [types["good"].id]
    assert "'broken' skipped" in caplog.text
    assert "'bad-name' skipped" in caplog.text


async def test_install_system_block_types_installs_the_three_protected_types(
    database: Database, tmp_path: Path
) -> None:
    catalog = real_catalog(tmp_path)
    for _ in range(2):  # idempotent
        async with database.write() as conn:
            await block_catalog.install_system_block_types(conn, catalog, now=NOW)
    types = await types_by_slug(database)
    assert set(types) == PROTECTED
    assert all(row.is_protected for row in types.values())
    assert await count(database, t.block_schema) == 3
    async with database.read() as conn:  # not the whole catalog: it stays to be registered
        assert await block_catalog.registered_digest(conn) is None


# --- replicas ------------------------------------------------------------------------------


async def test_replicas_starting_together_register_it_once(
    database: Database, settings: Settings, tmp_path: Path
) -> None:
    catalog = real_catalog(tmp_path)
    other = Database(settings)  # a second replica's engine on the same database
    try:
        results = await asyncio.wait_for(
            asyncio.gather(register(database, catalog), register(other, catalog)), timeout=60
        )
    finally:
        await other.dispose()
    assert sorted(results) == [False, True]
    assert len(await types_by_slug(database)) == 54
    assert await count(database, t.block_schema) == 64
