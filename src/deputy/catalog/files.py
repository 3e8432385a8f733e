"""Finding the installed Prefect distribution and its data files, without importing it.

The distribution is the one the ``ui`` extra installs beside deputy (found by its metadata,
as ``pip show`` would), or the one in the folder ``DEPUTY_PREFECT_PATH`` names (a
site-packages folder, e.g. another virtualenv's of the same Python version).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("deputy.catalog")

#: The Prefect release deputy answers for; another one is used, with a warning.
TARGET_VERSION = "3.9.1"
#: Entry-point group through which Prefect loads installed integrations (``prefect-aws``...)
#: at start; their blocks join the SDK's registry.
INTEGRATIONS_GROUP = "prefect.collections"

COLLECTION_BLOCKS = "server/collection_blocks_data.json"
VIEWS_FOLDER = "server/api/collections_data/views"


@dataclass(frozen=True)
class PrefectFiles:
    """One installed Prefect distribution."""

    #: The folder holding the ``prefect`` package (a site-packages folder).
    root: Path
    version: str
    #: ``name==version`` of the installed integrations, sorted: they change what Prefect
    #: registers, so the generated catalog is cached per set.
    integrations: tuple[str, ...] = ()
    #: Whether the generator must put ``root`` first on its path (a folder given by setting).
    outside: bool = False

    def data_file(self, relative: str) -> Path:
        """A file of the ``prefect`` package, e.g. ``server/collection_blocks_data.json``."""
        return self.root / "prefect" / relative

    @property
    def cache_key(self) -> str:
        """``prefect-3.9.1``, plus a digest of the integrations when there are any."""
        if not self.integrations:
            return f"prefect-{self.version}"
        digest = hashlib.sha256("\n".join(self.integrations).encode()).hexdigest()[:12]
        return f"prefect-{self.version}+{digest}"


def find_prefect(folder: Path | None = None) -> PrefectFiles | None:
    """The Prefect distribution beside deputy, or in ``folder``; None when there is none."""
    return _find(str(folder) if folder is not None else None)


@functools.cache
def _find(folder: str | None) -> PrefectFiles | None:
    # Imported here: the module costs ~60 ms, paid in the background after start-up.
    import importlib.metadata as metadata

    if folder is None:
        try:
            dist = metadata.distribution("prefect")
        except metadata.PackageNotFoundError:
            return None
        everything = metadata.distributions()
    else:
        found = next(iter(metadata.distributions(name="prefect", path=[folder])), None)
        if found is None:
            return None
        dist = found
        everything = metadata.distributions(path=[folder])
    root = Path(str(dist.locate_file(""))).resolve()
    if not (root / "prefect" / COLLECTION_BLOCKS).is_file():
        logger.warning("Prefect's distribution at %s lacks its data files; not used", root)
        return None
    if dist.version != TARGET_VERSION:
        logger.warning(
            "Prefect %s found at %s; deputy answers for %s and its catalogs may differ",
            dist.version,
            root,
            TARGET_VERSION,
        )
    integrations = {
        f"{other.name}=={other.version}"
        for other in everything
        if any(entry.group == INTEGRATIONS_GROUP for entry in other.entry_points)
    }
    return PrefectFiles(
        root=root,
        version=dist.version,
        integrations=tuple(sorted(integrations)),
        outside=folder is not None,
    )
