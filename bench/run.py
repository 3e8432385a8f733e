"""Benchmark deputy against the reference Prefect 3.9.1 server: `python bench/run.py [--quick]`.

Both servers run on loopback on the same database kind; each scenario runs on one, then the
other (the order alternating from scenario to scenario), while the server not under load is
paused with SIGSTOP. wrk generates the load (see lua/). Prints the table and, for a full run,
writes it to bench/RESULTS.md with the machine's description. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import loadgen
import postgres
import prefect_venv
import procs
import report
import scenarios
from launch import Database, Server, start_deputy, start_prefect
from report import Measurement, Section, ServerStats
from scenarios import Budget, Scenario
from seed import Seeded, seed

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "RESULTS.md"
IDLE_SETTLE_SECONDS = 3.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds per scenario")
    parser.add_argument("--db", choices=["sqlite", "postgres", "all"], default="sqlite")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("DEPUTY_BENCH_PG_URL"),
        help="PostgreSQL to create deputy_bench and prefect_bench on (or $DEPUTY_BENCH_PG_URL)",
    )
    parser.add_argument("--servers", default="deputy,prefect", help="comma-separated subset")
    parser.add_argument("--scenarios", default="", help="comma-separated names (health is kept)")
    parser.add_argument("--seconds", type=int, help="time bound of each scenario run")
    parser.add_argument("--max-responses", type=int, help="count bound of each scenario run")
    parser.add_argument("--seed-runs", type=int, help="scheduled runs seeded for poll/filter")
    parser.add_argument("--prefect-venv", type=Path, help="a venv with prefect 3.9.1")
    parser.add_argument(
        "--create-prefect-venv",
        action="store_true",
        help=f"create {prefect_venv.BENCH_VENV.relative_to(REPO)} if no Prefect venv is found",
    )
    parser.add_argument("--deputy", type=Path, default=_default_deputy(), help="deputy command")
    parser.add_argument("--output", type=Path, help="markdown file (full run: bench/RESULTS.md)")
    parser.add_argument("--no-output", action="store_true", help="print only")
    parser.add_argument("--note", action="append", default=[], help="a line for RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data folders")
    parser.add_argument(
        "--no-pause", action="store_true", help="leave the idle server running (not SIGSTOPped)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = loadgen.find_wrk()
    budget = _budget(args)
    selected = scenarios.select([n for n in args.scenarios.split(",") if n])
    names = [n for n in ("deputy", "prefect") if n in args.servers.split(",")]
    venv = _prefect_venv(args) if "prefect" in names else None
    versions = {"wrk": loadgen.wrk_version(wrk)}
    if venv:
        versions["Prefect (reference)"] = f"{prefect_venv.installed_version(venv)} in {venv}"

    sections = []
    for database, skipped in _databases(args):
        if database is None:
            print(f"skipping PostgreSQL: {skipped}", flush=True)
            sections.append(Section("PostgreSQL", skipped=[skipped]))
            continue
        sections.append(run_database(database, names, venv, args, wrk, selected, budget))

    command = shlex.join([_shown(sys.executable), *sys.argv])
    text = report.results_markdown(
        sections,
        command=command,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=report.machine_description(versions),
        notes=args.note,
    )
    print("\n" + "\n".join(report.section_text(s) for s in sections))
    output = args.output or (None if args.quick else RESULTS)
    if output and not args.no_output:
        output.write_text(text)
        print(f"written to {_shown(str(output))}")
    return 0 if any(s.measurements for s in sections) else 1


def run_database(
    database: Database,
    names: list[str],
    venv: Path | None,
    args: argparse.Namespace,
    wrk: str,
    selected: list[Scenario],
    budget: Budget,
) -> Section:
    """Start both servers on ``database``, seed them, run every scenario on each, stop them."""
    title = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[database.name]
    section = Section(title)
    workdir = Path(tempfile.mkdtemp(prefix=f"deputy-bench-{database.name}-"))
    running: dict[str, Server] = {}
    try:
        for name in names:
            print(f"[{database.name}] starting {name}", flush=True)
            try:
                if name == "deputy":
                    server = start_deputy(args.deputy, workdir / name, database)
                else:
                    assert venv is not None
                    server = start_prefect(venv, workdir / name, database)
            except (RuntimeError, TimeoutError) as error:
                reason = f"{name} did not start on {title}: {error}"
                print(reason, flush=True)
                section.skipped.append(reason)
                continue
            running[name] = server
            server.pausable = not args.no_pause
            time.sleep(IDLE_SETTLE_SECONDS)
            section.stats[name] = ServerStats(server.startup_seconds, server.rss_bytes())
            print(f"[{database.name}] {name} healthy in {server.startup_seconds:.2f}s", flush=True)
            server.pause()
        seeded = _seed_all(running, budget, database.name)
        for index, scenario in enumerate(selected):
            order = list(running) if index % 2 == 0 else list(reversed(running))
            for name in order:
                measurement = measure(wrk, running[name], scenario, budget, seeded[name], workdir)
                section.measurements.append(measurement)
                _progress(database.name, measurement)
        for name, server in running.items():
            section.stats[name].loaded_rss = server.rss_bytes()
    finally:
        for server in running.values():
            server.stop()
        if args.keep:
            print(f"data kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return section


def measure(
    wrk: str, server: Server, scenario: Scenario, budget: Budget, seeded: Seeded, workdir: Path
) -> Measurement:
    """Warm up, then one bounded wrk run with the server's and the machine's CPU around it."""
    script = loadgen.script_for(scenario.script, workdir)
    server.resume()
    try:
        common = {"connections": scenario.concurrency, "threads": scenario.threads}
        if budget.warmup_seconds:
            loadgen.run_wrk(
                wrk,
                server.base_url,
                script,
                seconds=budget.warmup_seconds,
                max_responses=budget.warmup_responses,
                args=_script_args(seeded),
                **common,
            )
        server_cpu, machine_cpu = server.cpu_seconds(), procs.machine_busy_seconds()
        result = loadgen.run_wrk(
            wrk,
            server.base_url,
            script,
            seconds=budget.seconds,
            max_responses=budget.max_responses,
            args=_script_args(seeded),
            **common,
        )
        server_cpu = server.cpu_seconds() - server_cpu
        machine_cpu = procs.machine_busy_seconds() - machine_cpu
    finally:
        server.pause()
    return Measurement(scenario, server.name, result, server_cpu, machine_cpu)


def _script_args(seeded: Seeded) -> dict[str, str]:
    """What the Lua scripts read from ``opts``; a fresh nonce keeps new idempotency keys new."""
    return {
        "api": "/api",
        "deployment": seeded.create_deployment,
        "seeded_deployment": seeded.poll_deployment,
        "pool": seeded.poll_pool,
        "before": seeded.scheduled_before,
        "replay_keys": str(seeded.replay_keys),
        "nonce": uuid.uuid4().hex[:12],
    }


def _seed_all(running: dict[str, Server], budget: Budget, db: str) -> dict[str, Seeded]:
    """The same runs on every server, scheduled at the same (future) times."""
    first_start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    seeded = {}
    for name, server in running.items():
        started = time.perf_counter()
        server.resume()
        try:
            seeded[name] = seed(server.api_url, budget.seed_runs, budget.replay_keys, first_start)
        finally:
            server.pause()
        took = time.perf_counter() - started
        print(f"[{db}] seeded {name} with {budget.seed_runs} scheduled runs in {took:.1f}s")
    return seeded


def _progress(db: str, m: Measurement) -> None:
    server, wrk, other = m.cores()
    print(
        f"[{db}] {m.scenario.label:<22} {m.server:<8} {m.ok_rate:>9,.0f} ok/s"
        f"  p50 {m.result.latency_us['p50'] / 1000:6.1f} ms"
        f"  errors {report.errors_cell(m.result)}"
        f"  cores srv {server:.2f} wrk {wrk:.2f} other {other:.2f}",
        flush=True,
    )


def _budget(args: argparse.Namespace) -> Budget:
    budget = scenarios.QUICK if args.quick else scenarios.FULL
    if args.seconds:
        budget = replace(budget, seconds=args.seconds)
    if args.max_responses:
        budget = replace(budget, max_responses=args.max_responses)
    if args.seed_runs:
        budget = replace(budget, seed_runs=args.seed_runs)
    return budget


def _databases(args: argparse.Namespace) -> list[tuple[Database | None, str]]:
    found: list[tuple[Database | None, str]] = []
    if args.db in ("sqlite", "all"):
        found.append((Database("sqlite"), ""))
    if args.db in ("postgres", "all"):
        found.append(postgres.prepare(args.pg_url))
    return found


def _prefect_venv(args: argparse.Namespace) -> Path:
    venv = prefect_venv.find_prefect_venv(args.prefect_venv)
    if venv:
        return venv
    if args.create_prefect_venv and not args.prefect_venv:
        return prefect_venv.create_prefect_venv()
    raise SystemExit(
        "No Prefect 3.9.1 virtualenv found (bench/.venv-prefect or .venv-prefect). "
        "Add --create-prefect-venv to create bench/.venv-prefect, or --servers deputy."
    )


def _default_deputy() -> Path:
    beside = Path(sys.executable).with_name("deputy")
    return beside if beside.exists() else REPO / ".venv" / "bin" / "deputy"


def _shown(path: str) -> str:
    """``path`` relative to the repository when inside it."""
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return path


if __name__ == "__main__":
    sys.exit(main())
