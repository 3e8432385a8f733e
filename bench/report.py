"""The results table (markdown), the machine's description, and bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from loadgen import WrkResult
from scenarios import Scenario

LABELS = {"deputy": "deputy", "prefect": "Prefect"}
MIB = 1024 * 1024


@dataclass(frozen=True)
class Measurement:
    """One scenario on one server."""

    scenario: Scenario
    server: str
    result: WrkResult
    server_cpu: float  # CPU seconds the server's process tree used during the run
    machine_cpu: float  # CPU seconds the whole machine used during the run

    @property
    def ok_rate(self) -> float:
        """Successful (2xx) requests per second."""
        return self.result.ok / self.result.elapsed

    def cores(self) -> tuple[float, float, float]:
        """Cores busy during the run: the server, wrk, and everything else on the machine."""
        wall = self.result.wall
        other = max(0.0, self.machine_cpu - self.server_cpu - self.result.wrk_cpu)
        return self.server_cpu / wall, self.result.wrk_cpu / wall, other / wall


@dataclass
class ServerStats:
    """Start-up time and memory of one server on one database."""

    startup_seconds: float = 0.0
    idle_rss: int = 0
    loaded_rss: int = 0


@dataclass
class Section:
    """Everything measured on one database."""

    database: str
    measurements: list[Measurement] = field(default_factory=list)
    stats: dict[str, ServerStats] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def errors_cell(result: WrkResult) -> str:
    """Non-2xx answers by status, socket errors by kind, and unexpected 2xx outcomes."""
    parts = [f"{status}: {n}" for status, n in sorted(result.statuses.items()) if status >= 300]
    parts += [f"{kind}: {n}" for kind, n in sorted(result.socket_errors.items())]
    if result.rejected:
        parts.append(f"not ACCEPT: {result.rejected}")
    return ", ".join(parts) or "0"


def throughput_table(section: Section) -> str:
    """One row per scenario and server, deputy first, with deputy/Prefect and the floor."""
    rates = {(m.scenario.label, m.server): m.ok_rate for m in section.measurements}
    header = [
        "scenario",
        "server",
        "ok req/s",
        "deputy/Prefect",
        "of /health",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "errors",
        "CPU srv/wrk/other",
        "note",
    ]
    rows = []
    order = {"deputy": 0, "prefect": 1}
    measurements = sorted(
        section.measurements,
        key=lambda m: (_position(section, m.scenario), order[m.server]),
    )
    for m in measurements:
        label = m.scenario.label
        ratio = ""
        prefect = rates.get((label, "prefect"))
        if m.server == "deputy" and prefect:
            ratio = f"{m.ok_rate / prefect:.2f}x"
        health = rates.get((f"health c={m.scenario.concurrency}", m.server))
        floor = "floor" if m.scenario.name == "health" else _percent(m.ok_rate, health)
        latency = m.result.latency_us
        note = ""
        if m.result.ops:
            note = f"{m.result.ops / m.result.elapsed:,.0f} lifecycles/s"
        rows.append(
            [
                label,
                LABELS[m.server],
                f"{m.ok_rate:,.0f}",
                ratio,
                floor,
                f"{latency['p50'] / 1000:.1f}",
                f"{latency['p90'] / 1000:.1f}",
                f"{latency['p99'] / 1000:.1f}",
                errors_cell(m.result),
                "/".join(f"{c:.2f}" for c in m.cores()),
                note,
            ]
        )
    return markdown(header, rows)


def process_table(section: Section) -> str:
    """Start-up time and RSS of each server, with the deputy/Prefect ratio."""
    names = [name for name in ("deputy", "prefect") if name in section.stats]
    header = ["process", *(LABELS[name] for name in names)]
    if len(names) == 2:
        header.append("deputy/Prefect")
    measures = [
        ("start-up to healthy /api/health (s)", "startup_seconds", 1.0, "{:.2f}"),
        ("RSS idle, fresh start (MiB)", "idle_rss", MIB, "{:.0f}"),
        ("RSS after the load (MiB)", "loaded_rss", MIB, "{:.0f}"),
    ]
    rows = []
    for title, attribute, unit, fmt in measures:
        values = [getattr(section.stats[name], attribute) / unit for name in names]
        row = [title, *(fmt.format(value) for value in values)]
        if len(values) == 2:
            row.append(f"{values[0] / values[1]:.2f}x" if values[1] else "")
        rows.append(row)
    return markdown(header, rows)


def section_text(section: Section) -> str:
    parts = [f"### {section.database}", ""]
    parts += [f"- skipped: {reason}" for reason in section.skipped]
    if section.skipped:
        parts.append("")
    if section.measurements:
        parts += [throughput_table(section), ""]
    if section.stats:
        parts += [process_table(section), ""]
    return "\n".join(parts)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table padded so it also reads well in a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def machine_description(extra: dict[str, str]) -> str:
    """nproc, CPU model, memory, kernel and the versions under test, one per line."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    facts = {
        "nproc": str(os.cpu_count()),
        "CPU": model,
        "memory": f"{total_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "Python (harness)": platform.python_version(),
        "deputy": _git_revision(),
        **extra,
    }
    return "\n".join(f"- {key}: {value}" for key, value in facts.items())


def results_markdown(
    sections: list[Section], *, command: str, date: str, machine: str, notes: list[str]
) -> str:
    """The whole of bench/RESULTS.md."""
    parts = [
        "# Benchmark results",
        "",
        f"Date: {date}",
        "",
        f"Command: `{command}`",
        "",
        "Machine:",
        "",
        machine,
        "",
    ]
    if notes:
        parts += [*(f"Note: {note}" for note in notes), ""]
    parts += [section_text(section) for section in sections]
    parts.append(
        "How to read it: ok req/s counts 2xx answers only; deputy/Prefect compares them; "
        '"of /health" is the scenario\'s rate as a share of GET /api/health on the same '
        "server process at the same concurrency; latencies are wrk's, per request (errors "
        "included); CPU is cores busy during the run: the server's process tree, wrk itself, "
        "and everything else on the machine. See bench/README.md."
    )
    return "\n".join(parts) + "\n"


def _position(section: Section, scenario: Scenario) -> int:
    labels = list(dict.fromkeys(m.scenario.label for m in section.measurements))
    return labels.index(scenario.label)


def _percent(value: float, whole: float | None) -> str:
    return f"{100 * value / whole:.0f}%" if whole else ""


def _git_revision() -> str:
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"
