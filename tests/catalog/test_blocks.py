"""The block catalog read from Prefect's files: its three parts in Prefect's order, its digest,
and files that are not what Prefect writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from catalogs import generated_catalog, prefect_files
from deputy.blocks.checksum import schema_checksum
from deputy.catalog.blocks import CatalogError, CatalogFiles
from deputy.catalog.cache import GENERATED_NAME
from deputy.catalog.files import COLLECTION_BLOCKS

REGISTRY_SLUGS = {
    "slack-webhook",
    "ms-teams-webhook",
    "pager-duty-webhook",
    "twilio-sms",
    "opsgenie-webhook",
    "mattermost-webhook",
    "discord-webhook",
    "custom-webhook",
    "sendgrid-email",
    "secret",
    "webhook",
    "local-file-system",
    "remote-file-system",
    "smb",
}


def real_files() -> CatalogFiles:
    files = prefect_files()
    generated = (generated_catalog() / files.cache_key / GENERATED_NAME).read_bytes()
    collections = files.data_file(COLLECTION_BLOCKS).read_bytes()
    return CatalogFiles(files.version, generated, collections)


def test_the_catalog_has_prefects_three_parts_in_order() -> None:
    catalog = real_files().parse()
    assert catalog.prefect_version == "3.9.1"
    assert [entry.slug for entry in catalog.system] == ["webhook", "secret", "local-file-system"]
    assert {entry.slug for entry in catalog.registry} == REGISTRY_SLUGS
    assert len(catalog.registry) == len(REGISTRY_SLUGS)
    collections = json.loads(prefect_files().data_file(COLLECTION_BLOCKS).read_text())
    in_file = [
        slug
        for collection in collections["collections"].values()
        for slug in collection["block_types"]
    ]
    assert [entry.slug for entry in catalog.collections] == in_file
    # What a fresh Prefect 3.9.1 server lists: 54 block types.
    assert len(catalog.slugs) == 54


def test_generated_entries_carry_the_checksum_deputy_computes() -> None:
    """The generator writes the SDK's checksum; deputy's own function gives the same."""
    catalog = real_files().parse()
    generated = json.loads(real_files().generated)
    for part in ("system", "registry"):
        for entry, written in zip(getattr(catalog, part), generated[part], strict=True):
            assert (
                schema_checksum(entry.block_schema["fields"])
                == (written["block_schema"]["checksum"])
            )
            assert entry.block_schema["version"] == "3.9.1"
            assert entry.block_schema["capabilities"] == sorted(entry.block_schema["capabilities"])
    system = {entry.slug: entry for entry in catalog.system}
    assert system["secret"].block_type["name"] == "Secret"
    assert set(system["local-file-system"].block_schema["capabilities"]) == {
        "get-directory",
        "put-directory",
        "read-path",
        "write-path",
    }


def test_the_digest_covers_both_files() -> None:
    files = real_files()
    same = CatalogFiles("3.9.1", bytes(files.generated), bytes(files.collections))
    assert same.digest == files.digest
    assert files.digest.startswith("sha256:")
    other_generated = CatalogFiles("3.9.1", files.generated + b" ", files.collections)
    other_collections = CatalogFiles("3.9.1", files.generated, files.collections + b" ")
    # Moving bytes from one file to the other is another catalog too.
    shifted = CatalogFiles("3.9.1", files.generated + b" ", files.collections[:-1])
    digests = {files.digest, other_generated.digest, other_collections.digest, shifted.digest}
    assert len(digests) == 4


GOOD_GENERATED: dict[str, Any] = {
    "format": 1,
    "prefect_version": "3.9.1",
    "system": [],
    "registry": [],
}


@pytest.mark.parametrize(
    ("generated", "collections", "message"),
    [
        (b"{not json", b'{"collections": {}}', "not JSON"),
        (b"[]", b'{"collections": {}}', "is not an object"),
        (json.dumps({**GOOD_GENERATED, "system": {}}).encode(), b'{"collections": {}}', "list"),
        (json.dumps({**GOOD_GENERATED, "registry": [1]}).encode(), b'{"collections": {}}', "entry"),
        (
            json.dumps({**GOOD_GENERATED, "system": [{"block_type": {"slug": "x"}}]}).encode(),
            b'{"collections": {}}',
            "no schema",
        ),
        (
            json.dumps(
                {**GOOD_GENERATED, "system": [{"block_type": {}, "block_schema": {}}]}
            ).encode(),
            b'{"collections": {}}',
            "without a slug",
        ),
        (json.dumps(GOOD_GENERATED).encode(), b'{"collections": []}', "is not an object"),
        (
            json.dumps(GOOD_GENERATED).encode(),
            b'{"collections": {"a": {"block_types": 1}}}',
            "types",
        ),
    ],
)
def test_files_that_are_not_prefects_are_refused(
    generated: bytes, collections: bytes, message: str
) -> None:
    with pytest.raises(CatalogError, match=message):
        CatalogFiles("3.9.1", generated, collections).parse()


def test_an_empty_catalog_is_valid() -> None:
    catalog = CatalogFiles(
        "3.9.1",
        json.dumps(GOOD_GENERATED).encode(),
        b'{"collections": {"prefect-dask": {"block_types": {}}}}',
    ).parse()
    assert catalog.slugs == set()
