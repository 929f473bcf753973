"""Runs wrk with perf/wrk/im.lua and reads its figures."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "wrk" / "im.lua"


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles (ms) and errors."""

    scenario: str
    connections: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    requests: int
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        """Connect, read, write, timeout errors and non-2xx answers, together."""
        return sum(self.errors.values())


# a run's figures, to read from the runs of perf.lib.rounds.Samples
RPS, P99 = attrgetter("rps"), attrgetter("p99_ms")


def wrk_binary() -> str:
    """The wrk executable, or SystemExit telling how to get it."""
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is not installed: run scripts/bootstrap (apt package wrk)")
    return exe


def run_wrk(
    url: str,
    scenario: str,
    connections: int,
    seconds: float,
    *,
    chats: int = 100,
    limit: int = 10,
    prefix: str = "run",
    acks: Path | None = None,
    tokens: Path | None = None,
    members: int = 1000,
    since: str = "",
) -> WrkResult:
    """Run one wrk load; scenario is ping, send, pull10, pull100, gsend (to groups of
    `members`), chats10 (the hub's inbox page), inbox10 (a random user's inbox page) or
    sync10 (the hub's sync from the token `since`: the same events each time), asend (a
    send by each chat's first member), edit, recall or recallnew (of the messages in `acks`;
    recall oldest first, recallnew newest first).
    `tokens`: a file of perf/tokens.py, for a gateway with authentication on."""
    mode = scenario.rstrip("0123456789")
    limit = int(scenario[len(mode) :] or limit)
    threads = max(1, min(2, connections))
    argv = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        mode,
        str(chats),
        str(limit),
        prefix,
        str(acks or ""),
        uuid.uuid4().hex[:8],
        str(tokens or ""),
        str(members),
        since,
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("WRK_JSON "))
    data = json.loads(line.removeprefix("WRK_JSON "))
    return WrkResult(
        scenario,
        connections,
        data["rps"],
        data["p50_us"] / 1000,
        data["p90_us"] / 1000,
        data["p99_us"] / 1000,
        data["p999_us"] / 1000,
        data["max_us"] / 1000,
        data["requests"],
        data["errors"],
    )
