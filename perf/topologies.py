"""Which process counts pay on this machine: ping, send and pull per topology.

    python -m perf.topologies [--seconds 8] [--rounds 2] [--connections 64]

Each topology (gateway workers x im-rpc instances) gets a fresh stack; wrk runs
/ping, send and pull10, and each round visits every topology in turn (interleaved).
It prints a table of medians and writes topologies.md into the report directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from devtools.procs import http_service, redis_server, rpc_service
from perf.lib.rounds import interleaved, log
from perf.lib.stack import comparison_args, start_owned
from perf.report import write_table
from perf.wrk import run_wrk

TOPOLOGIES = [(1, 1), (2, 1), (1, 2), (2, 2)]  # (gateway worker processes, im-rpc processes)
SCENARIOS = ("ping", "send", "pull10")


def _measure(workers: int, rpcs: int, args: argparse.Namespace) -> dict[str, float]:
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-topo-")))
        redis = start_owned(stack, redis_server(work / "redis", fsync="everysec"))
        ports = [
            start_owned(stack, rpc_service(work, f"redis://127.0.0.1:{redis.port}/0")).port
            for _ in range(rpcs)
        ]
        gateway = start_owned(stack, http_service(work, ports, IM_HTTP_WORKERS=str(workers)))
        url = f"http://127.0.0.1:{gateway.port}"
        run_wrk(url, "send", args.connections, 2, chats=200, prefix="warm")  # fills chats
        return {
            s: run_wrk(url, s, args.connections, args.seconds, chats=200, prefix="warm").rps
            for s in SCENARIOS
        }


def main(argv: list[str] | None = None) -> int:
    """Measure every topology, print and write the table."""
    args = comparison_args("perf.topologies", __doc__, argv, seconds=8, rounds=2)
    runs: dict[tuple[int, int], list[dict[str, float]]] = {t: [] for t in TOPOLOGIES}
    for r, _, (workers, rpcs) in interleaved(args.rounds, TOPOLOGIES, rotate=True):
        result = _measure(workers, rpcs, args)
        runs[(workers, rpcs)].append(result)
        log("topologies", f"round {r + 1}: {workers} gateway worker(s), {rpcs} im-rpc: "
                          + ", ".join(f"{k} {v:,.0f}/s" for k, v in result.items()))  # fmt: skip
    lines = [
        f"Process counts at {args.connections} connections, medians of {args.rounds} "
        f"interleaved rounds of {args.seconds:g} s (wrk on the same machine):",
        "",
        "| gateway workers | im-rpc | /ping req/s | send req/s | pull10 req/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for (workers, rpcs), results in runs.items():
        med = {s: statistics.median(r[s] for r in results) for s in SCENARIOS}
        lines.append(
            f"| {workers} | {rpcs} | {med['ping']:,.0f} | {med['send']:,.0f} | "
            f"{med['pull10']:,.0f} |"
        )
    write_table(args.out, "topologies.md", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
