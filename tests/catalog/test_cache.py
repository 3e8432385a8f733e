"""The generated catalog: made by one subprocess on first need, then read from DEPUTY_HOME."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from catalogs import catalog_home, generated_catalog, prefect_files, prefect_site_packages
from deputy.catalog import cache
from deputy.catalog.blocks import CatalogError
from deputy.catalog.cache import GENERATED_NAME, CatalogSource, read_cached
from deputy.catalog.files import PrefectFiles


def counting_generator(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record each run of the generator (it still runs)."""
    runs: list[Path] = []
    real = cache.generate_catalog

    async def counted(files: PrefectFiles, folder: Path) -> bytes:
        runs.append(folder)
        return await real(files, folder)

    monkeypatch.setattr(cache, "generate_catalog", counted)
    return runs


async def test_first_need_generates_once_and_later_reads_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = counting_generator(monkeypatch)
    source = CatalogSource(home=tmp_path, folder=prefect_site_packages(), block_catalog=True)
    # Two callers at once (the start-up registration and a request) share one generator.
    first, second = await asyncio.gather(source.block_catalog(), source.block_catalog())
    assert first is not None
    assert second is not None
    assert first.generated == second.generated
    assert runs == [tmp_path / "catalog" / "prefect-3.9.1"]
    written = json.loads((runs[0] / GENERATED_NAME).read_bytes())
    assert written["prefect_version"] == "3.9.1"
    assert len(written["system"]) == 3
    assert not [p for p in runs[0].iterdir() if p.name != GENERATED_NAME]  # no leftovers

    # A later process (a new source) reads the file, no subprocess.
    again = await CatalogSource(
        home=tmp_path, folder=prefect_site_packages(), block_catalog=True
    ).block_catalog()
    assert again is not None
    assert again.digest == first.digest
    assert len(runs) == 1


def test_a_cache_of_another_version_or_format_is_not_used(tmp_path: Path) -> None:
    folder = catalog_home(tmp_path) / "catalog" / "prefect-3.9.1"
    assert read_cached(folder, "3.9.1") is not None
    assert read_cached(folder, "3.9.2") is None
    path = folder / GENERATED_NAME
    written = json.loads(path.read_text())
    path.write_text(json.dumps({**written, "format": 0}))
    assert read_cached(folder, "3.9.1") is None
    path.write_text("{truncated")
    assert read_cached(folder, "3.9.1") is None
    path.unlink()
    assert read_cached(folder, "3.9.1") is None


async def test_a_stale_cache_is_generated_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = (generated_catalog() / "prefect-3.9.1" / GENERATED_NAME).read_bytes()
    folder = catalog_home(tmp_path) / "catalog" / "prefect-3.9.1"
    (folder / GENERATED_NAME).write_text(json.dumps({"format": 0, "prefect_version": "3.9.1"}))
    runs: list[Path] = []

    async def regenerate(files: PrefectFiles, into: Path) -> bytes:  # as the generator would
        runs.append(into)
        (into / GENERATED_NAME).write_bytes(good)
        return good

    monkeypatch.setattr(cache, "generate_catalog", regenerate)
    source = CatalogSource(home=tmp_path, folder=prefect_site_packages(), block_catalog=True)
    files = await source.block_catalog()
    assert files is not None
    assert runs == [folder]
    assert files.generated == good


async def test_a_failing_generator_is_an_error_and_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "GENERATOR_MODULE", "deputy.catalog.no_such_generator")
    source = CatalogSource(home=tmp_path, folder=prefect_site_packages(), block_catalog=True)
    for _ in range(2):  # the failure is not memoized: the next caller runs it again
        with pytest.raises(CatalogError, match=r"the generator failed \(1\): .*no_such_generator"):
            await source.block_catalog()
    assert not (tmp_path / "catalog" / "prefect-3.9.1" / GENERATED_NAME).exists()


async def test_off_or_without_a_distribution_there_is_no_block_catalog(tmp_path: Path) -> None:
    off = CatalogSource(home=tmp_path, folder=prefect_site_packages(), block_catalog=False)
    assert await off.block_catalog() is None
    assert await off.files() == prefect_files()  # the views still read the distribution
    empty = tmp_path / "site-packages"
    empty.mkdir()
    missing = CatalogSource(home=tmp_path, folder=empty, block_catalog=True)
    assert await missing.files() is None
    assert await missing.block_catalog() is None
    assert not (tmp_path / "catalog").exists()


async def test_closing_stops_a_running_generator(tmp_path: Path) -> None:
    source = CatalogSource(home=tmp_path, folder=prefect_site_packages(), block_catalog=True)
    task = asyncio.create_task(source.block_catalog())
    for _ in range(200):  # until the subprocess runs
        await asyncio.sleep(0.01)
        if source._generation is not None:
            break
    await source.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source._generation is not None
    assert source._generation.cancelled()
