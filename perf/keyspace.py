"""Throughput on a big key space: the same scenarios over a pool of 200 chats (every
figure of the reports before issue 16) and over 100,000 chats (200,000 users), interleaved
in one run on one stack.

    python -m perf.keyspace [--seconds 6] [--rounds 5] [--connections 64] [--chats 100000]
                            [--fill-seconds 25]

One redis-server, one im-rpc, one gateway. Each pool is filled first by `--fill-seconds` of
sends at 64 connections (about as many messages in each: the small pool's chats are long
streams, the big pool's mostly short chats). Each round then runs, in turn at
`--connections`: /ping, and send, pull10 and inbox10 (a random member's inbox, 10 rows) on
the small pool and on the big one. Prints and writes keyspace.md: medians, each scenario's
share of the same round's /ping, and the big pool's figure over the small pool's (median of
the rounds' own ratios). Then audits every acknowledged send of both pools: exit 1 when one
is lost, duplicated or out of order.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from devtools.procs import start_trio
from perf.audit import run_audit
from perf.lib.rounds import Samples, interleaved, log
from perf.lib.stack import comparison_args
from perf.report import write_table
from perf.wrk import P99, RPS, WrkResult, run_wrk

SMALL_POOL = 200
SCENARIOS = ("send", "pull10", "inbox10")
PING = ("ping", "")  # the machine's reference: one /ping a round, whichever pool


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chats", type=int, default=100_000, help="chats of the big pool")
    p.add_argument("--fill-seconds", type=float, default=25, help="sends into each pool first")


def main(argv: list[str] | None = None) -> int:
    """Start the stack, fill both pools, measure interleaved, write the table, audit."""
    args = comparison_args("perf.keyspace", __doc__, argv, seconds=6, rounds=5, more=_options)
    pools = {f"{SMALL_POOL} chats": ("ks", SMALL_POOL), f"{args.chats:,} chats": ("kb", args.chats)}
    runs: Samples[WrkResult] = Samples()  # by (scenario, pool), and PING
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-keyspace-")))
        trio = start_trio(work, fsync="everysec")
        stack.callback(trio.stop)
        url = trio.url()
        acks = work / "acks.txt"
        for name, (prefix, chats) in pools.items():
            fill = run_wrk(
                url, "send", 64, args.fill_seconds, chats=chats, prefix=prefix, acks=acks
            )
            log("keyspace", f"{name}: filled with {fill.requests:,} messages")
        for r, scenario, name in interleaved(args.rounds, list(pools), ("ping", *SCENARIOS)):
            if scenario == "ping" and len(runs.by_key.get(PING, ())) > r:
                continue  # one /ping a round
            prefix, chats = pools[name]
            got = run_wrk(
                url,
                scenario,
                args.connections,
                args.seconds,
                chats=chats,
                prefix=prefix,
                acks=acks if scenario == "send" else None,
            )
            if got.error_count:
                raise SystemExit(f"{scenario} on {name}: errors {got.errors}")
            runs.add(PING if scenario == "ping" else (scenario, name), got)
            log("keyspace", f"round {r + 1} {scenario:>7} {name:>14} {got.rps:>8,.0f}/s "
                            f"p99 {got.p99_ms:.2f} ms")  # fmt: skip
        log("keyspace", "auditing every acknowledged send ...")
        audit = asyncio.run(run_audit(url, [acks]))
        log("keyspace", audit.line())
    small, large = pools
    lines = [
        f"Key space: medians of {args.rounds} interleaved rounds of {args.seconds:g} s at "
        f"{args.connections} connections (one im-http, one im-rpc, redis-server and wrk on "
        f"this machine); each pool filled first by {args.fill_seconds:g} s of sends.",
        "",
        f"| scenario | req/s, {small} | of /ping | req/s, {large} | of /ping | p99 ms, {small} "
        f"| p99 ms, {large} | {large} / {small} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in SCENARIOS:
        a, b = (scenario, small), (scenario, large)
        ratio = runs.ratio(b, a, RPS)
        lines.append(
            f"| {scenario} | {runs.median(a, RPS):,.0f} | {runs.ratio(a, PING, RPS):.1%} | "
            f"{runs.median(b, RPS):,.0f} | {runs.ratio(b, PING, RPS):.1%} | "
            f"{runs.median(a, P99):.2f} | {runs.median(b, P99):.2f} | **{ratio:.1%}** |"
        )
    lines += [
        "",
        f"/ping: {runs.median(PING, RPS):,.0f}/s (median). {audit.line()}",
    ]
    write_table(args.out, "keyspace.md", lines)
    return 0 if audit.ok else 1


if __name__ == "__main__":
    sys.exit(main())
