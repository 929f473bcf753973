"""Sync A/B: an older commit's im-rpc against this tree's, on the sync of perf.sync_costs's
hubs and on a pull of 10, at 20 connections.

    python -m perf.sync_ab --base 79e0992 [--rounds 5] [--seconds 5] [--chats 20,2000]
                           [--long-chats 20]

One redis-server (AOF everysec) holds the data of both sides; the base commit's im-rpc runs
from a git worktree (`PYTHONPATH`), this tree's beside it, each behind a gateway of this tree
(IM_GROUP_FANOUT_MAX_MEMBERS 2, IM_USER_MAX_GROUPS 5,000 on both). The hubs (and their
tokens) are made through this tree's side, then wrk replays each hub's token (`sync10`) and
pulls 10 messages of a 200-chat pool (`pull10`) on A and B in turn, the order alternating by
round. Per scenario: each side's median p99 and its ratio to the same round's pull10 on that
side, and B/A of p99 and of requests/s (medians of the rounds' ratios). Writes
perf/reports/sync_ab.md (or `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from devtools.procs import http_service, redis_server, rpc_service
from perf.lib.rounds import Samples, interleaved, log
from perf.lib.stack import base_rpc, comparison_args, start_owned, worktree
from perf.report import write_table
from perf.sync_costs import POOL, _hub, hub_options, hubs
from perf.wrk import P99, RPS, WrkResult, run_wrk

SETTINGS = {
    "IM_GROUP_FANOUT_MAX_MEMBERS": "2",  # a group of 3 is big
    "IM_USER_MAX_GROUPS": "5000",  # the hubs' groups
    "IM_LOG_LEVEL": "WARNING",
}
PULL = "pull10 (200 chats)"


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="HEAD", help="the commit whose im-rpc is A")
    hub_options(p)


def run(args: argparse.Namespace) -> list[str]:
    """The interleaved runs on both sides: the table's lines."""
    runs: Samples[WrkResult] = Samples()
    planned = hubs(args)  # (its errors before anything starts)
    with ExitStack() as stack:
        base = worktree(stack, args.base)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-sync-ab-")))
        redis = start_owned(stack, redis_server(work / "redis", fsync="everysec"))
        store = f"redis://127.0.0.1:{redis.port}/0"
        old, module = base_rpc(work, store, base, SETTINGS)
        rpcs = {
            "A": start_owned(stack, old),
            "B": start_owned(stack, rpc_service(work, store, None, **SETTINGS)),
        }
        ports = {
            side: start_owned(stack, http_service(work, [rpc.port])).port
            for side, rpc in rpcs.items()
        }
        urls = {side: f"http://127.0.0.1:{port}" for side, port in ports.items()}
        log("sync_ab", f"A: im-rpc of {args.base} ({module}); B: this tree")
        plan: dict[str, dict[str, Any]] = {PULL: {"scenario": "pull10", "prefix": "pool"}}
        for hub in planned:
            token = asyncio.run(_hub(ports["B"], hub.prefix, hub.chats, hub.history))
            plan[f"sync10, {hub.name}"] = {
                "scenario": "sync10",
                "prefix": hub.prefix,
                "since": token,
            }
        run_wrk(urls["B"], "send", 64, 2, chats=POOL, prefix="pool")  # pull10's chats get messages
        for r, name, side in interleaved(args.rounds, ("A", "B"), list(plan)):
            spec = plan[name]
            got = run_wrk(urls[side], spec["scenario"], 20, args.seconds, chats=POOL,
                          prefix=spec["prefix"], since=spec.get("since", ""))  # fmt: skip
            if got.error_count:
                raise SystemExit(f"{name} on {side}: errors {got.errors}")
            runs.add((name, side), got)
            log("sync_ab", f"round {r + 1} {name} {side}: {got.rps:,.0f}/s p99 {got.p99_ms:.2f} ms")
    return _table(args, runs, list(plan))


def _table(args: argparse.Namespace, runs: Samples[WrkResult], names: list[str]) -> list[str]:
    lines = [
        f"A: im-rpc of {args.base}; B: this tree (one Redis, a gateway of this tree each; 20 "
        f"connections, medians of {args.rounds} interleaved rounds of {args.seconds:g} s).",
        "",
        "| scenario | A p99 ms | B p99 ms | A p99 / its pull10's | B p99 / its pull10's "
        "| B/A p99 | B/A req/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in names:
        a, b = (name, "A"), (name, "B")
        to_pull = [runs.ratio((name, s), (PULL, s), P99) for s in "AB"]
        lines.append(
            f"| {name} | {runs.median(a, P99):.2f} | {runs.median(b, P99):.2f} "
            f"| {to_pull[0]:.2f} | {to_pull[1]:.2f} | {runs.ratio(b, a, P99):.3f} "
            f"| {runs.ratio(b, a, RPS):.3f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the A/B, write the table."""
    args = comparison_args("perf.sync_ab", __doc__ or "", argv, 5, 5, more=_options)
    write_table(args.out, "sync_ab.md", run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
