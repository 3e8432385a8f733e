"""Prefect's distribution for the catalog tests, and its generated catalog made once per run.

The distribution is the one beside deputy (the ``ui`` extra) or the e2e virtualenv's
(``.venv-prefect``, made by ``make test``); nothing of it is copied into the repository.
The generator runs once per test session (a few seconds); each test gets a copy of its
output in its own ``DEPUTY_HOME``, as a server that generated it before would have it.
"""

from __future__ import annotations

import asyncio
import atexit
import glob
import importlib.metadata
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deputy.catalog.cache import CatalogSource
from deputy.catalog.files import PrefectFiles, find_prefect
from prefect_venv import PREFECT_VENV


def prefect_site_packages() -> Path:
    """The folder holding Prefect 3.9.1's distribution; skips (fails on CI) without one."""
    try:
        return Path(str(importlib.metadata.distribution("prefect").locate_file(""))).resolve()
    except importlib.metadata.PackageNotFoundError:
        pass
    matches = glob.glob(str(PREFECT_VENV / "lib" / "python3*" / "site-packages"))
    if matches and Path(matches[0], "prefect").is_dir():
        return Path(matches[0])
    message = f"Prefect 3.9.1 distribution missing (the ui extra, or {PREFECT_VENV})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def prefect_files() -> PrefectFiles:
    found = find_prefect(prefect_site_packages())
    assert found is not None
    return found


_generated: dict[str, Path] = {}


def generated_catalog() -> Path:
    """The ``catalog`` folder of a home where the generator ran (once per session)."""
    folder = prefect_site_packages()
    if str(folder) not in _generated:
        home = Path(tempfile.mkdtemp(prefix="deputy-catalog-"))
        atexit.register(shutil.rmtree, home, True)
        source = CatalogSource(home=home, folder=folder, block_catalog=True)
        # In a thread of its own: callers may be inside a running event loop.
        with ThreadPoolExecutor(1) as pool:
            made = pool.submit(asyncio.run, source.block_catalog()).result()
        assert made is not None
        _generated[str(folder)] = home / "catalog"
    return _generated[str(folder)]


def catalog_home(home: Path) -> Path:
    """``home`` with the generated catalog in it (as after an earlier start); returns it."""
    shutil.copytree(generated_catalog(), home / "catalog", dirs_exist_ok=True)
    return home


def source_for(home: Path, *, enabled: bool = True) -> CatalogSource:
    """A source reading Prefect's distribution, with the generated catalog copied to ``home``."""
    return CatalogSource(
        home=catalog_home(home), folder=prefect_site_packages(), block_catalog=enabled
    )
