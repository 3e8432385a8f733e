"""Prefect's catalogs for one server process: the distribution found once, the generated part
made once and kept under ``DEPUTY_HOME``.

The generated file lies at ``$DEPUTY_HOME/catalog/prefect-<version>[+<integrations>]/blocks.json``:
made by the first start that needs it (one subprocess of a few seconds, run in the
background), read by every later one. Processes sharing a home may generate it at the same
time: each writes a file of its own and renames it into place, so a reader sees a whole file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

from deputy.catalog import generate
from deputy.catalog.blocks import CatalogError, CatalogFiles
from deputy.catalog.files import COLLECTION_BLOCKS, PrefectFiles, find_prefect

logger = logging.getLogger("deputy.catalog")

#: Longest a generator may run (it takes 3-10 s); then it is killed and the catalog skipped.
GENERATE_TIMEOUT_SECONDS = 300.0
GENERATED_NAME = "blocks.json"
#: What the subprocess runs: ``python -P -m deputy.catalog.generate OUT``.
GENERATOR_MODULE = generate.__name__


class CatalogSource:
    """Where the catalogs come from, for one server process.

    ``block_catalog=False`` (``DEPUTY_BLOCK_CATALOG``) leaves the block catalog out; the
    collection views are still read from the distribution when there is one.
    """

    def __init__(self, *, home: Path, folder: Path | None, block_catalog: bool) -> None:
        self.home = home
        self.folder = folder
        self.block_catalog_enabled = block_catalog
        self._generation: asyncio.Task[bytes] | None = None
        self._files: tuple[PrefectFiles | None] | None = None

    async def files(self) -> PrefectFiles | None:
        """The Prefect distribution (looked for once per process, in a thread)."""
        if self._files is None:
            self._files = (await asyncio.to_thread(find_prefect, self.folder),)
        return self._files[0]

    def cache_folder(self, files: PrefectFiles) -> Path:
        return self.home / "catalog" / files.cache_key

    async def block_catalog(self) -> CatalogFiles | None:
        """The block catalog's files, generating the missing part first if needed; None when
        the block catalog is off or there is no distribution."""
        if not self.block_catalog_enabled:
            return None
        files = await self.files()
        if files is None:
            return None
        generated = await self._generated(files)
        collections = await asyncio.to_thread(files.data_file(COLLECTION_BLOCKS).read_bytes)
        return CatalogFiles(files.version, generated, collections)

    async def _generated(self, files: PrefectFiles) -> bytes:
        """The generated file's bytes: read from the cache, or made by one subprocess that
        every concurrent caller awaits (a failed one is tried again by the next caller)."""
        cached = await asyncio.to_thread(read_cached, self.cache_folder(files), files.version)
        if cached is not None:
            return cached
        if self._generation is None or _failed(self._generation):
            self._generation = asyncio.create_task(
                generate_catalog(files, self.cache_folder(files)), name="deputy: block catalog"
            )
        return await asyncio.shield(self._generation)

    async def close(self) -> None:
        """Stop a generator still running (at shutdown)."""
        if self._generation is not None and not self._generation.done():
            self._generation.cancel()
            await asyncio.gather(self._generation, return_exceptions=True)


def _failed(task: asyncio.Task[bytes]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


def read_cached(folder: Path, version: str) -> bytes | None:
    """The cached file's bytes, if it is there and was written for ``version`` in this
    format."""
    try:
        data = (folder / GENERATED_NAME).read_bytes()
        parsed = orjson.loads(data)
    except (OSError, orjson.JSONDecodeError):
        return None
    if (
        not isinstance(parsed, dict)
        or parsed.get("format") != generate.FORMAT
        or parsed.get("prefect_version") != version
    ):
        return None
    return data


async def generate_catalog(files: PrefectFiles, folder: Path) -> bytes:
    """Run the generator for ``files`` into ``folder``; its output's bytes."""
    started = time.perf_counter()
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    out = folder / GENERATED_NAME
    command = [sys.executable, "-P", "-m", GENERATOR_MODULE, str(out)]
    if files.outside:
        command += ["--path", str(files.root)]
    # Prefect may write to its home on import: a throwaway one, not the user's ~/.prefect.
    with tempfile.TemporaryDirectory(dir=folder, prefix="prefect-home-") as prefect_home:
        env = {**os.environ, "PREFECT_HOME": prefect_home}
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            _, errors = await asyncio.wait_for(
                process.communicate(), timeout=GENERATE_TIMEOUT_SECONDS
            )
        except BaseException:  # timed out, or the server is stopping: no orphan left
            if process.returncode is None:
                process.kill()
                await process.wait()
            raise
    if process.returncode != 0:
        tail = errors.decode(errors="replace").strip().splitlines()[-5:]
        raise CatalogError(f"the generator failed ({process.returncode}): {' | '.join(tail)}")
    data = read_cached(folder, files.version)
    if data is None:
        raise CatalogError(f"the generator wrote no usable {out}")
    logger.info(
        "generated Prefect %s's block catalog in %.1f s (%s)",
        files.version,
        time.perf_counter() - started,
        out,
    )
    return data
