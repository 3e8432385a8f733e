"""The collection registry's views, answered from Prefect's files (no network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalogs import prefect_files
from deputy.catalog.files import COLLECTION_BLOCKS, VIEWS_FOLDER, PrefectFiles
from deputy.catalog.views import KNOWN_VIEWS, MissingView, UnknownView, view_content


def test_the_shipped_worker_view_is_its_file() -> None:
    files = prefect_files()
    shipped = json.loads(
        files.data_file(f"{VIEWS_FOLDER}/aggregate-worker-metadata.json").read_text()
    )
    answered = json.loads(view_content(files, "aggregate-worker-metadata"))
    assert answered == shipped
    # Every worker type Prefect lists, with the template `prefect work-pool create` takes.
    types = {worker["type"] for collection in answered.values() for worker in collection.values()}
    assert {"process", "docker", "kubernetes", "ecs", "cloud-run"} <= types
    docker = answered["prefect-docker"]["docker"]
    assert set(docker["default_base_job_configuration"]) == {"job_configuration", "variables"}


def test_the_block_view_is_made_from_the_shipped_collection_blocks() -> None:
    files = prefect_files()
    shipped = json.loads(files.data_file(COLLECTION_BLOCKS).read_text())["collections"]
    answered = json.loads(view_content(files, "aggregate-block-metadata"))
    assert answered == shipped
    assert "aws-credentials" in answered["prefect-aws"]["block_types"]


@pytest.mark.parametrize("view", ["aggregate-flow-metadata", "demo-flows"])
def test_the_flow_views_are_empty_offline(view: str) -> None:
    assert view_content(prefect_files(), view) == b"{}"
    assert view_content(None, view) == b"{}"


@pytest.mark.parametrize(
    "view", ["nope", "", "../aggregate-worker-metadata", "AGGREGATE-WORKER-METADATA"]
)
def test_other_views_are_unknown(view: str) -> None:
    with pytest.raises(UnknownView):
        view_content(prefect_files(), view)


@pytest.mark.parametrize("view", ["aggregate-worker-metadata", "aggregate-block-metadata"])
def test_without_a_distribution_the_shipped_views_are_missing(view: str) -> None:
    with pytest.raises(MissingView):
        view_content(None, view)


def test_a_view_missing_from_the_distribution_is_missing(tmp_path: Path) -> None:
    (tmp_path / "prefect" / "server").mkdir(parents=True)
    files = PrefectFiles(root=tmp_path, version="3.9.1")
    with pytest.raises(MissingView):
        view_content(files, "aggregate-worker-metadata")
    assert set(KNOWN_VIEWS) == {
        "aggregate-block-metadata",
        "aggregate-flow-metadata",
        "aggregate-worker-metadata",
        "demo-flows",
    }
