"""Writes a run's report: report.md with tables, and PNG plots beside it."""

from __future__ import annotations

import datetime as dt
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from perf.audit import Audit
from perf.redis_bench import RedisCeiling
from perf.wrk import WrkResult

SCENARIOS = {
    "ping": "GET /ping (HTTP ceiling)",
    "send": "POST /api/send",
    "pull10": "GET /api/pull limit=10",
    "pull100": "GET /api/pull limit=100",
    "inbox10": "GET /api/chats limit=10 (a random user)",
}


@dataclass
class RunData:
    """Everything a report shows."""

    title: str
    setup: list[str]
    results: list[WrkResult]
    audit: Audit
    redis: list[RedisCeiling] = field(default_factory=list)
    locust: list[dict[str, str]] = field(default_factory=list)
    memory: list[str] = field(default_factory=list)
    command: str = ""
    rounds: list[WrkResult] = field(default_factory=list)  # every run, in the order run
    sync_audit: str = ""  # perf.sync_audit's line, when it ran
    change_audit: str = ""  # perf.change_audit's lines, when it ran


def median_result(runs: Sequence[WrkResult]) -> WrkResult:
    """The run with the median throughput of several rounds of one scenario."""
    ordered = sorted(runs, key=lambda r: r.rps)
    return ordered[len(ordered) // 2]


def round_ratios(rounds: Sequence[WrkResult], scenario: str, conns: int) -> list[float]:
    """`scenario`'s throughput over `/ping`'s in each round at `conns` connections: the i-th
    run of each, measured back to back, so a machine that slows down between rounds slows
    both sides of a ratio."""
    runs = [r for r in rounds if r.scenario == scenario and r.connections == conns]
    pings = [r for r in rounds if r.scenario == "ping" and r.connections == conns]
    return [run.rps / ping.rps for run, ping in zip(runs, pings, strict=True)]


def _by(results: list[WrkResult], scenario: str, conns: int) -> WrkResult | None:
    return next((r for r in results if r.scenario == scenario and r.connections == conns), None)


def _scenario_table(data: RunData, scenario: str) -> list[str]:
    rows = [
        f"### {SCENARIOS[scenario]}",
        "",
        "| connections | req/s | of /ping | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
        "| errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(
        (r for r in data.results if r.scenario == scenario), key=lambda r: r.connections
    ):
        ping = _by(data.results, "ping", r.connections)
        share = f"{r.rps / ping.rps:.0%}" if ping and scenario != "ping" else "-"
        rows.append(
            f"| {r.connections} | {r.rps:,.0f} | {share} | {r.p50_ms:.2f} | "
            f"{r.p90_ms:.2f} | {r.p99_ms:.2f} | {r.p999_ms:.2f} | {r.max_ms:.1f} | "
            f"{r.error_count} |"
        )
    return [*rows, ""]


def _targets(data: RunData) -> list[str]:
    rows = ["| target | measured | met |", "| --- | --- | --- |"]
    ping64 = _by(data.results, "ping", 64)
    for scenario in ("send", "pull10"):
        r = _by(data.results, scenario, 64)
        if r and ping64:
            share = r.rps / ping64.rps
            measured = f"{r.rps:,.0f} / {ping64.rps:,.0f} = {share:.0%}"
            if ratios := round_ratios(data.rounds, scenario, 64):
                share = statistics.median(ratios)
                each = ", ".join(f"{x:.0%}" for x in ratios)
                measured = f"{share:.1%} (rounds {each}); medians {measured}"
            rows.append(
                f"| {SCENARIOS[scenario]} at 64 connections >= 50% of /ping | {measured} | "
                f"{'yes' if share >= 0.5 else 'no'} |"
            )
    for scenario in ("send", "pull10"):
        r = _by(data.results, scenario, 20)
        if r:
            rows.append(
                f"| {SCENARIOS[scenario]} p99 at 20 connections < 10 ms | "
                f"{r.p99_ms:.2f} ms | {'yes' if r.p99_ms < 10 else 'no'} |"
            )
    rows.append(
        f"| audit: 0 lost, 0 duplicated | {data.audit.lost} lost, "
        f"{data.audit.duplicated} duplicated | {'yes' if data.audit.ok else 'no'} |"
    )
    return [*rows, ""]


def _plot(data: RunData, out: Path) -> list[str]:
    conns = sorted({r.connections for r in data.results})
    if len(conns) < 2:
        return []
    fig, ax = plt.subplots(figsize=(7, 4))
    for scenario, label in SCENARIOS.items():
        pts = [(c, r.rps) for c in conns if (r := _by(data.results, scenario, c))]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax.set(xscale="log", xlabel="connections", ylabel="requests/s", title="Throughput")
    ax.set_xticks(conns, [str(c) for c in conns])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, (scenario, label) in zip(axes, list(SCENARIOS.items())[1:], strict=False):
        for pct in ("p50_ms", "p90_ms", "p99_ms", "p999_ms"):
            pts = [(c, getattr(r, pct)) for c in conns if (r := _by(data.results, scenario, c))]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=pct.removesuffix("_ms"))
        ax.set(xscale="log", yscale="log", xlabel="connections", title=label)
        ax.set_xticks(conns, [str(c) for c in conns])
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("latency (ms)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    return ["![throughput](throughput.png)", "", "![latency](latency.png)", ""]


def _locust(data: RunData) -> list[str]:
    if not data.locust:
        return []
    rows = [
        "## Locust: mixed users (send, page back, poll forward)",
        "",
        "| request | count | failures | req/s | p50 ms | p90 ms | p99 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in data.locust:
        rows.append(
            f"| {row['Type']} {row['Name']} | {row['Request Count']} | "
            f"{row['Failure Count']} | {float(row['Requests/s']):,.0f} | {row['50%']} | "
            f"{row['90%']} | {row['99%']} |"
        )
    return [*rows, "", "Locust's own CSV and HTML reports: `locust_*.csv`, `locust.html`.", ""]


def write_report(out: Path, data: RunData) -> Path:
    """Write report.md (and the plots) into `out`; return its path."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {data.title}", "", *[f"- {s}" for s in data.setup], ""]
    if data.command:
        lines += ["Reproduce:", "", f"    {data.command}", ""]
    lines += [
        "## Targets",
        "",
        *_targets(data),
        "## Correctness audit",
        "",
        f"    {data.audit.line()}",
        *([f"    {data.sync_audit}"] if data.sync_audit else []),
        *([f"    {line}" for line in data.change_audit.splitlines()] if data.change_audit else []),
        "",
    ]
    lines += ["## Scenarios (wrk)", ""]
    for scenario in SCENARIOS:
        lines += _scenario_table(data, scenario)
    lines += _plot(data, out)
    if data.redis:
        lines += [
            "## Redis ceilings (redis-benchmark, 50 clients)",
            "",
            "| command | pipeline | commands/s |",
            "| --- | --- | --- |",
            *[f"| {c.command} | {c.pipeline} | {c.rps:,.0f} |" for c in data.redis],
            "",
        ]
    lines += _locust(data)
    if data.memory:
        lines += [
            "## Redis memory per message (`python -m perf.store_memory`)",
            "",
            "```",
            *data.memory,
            "```",
            "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


REPORTS = Path(__file__).resolve().parent / "reports"


def stamp() -> str:
    """When and on which commit a report was measured (and whether the tree had changes)."""
    root = REPORTS.parent.parent
    git = ["git", "-C", str(root)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    commit = head.stdout.strip() or "unknown"
    return f"_Measured {dt.date.today().isoformat()} on commit {commit}" + (
        " with uncommitted changes._" if dirty else "._"
    )


def write_table(out: Path | None, name: str, lines: list[str]) -> None:
    """Write `lines` as `name` into `out` (default perf/reports: the latest run of each
    question; older ones are in git history), under a line saying when and on which commit,
    and print them."""
    text = "\n".join([stamp(), "", *lines]) + "\n"
    directory = out or REPORTS
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    print(text)
