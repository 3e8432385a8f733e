"""Writes the block types Prefect's server builds from its Python classes, as JSON.

Run by :mod:`deputy.catalog.cache` in a subprocess, the only place ``prefect`` is imported::

    python -P -m deputy.catalog.generate OUT [--path SITE_PACKAGES]

A Prefect 3.9.1 server registers at start, besides the collection blocks it reads from
``collection_blocks_data.json``: its protected system types (``Webhook``, ``Secret``,
``LocalFileSystem``), then every block class in the SDK's registry once its server modules and
installed integrations are loaded. This writes both lists, in that order, each entry as a
client would post it: the type's fields and the schema's fields, checksum, capabilities and
version. A class that fails is left out (the server logs it and goes on). Nothing from
deputy is imported here, so the subprocess carries Prefect alone.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

#: Changes when the file's shape changes: an older cache is generated again.
FORMAT = 1
BLOCK_TYPE_KEYS = ("name", "slug", "logo_url", "documentation_url", "description", "code_example")


def entry(block_class: Any) -> dict[str, Any]:
    """One block class as its block type and block schema."""
    block_type = block_class._to_block_type().model_dump(mode="json")
    schema = block_class._to_block_schema()
    return {
        "block_type": {key: block_type.get(key) for key in BLOCK_TYPE_KEYS},
        "block_schema": {
            "fields": schema.fields,
            "checksum": schema.checksum,
            # A frozenset in Prefect (its order changes from one process to the next).
            "capabilities": sorted(schema.capabilities),
            "version": schema.version,
        },
    }


def entries(classes: list[Any]) -> list[dict[str, Any]]:
    found = []
    for block_class in classes:
        try:
            found.append(entry(block_class))
        except Exception as error:  # a broken class is skipped, as Prefect's server does
            print(f"skipped {block_class!r}: {error!r}", file=sys.stderr)
    return found


def generate() -> dict[str, Any]:
    # By name, so that neither deputy's imports nor its type checking ever reach Prefect.
    prefect = import_module("prefect")
    # What a server has imported when it registers its blocks: its API modules (and so every
    # block class they import), then the installed integrations.
    import_module("prefect.server.api.server")
    import_module("prefect.plugins").load_prefect_collections()
    block = import_module("prefect.blocks.core").Block
    registry = import_module("prefect.utilities.dispatch").get_registry_for_type(block) or {}
    system = [
        import_module("prefect.blocks.webhook").Webhook,
        import_module("prefect.blocks.system").Secret,
        import_module("prefect.filesystems").LocalFileSystem,
    ]
    return {
        "format": FORMAT,
        "prefect_version": prefect.__version__,
        "system": entries(system),
        "registry": entries(list(registry.values())),
    }


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3) or (len(argv) == 3 and argv[1] != "--path"):
        print("usage: python -P -m deputy.catalog.generate OUT [--path SITE_PACKAGES]")
        return 2
    out = Path(argv[0])
    if hasattr(os, "nice"):
        os.nice(10)  # background work: the server it was started for goes first
    if len(argv) == 3:
        sys.path.insert(0, argv[2])
    text = json.dumps(generate(), sort_keys=True)
    partial = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, out)  # readers see the whole file or none
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
