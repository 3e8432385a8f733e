"""Regenerate the endpoint table of docs/compatibility.md from deputy's live OpenAPI document.

Every (method, path) of Prefect 3.9.1's OpenAPI document is listed, grouped by tag, as served
or not yet (with the issue expected to bring it, where that is obvious). The table replaces
whatever lies between the BEGIN/END markers in the document.

    .venv/bin/python tools/compat_table.py            # rewrite docs/compatibility.md
    .venv/bin/python tools/compat_table.py --check    # exit 1 if the table is out of date
    .venv/bin/python tools/compat_table.py --print    # print the table only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

from deputy.app import create_app
from deputy.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "compatibility.md"
PREFECT_OPENAPI = Path("/work/shared/reference/prefect-3.9.1-openapi.json")
BEGIN = "<!-- BEGIN ENDPOINT TABLE (tools/compat_table.py) -->"
END = "<!-- END ENDPOINT TABLE -->"
METHODS = ("get", "post", "put", "patch", "delete")

ORCHESTRATION = "orchestration issue"
SDK_WORKER = "SDK/worker issue"

#: (method or None for any, path pattern, issue), first match wins. Only the obvious ones.
PLANNED: list[tuple[str | None, str, str]] = [
    (None, r"^/task_runs/", SDK_WORKER),
    (None, r"^/task_run_states/", SDK_WORKER),
    (None, r"^/task_workers/", SDK_WORKER),
    (None, r"^/ui/task_runs/", SDK_WORKER),
    (None, r"^/ui/flow_runs/count-task-runs$", SDK_WORKER),
    (None, r"^/logs/", SDK_WORKER),
    (None, r"^/flow_runs/\{id\}/logs/", SDK_WORKER),
    (None, r"^/events", SDK_WORKER),
    ("POST", r"^/flow_runs/$", SDK_WORKER),
    ("PATCH", r"^/flow_runs/\{id\}(/labels)?$", SDK_WORKER),
    (None, r"^/flow_runs/(\{id\}/)?(bulk_)?set_state$", ORCHESTRATION),
    (None, r"^/flow_runs/\{id\}/resume$", ORCHESTRATION),
    (None, r"get_scheduled_flow_runs$", ORCHESTRATION),
    (None, r"^/work_queues/\{id\}/get_runs$", ORCHESTRATION),
    (None, r"^/work_pools/\{work_pool_name\}/workers/", ORCHESTRATION),
    (None, r"concurrency_status$", ORCHESTRATION),
    (None, r"^/(v2/)?concurrency_limits/", ORCHESTRATION),
]


def planned_issue(method: str, path: str) -> str:
    for wanted, pattern, issue in PLANNED:
        if (wanted is None or wanted == method) and re.search(pattern, path):
            return issue
    return ""


def group_of(operation: dict[str, Any]) -> str:
    """The section an operation is listed under: its first tag, UI routes under "UI"."""
    tags = operation.get("tags") or ["Root"]
    return "UI" if "UI" in tags else str(tags[0])


async def fetch_deputy_openapi() -> dict[str, Any]:
    """deputy's ``/api/openapi.json``, served in process by an app on a throwaway database."""
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), database_url=f"sqlite+aiosqlite:///{home}/x.db")
        transport = httpx.ASGITransport(app=create_app(settings, migrate_on_start=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://deputy") as client:
            response = await client.get("/api/openapi.json")
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def build_table(prefect: dict[str, Any], deputy: dict[str, Any]) -> str:
    """The markdown: a summary line, then one table per tag in Prefect's order."""
    served = {(method, path) for method, path, _ in operations(deputy)}
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for method, path, operation in operations(prefect):
        groups.setdefault(group_of(operation), []).append((method, path, operation))
    total = sum(len(rows) for rows in groups.values())
    count = sum(1 for rows in groups.values() for m, p, _ in rows if (m, p) in served)
    lines = [
        f"deputy serves {count} of the {total} operations ({len(prefect['paths'])} paths) "
        "in Prefect 3.9.1's OpenAPI document.",
        "",
    ]
    for group, rows in groups.items():
        done = sum(1 for m, p, _ in rows if (m, p) in served)
        lines += [
            f"### {group} ({done}/{len(rows)})",
            "",
            "| Method | Path | Summary | deputy |",
            "|---|---|---|---|",
        ]
        for method, path, operation in rows:
            if (method, path) in served:
                status = "served"
            else:
                issue = planned_issue(method, path)
                status = f"not yet ({issue})" if issue else "not yet"
            summary = operation.get("summary", "")
            lines.append(f"| {method} | `{path}` | {summary} | {status} |")
        lines.append("")
    extras = sorted(served - {(m, p) for m, p, _ in operations(prefect)})
    if extras:
        lines += ["Served by deputy but not in Prefect's document:", ""]
        lines += [f"- {method} `{path}`" for method, path in extras]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def replace_table(document: str, table: str) -> str:
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{DOCUMENT} lacks the {BEGIN!r} ... {END!r} markers")
    return document[: start + len(BEGIN)] + "\n\n" + table + "\n" + document[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefect-openapi", type=Path, default=PREFECT_OPENAPI)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if the document is stale")
    mode.add_argument("--print", action="store_true", help="print the table, write nothing")
    args = parser.parse_args()

    prefect = json.loads(args.prefect_openapi.read_text())
    table = build_table(prefect, asyncio.run(fetch_deputy_openapi()))
    if args.print:
        sys.stdout.write(table)
        return 0
    current = DOCUMENT.read_text()
    updated = replace_table(current, table)
    if args.check:
        if updated != current:
            print(f"{DOCUMENT} is out of date: run tools/compat_table.py", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(updated)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
