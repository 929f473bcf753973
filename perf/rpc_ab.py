"""Code A/B: an older commit's im-rpc (with `--whole` also its gateway) against this tree's,
on one Redis.

    python -m perf.rpc_ab --base 8eccfd7 --rounds 4 --seconds 6 [--whole] [--own-redis]

The base commit is checked out in a temporary git worktree; its im-rpc runs from there
(`PYTHONPATH`), this tree's beside it, each behind a gateway of this tree (with `--whole`:
A's gateway is the base commit's too, a whole-stack comparison), both storing in
one redis-server (AOF everysec), or with `--own-redis` each in its own (for a base that
stores in another layout; each side is then filled). wrk runs each scenario at 64
connections on A and B in turn (the order alternating by round) over a pool of `--chats`
chats, after a fill of sends; each run records requests/s and the CPU time each process
(gateway, im-rpc, Redis with its AOF rewrites, wrk) spent per request
(perf.cpu_split.measure). Logs every run, then writes per scenario the median B/A
throughput ratio of the rounds and the medians of the per-request CPU (perf/reports/rpc_ab.md
unless `--out` says another directory).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from devtools.procs import http_service, redis_server, rpc_service
from perf.cpu_split import Sample, measure
from perf.lib.rounds import Samples, interleaved, log
from perf.lib.stack import base_gateway, base_rpc, comparison_args, start_owned, worktree
from perf.report import write_table
from perf.wrk import run_wrk

ROOT = Path(__file__).resolve().parent.parent


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="HEAD", help="the commit whose im-rpc is A")
    p.add_argument("--scenarios", default="send,pull10", help="wrk scenarios, comma-separated")
    p.add_argument("--chats", type=int, default=100_000, help="chats in the load's pool")
    p.add_argument("--fill-seconds", type=float, default=10, help="sends before the runs")
    p.add_argument("--whole", action="store_true", help="A runs the base commit's gateway too")
    p.add_argument(
        "--own-redis", action="store_true", help="a redis-server per side (another layout)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the A/B, print every run and the medians."""
    args = comparison_args("perf.rpc_ab", __doc__ or "", argv, 6, 4, more=_options)
    scenarios = args.scenarios.split(",")
    runs: Samples[Sample] = Samples()
    with ExitStack() as stack:
        base = worktree(stack, args.base)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-ab-run-")))
        redises = {
            side: start_owned(stack, redis_server(work / f"redis-{side}", fsync="everysec"))
            for side in (("A", "B") if args.own_redis else ("A",))
        }
        redises.setdefault("B", redises["A"])
        stores = {side: f"redis://127.0.0.1:{r.port}/0" for side, r in redises.items()}
        old, module = base_rpc(work, stores["A"], base, {})
        rpcs = {
            "A": start_owned(stack, old),
            "B": start_owned(stack, rpc_service(work, stores["B"])),
        }
        gateways = {"B": start_owned(stack, http_service(work, [rpcs["B"].port]))}
        if args.whole:
            old_gateway, gateway_module = base_gateway(work, rpcs["A"].port, base)
            gateways["A"] = start_owned(stack, old_gateway)
            module += f", {gateway_module}"
        else:
            gateways["A"] = start_owned(stack, http_service(work, [rpcs["A"].port]))
        what = "im-rpc and gateway" if args.whole else "im-rpc"
        log("ab", f"A: {what} of {args.base} ({module}); B: this tree")
        for side in ("A", "B") if args.own_redis else ("B",):
            if args.fill_seconds:
                fill = f"http://127.0.0.1:{gateways[side].port}"
                sent = run_wrk(fill, "send", 64, args.fill_seconds, chats=args.chats)
                log("ab", f"filled {side}: {sent.requests:,} sends")
        for r, scenario, side in interleaved(args.rounds, ("A", "B"), scenarios):
            procs = {"im-http": gateways[side], "im-rpc": rpcs[side], "redis": redises[side]}
            url = f"http://127.0.0.1:{gateways[side].port}"
            run = measure(url, procs, scenario, args)
            runs.add((scenario, side), run)
            cpu = "  ".join(f"{n} {us:5.1f}" for n, us in run.cpu_us.items())
            log("ab", f"round {r + 1} {scenario:>7} {side} {run.rps:9,.0f}/s  "
                      f"CPU µs per request: {cpu}")  # fmt: skip
    lines = [
        f"A: {what} of {args.base}; B: this tree ({args.connections} connections, medians of "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s):",
        "",
        "| scenario | A req/s | B req/s | B/A (median of the rounds' ratios) | rounds "
        "| CPU µs per request A -> B |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        a, b = runs.rounds((scenario, "A")), runs.rounds((scenario, "B"))
        ratios = [y.rps / x.rps for x, y in zip(a, b, strict=True)]
        cpu = ", ".join(
            f"{name} {statistics.median(x.cpu_us[name] for x in a):.1f} -> "
            f"{statistics.median(y.cpu_us[name] for y in b):.1f}"
            for name in a[0].cpu_us
        )
        lines.append(
            f"| {scenario} | {statistics.median(x.rps for x in a):,.0f} "
            f"| {statistics.median(y.rps for y in b):,.0f} | {statistics.median(ratios):.3f} "
            f"| {', '.join(f'{x:.2f}' for x in ratios)} | {cpu} |"
        )
    write_table(args.out, "rpc_ab.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
