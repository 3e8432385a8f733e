"""Tagged tasks with the real Prefect 3.9.1: the task engine asks for ``tag:<tag>`` slots."""

from __future__ import annotations

from itertools import pairwise

import httpx

from e2e.conftest import PrefectEnv

TAGGED = """
import time

from prefect import flow, task


@task(tags=["db"])
def query(i: int) -> tuple[float, float]:
    started = time.monotonic()
    time.sleep(0.3)
    return started, time.monotonic()


@task(tags=["db", "cache"])
def summary(spans: list) -> int:
    return len(spans)


@flow
def tagged(n: int = 3) -> dict:
    spans = [future.result() for future in [query.submit(i) for i in range(n)]]
    return {"spans": spans, "count": summary(spans)}
"""

RUN = """
import json
from tagged import tagged
print(json.dumps(tagged()))
"""


def _overlaps(spans: list[list[float]]) -> bool:
    ordered = sorted(spans)
    return any(later[0] < earlier[1] for earlier, later in pairwise(ordered))


def test_tagged_tasks_run_without_and_with_a_tag_limit(prefect: PrefectEnv) -> None:
    (prefect.flows / "tagged.py").write_text(TAGGED)
    free = prefect.python(RUN)  # also asserts Prefect printed no complaint about the server
    assert free["count"] == 3
    assert _overlaps(free["spans"])  # no limit: the queries ran side by side

    created = prefect.cli("gcl", "create", "tag:db", "--limit", "1")
    assert created.returncode == 0, created.stdout + created.stderr
    limited = prefect.python(RUN)
    assert limited["count"] == 3
    assert not _overlaps(limited["spans"])  # one slot: the queries ran one at a time

    limit = httpx.get(f"{prefect.server.url}/v2/concurrency_limits/tag:db").json()
    assert (limit["limit"], limit["active_slots"]) == (1, 0)
    listed = prefect.cli("concurrency-limit", "inspect", "db")
    assert listed.returncode == 0, listed.stdout + listed.stderr
