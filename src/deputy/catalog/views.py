"""The collection registry's views (``/collections/views/{view}``), answered offline.

Prefect's server fetches these four views from the collection registry on the internet and
falls back to the copies in its distribution; Prefect 3.9.1 ships one,
``aggregate-worker-metadata`` (every worker type and its default base job template: what
``prefect work-pool create --type docker`` and the UI's work-pool form read). deputy never
goes to the network: the shipped view is answered from its file,
``aggregate-block-metadata`` from the collection blocks the distribution ships (the
registry's view is made from the same files), and the two views of example flows, which no
file holds, as empty (no collection lists a flow), where an offline Prefect answers 500.
"""

from __future__ import annotations

import functools
from pathlib import Path

import orjson

from deputy.catalog.files import COLLECTION_BLOCKS, VIEWS_FOLDER, PrefectFiles

KNOWN_VIEWS = (
    "aggregate-block-metadata",
    "aggregate-flow-metadata",
    "aggregate-worker-metadata",
    "demo-flows",
)
EMPTY_VIEWS = ("aggregate-flow-metadata", "demo-flows")


class UnknownView(LookupError):
    """Not a view of the registry: Prefect's 404."""


class MissingView(LookupError):
    """A known view whose content is not available (no Prefect distribution)."""


def unknown_view_message(view: str) -> str:
    return f"View {view} not found in registry"


def missing_view_message(view: str) -> str:
    return f"Requested content missing for view {view}"


def view_content(files: PrefectFiles | None, view: str) -> bytes:
    """The view as JSON bytes (each file read once per process)."""
    if view not in KNOWN_VIEWS:
        raise UnknownView(view)
    content = _read_view(files.root / "prefect", view) if files is not None else None
    if content is not None:
        return content
    if view in EMPTY_VIEWS:
        return b"{}"
    raise MissingView(view)


@functools.cache
def _read_view(package: Path, view: str) -> bytes | None:
    shipped = package / VIEWS_FOLDER / f"{view}.json"
    if shipped.is_file():
        return orjson.dumps(orjson.loads(shipped.read_bytes()))
    blocks = package / COLLECTION_BLOCKS
    if view == "aggregate-block-metadata" and blocks.is_file():
        return orjson.dumps(orjson.loads(blocks.read_bytes()).get("collections", {}))
    return None
