"""The block catalog of a fresh Prefect server, as the entries deputy registers.

Three parts, in the order Prefect's server registers them at start: its protected system
types, the block classes in the SDK's registry (both written by the generator), and the
collection blocks of ``collection_blocks_data.json`` (read from Prefect's distribution). Each
entry is a block type and its schema as a client would post them. The digest covers both
files: equal digests mean the same catalog, so a server registers it once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

#: Changes when what deputy registers from the same files changes, so that a server
#: registers the catalog again after such an upgrade.
REGISTRATION_FORMAT = b"deputy-block-catalog/1"
BLOCK_TYPE_KEYS = ("name", "slug", "logo_url", "documentation_url", "description", "code_example")
BLOCK_SCHEMA_KEYS = ("fields", "capabilities", "version")


class CatalogError(ValueError):
    """A catalog file that is not what Prefect writes."""


@dataclass(frozen=True)
class CatalogEntry:
    """One block type (``name``, ``slug``, URLs, description, code example) and its schema
    (``fields``, ``capabilities``, ``version``)."""

    block_type: dict[str, Any]
    block_schema: dict[str, Any]

    @property
    def slug(self) -> str:
        slug: str = self.block_type["slug"]
        return slug


@dataclass(frozen=True)
class BlockCatalog:
    prefect_version: str
    digest: str
    #: Prefect's protected types: created or overwritten, and marked protected.
    system: tuple[CatalogEntry, ...]
    #: The SDK's registry: each type created or updated, then its schema, one at a time.
    registry: tuple[CatalogEntry, ...]
    #: The integrations' blocks: every type first, then every schema (they refer to each
    #: other's types).
    collections: tuple[CatalogEntry, ...]

    @property
    def slugs(self) -> set[str]:
        return {entry.slug for entry in (*self.system, *self.registry, *self.collections)}


@dataclass(frozen=True)
class CatalogFiles:
    """The two files' bytes, read; parsed only when the catalog must be registered."""

    prefect_version: str
    generated: bytes
    collections: bytes

    @property
    def digest(self) -> str:
        hashed = hashlib.sha256(REGISTRATION_FORMAT)
        for part in (self.generated, self.collections):
            hashed.update(len(part).to_bytes(8, "big"))
            hashed.update(part)
        return "sha256:" + hashed.hexdigest()

    def parse(self) -> BlockCatalog:
        generated = _object(_loads(self.generated), "the generated catalog")
        collections = _object(_loads(self.collections), "collection_blocks_data.json")
        return BlockCatalog(
            prefect_version=self.prefect_version,
            digest=self.digest,
            system=_entries(generated.get("system"), "system"),
            registry=_entries(generated.get("registry"), "registry"),
            collections=_collection_entries(collections),
        )


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise CatalogError(f"not JSON: {error}") from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CatalogError(f"{what} is not an object")
    return value


def _entries(value: Any, what: str) -> tuple[CatalogEntry, ...]:
    if not isinstance(value, list):
        raise CatalogError(f"the generated catalog's {what} is not a list")
    items = [_object(item, f"an entry of the generated {what}") for item in value]
    return tuple(_entry(item.get("block_type"), item.get("block_schema")) for item in items)


def _collection_entries(data: dict[str, Any]) -> tuple[CatalogEntry, ...]:
    """``{"collections": {name: {"block_types": {slug: {...type, "block_schema": {...}}}}}}``,
    in the file's order."""
    collections = _object(data.get("collections"), "collection_blocks_data.json's collections")
    found = []
    for collection in collections.values():
        block_types = _object(_object(collection, "a collection").get("block_types"), "types")
        for block_type in block_types.values():
            described = _object(block_type, "a block type")
            found.append(_entry(described, described.get("block_schema")))
    return tuple(found)


def _entry(block_type: Any, block_schema: Any) -> CatalogEntry:
    if not isinstance(block_type, dict) or not isinstance(block_type.get("slug"), str):
        raise CatalogError(f"a block type without a slug: {block_type!r:.200}")
    if not isinstance(block_schema, dict) or not isinstance(block_schema.get("fields"), dict):
        raise CatalogError(f"the block type {block_type['slug']!r} has no schema")
    return CatalogEntry(
        block_type={key: block_type.get(key) for key in BLOCK_TYPE_KEYS},
        block_schema={key: block_schema[key] for key in BLOCK_SCHEMA_KEYS if key in block_schema},
    )
