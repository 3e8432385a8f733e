"""Finding Prefect's distribution without importing it, and deputy never importing it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import deputy
from catalogs import catalog_home, prefect_site_packages
from deputy.catalog.files import COLLECTION_BLOCKS, VIEWS_FOLDER, PrefectFiles, find_prefect

PACKAGE = Path(deputy.__file__).parent
GENERATOR = "deputy.catalog.generate"


def test_the_distribution_is_found_in_a_folder() -> None:
    folder = prefect_site_packages()
    files = find_prefect(folder)
    assert files is not None
    assert files.version == "3.9.1"
    assert files.root == folder.resolve()
    assert files.data_file(COLLECTION_BLOCKS).is_file()
    assert (files.root / "prefect" / VIEWS_FOLDER / "aggregate-worker-metadata.json").is_file()
    assert files.integrations == ()  # no prefect-aws & co. installed beside it
    assert files.cache_key == "prefect-3.9.1"
    assert files.outside


def test_a_folder_without_prefect_has_no_distribution(tmp_path: Path) -> None:
    assert find_prefect(tmp_path) is None


def test_a_distribution_without_its_data_files_is_not_used(tmp_path: Path) -> None:
    info = tmp_path / "prefect-3.9.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: prefect\nVersion: 3.9.1\n")
    (tmp_path / "prefect").mkdir()
    assert find_prefect(tmp_path) is None


def test_installed_integrations_change_the_cache_key() -> None:
    bare = PrefectFiles(root=Path("/x"), version="3.9.1")
    with_aws = PrefectFiles(root=Path("/x"), version="3.9.1", integrations=("prefect-aws==0.5.8",))
    other_aws = PrefectFiles(root=Path("/x"), version="3.9.1", integrations=("prefect-aws==0.6",))
    assert bare.cache_key == "prefect-3.9.1"
    assert with_aws.cache_key.startswith("prefect-3.9.1+")
    assert len({bare.cache_key, with_aws.cache_key, other_aws.cache_key}) == 3


def _prefect_imports(path: Path) -> list[tuple[int, str]]:
    """Every ``import prefect...``, ``from prefect... import`` and ``import_module("prefect")``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value] if "import" in ast.unparse(node.func) else []
        line = getattr(node, "lineno", 0)
        found += [(line, name) for name in names if name.split(".")[0] == "prefect"]
    return found


def test_only_the_generator_names_prefect() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): hits
        for path in sorted(PACKAGE.rglob("*.py"))
        if (hits := _prefect_imports(path)) and path.name != "generate.py"
    }
    assert offenders == {}
    generator = PACKAGE / "catalog" / "generate.py"
    assert _prefect_imports(generator)  # the check sees the generator's imports


def test_serving_never_loads_prefect(tmp_path: Path) -> None:
    """With Prefect importable, building the app, starting it and answering the catalog
    routes leave ``prefect`` out of the process."""
    catalog_home(tmp_path)
    code = f"""
import asyncio, sys
from pathlib import Path
import httpx
from deputy.app import create_app
from deputy.settings import Settings

async def main():
    app = create_app(Settings(home=Path({str(tmp_path)!r}), block_catalog=True,
                              prefect_path=Path({str(prefect_site_packages())!r})))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://d/api") as client:
            view = await client.get("/collections/views/aggregate-worker-metadata")
            assert view.status_code == 200, view.text
            installed = await client.post("/block_types/install_system_block_types")
            assert installed.status_code == 200, installed.text
    assert not [name for name in sys.modules if name.split(".")[0] == "prefect"]
    print("clean")

asyncio.run(main())
"""
    env = {**os.environ, "PYTHONPATH": str(prefect_site_packages())}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("clean")


def test_the_distribution_beside_deputy_is_found_by_its_metadata() -> None:
    files = find_prefect()
    if files is None:
        pytest.skip("Prefect is not installed beside deputy (no ui extra here)")
    assert files.version == "3.9.1"
    assert not files.outside
