"""Where the CPU goes: µs per request in each process, with Redis's append-only file on and
off, interleaved.

    python -m perf.cpu_split [--seconds 8] [--rounds 3] [--chats 100000] [--fill-seconds 30]

Two stacks (redis-server, one im-rpc, one gateway), one with AOF `everysec` (as every other
figure) and one without persistence, each filled by `--fill-seconds` of sends over a pool of
`--chats` chats. Each round runs /ping, send and pull10 at `--connections` on both stacks in
turn (the order alternating by round) and records requests/s, the CPU time each process
spent per request (gateway, im-rpc, Redis with the AOF rewrites it forked, wrk; from
`/proc/<pid>/stat`), the machine's idle share and how many AOF rewrites ran. Prints every
run, then writes the medians per stack and the send and pull10 ratios without AOF over
with it (perf/reports/cpu_split.md unless `--out` says another directory).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from devtools.procs import Process, Trio, start_trio
from perf.lib.procstats import cpu_seconds, machine_jiffies, pid_of
from perf.lib.rounds import Samples, interleaved, log
from perf.lib.stack import comparison_args
from perf.report import write_table
from perf.wrk import run_wrk

SCENARIOS = ("ping", "send", "pull10")


@dataclass
class Sample:
    """One wrk run on one stack."""

    rps: float
    cpu_us: dict[str, float]
    idle: float
    rewrites: int = 0


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chats", type=int, default=100_000, help="chats in the load's pool")
    p.add_argument("--fill-seconds", type=float, default=30, help="sends into each stack first")


def measure(url: str, procs: dict[str, Process], scenario: str, args: argparse.Namespace) -> Sample:
    """One wrk run of `scenario` on `url` (`args`: connections, seconds, chats): requests/s,
    the CPU µs per request of each of `procs` (one named "redis" with the AOF rewrites it
    forked) and of wrk, and the machine's idle share."""
    pids = {name: pid_of(p) for name, p in procs.items()}
    before = {name: cpu_seconds(pid, name == "redis") for name, pid in pids.items()}
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle0, total0 = machine_jiffies()
    result = run_wrk(url, scenario, args.connections, args.seconds, chats=args.chats)
    idle1, total1 = machine_jiffies()
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = max(1, result.requests)
    cpu = {
        name: (cpu_seconds(pid, name == "redis") - before[name]) / n * 1e6
        for name, pid in pids.items()
    }
    wrk = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
    cpu["wrk"] = wrk / n * 1e6
    return Sample(result.rps, cpu, 100 * (idle1 - idle0) / max(1, total1 - total0))


def _sample(trio: Trio, scenario: str, args: argparse.Namespace) -> Sample:
    procs = {"im-http": trio.gateways[0], "im-rpc": trio.rpc, "redis": trio.redis}
    with Redis(port=trio.redis.port) as admin:
        rewrites = int(admin.info("persistence")["aof_rewrites"])
        sample = measure(trio.url(), procs, scenario, args)
        sample.rewrites = int(admin.info("persistence")["aof_rewrites"]) - rewrites
    return sample


def main(argv: list[str] | None = None) -> int:
    """Start both stacks, fill them, measure interleaved, print the medians."""
    args = comparison_args("perf.cpu_split", __doc__ or "", argv, 8, 3, more=_options)
    names = ("AOF everysec", "no persistence")
    samples: Samples[Sample] = Samples()
    with ExitStack() as stack:
        trios: dict[str, Trio] = {}
        for name, fsync in zip(names, ("everysec", None), strict=True):
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-cpu-")))
            trios[name] = start_trio(work, fsync=fsync)
            stack.callback(trios[name].stop)
            if args.fill_seconds:
                log("cpu_split", f"filling {args.chats:,} chats of '{name}' ...")
                run_wrk(trios[name].url(), "send", 64, args.fill_seconds, chats=args.chats)
        for r, scenario, name in interleaved(args.rounds, names, SCENARIOS):
            sample = _sample(trios[name], scenario, args)
            samples.add((scenario, name), sample)
            cpu = "  ".join(f"{p} {us:5.1f}" for p, us in sample.cpu_us.items())
            log("cpu_split", f"round {r + 1} {scenario:>6} {name:>14} {sample.rps:9,.0f}/s  "
                             f"CPU µs per request: {cpu}  idle {sample.idle:4.1f}%  "
                             f"AOF rewrites {sample.rewrites}")  # fmt: skip
    lines = [
        f"Where the CPU goes, with AOF everysec and without persistence: medians of "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s at {args.connections} "
        f"connections over {args.chats:,} chats (one gateway, one im-rpc, redis-server and wrk "
        "on this machine):",
        "",
        "| scenario | stack | req/s | CPU µs per request |",
        "| --- | --- | --- | --- |",
    ]
    for scenario in SCENARIOS:
        for name in names:
            runs = samples.rounds((scenario, name))
            cpu = ", ".join(
                f"{p} {statistics.median(s.cpu_us[p] for s in runs):.1f}" for p in runs[0].cpu_us
            )
            rps = samples.median((scenario, name), lambda s: s.rps)
            lines.append(f"| {scenario} | {name} | {rps:,.0f} | {cpu} |")
    lines.append("")
    for scenario in ("send", "pull10"):
        with_aof, without = (
            samples.rounds((scenario, names[0])),
            samples.rounds((scenario, names[1])),
        )
        ratios = [b.rps / a.rps for a, b in zip(with_aof, without, strict=True)]
        rounds = ", ".join(f"{x:.2f}" for x in ratios)
        lines.append(
            f"{scenario}: without AOF / with it {statistics.median(ratios):.3f} (rounds {rounds})"
        )
    write_table(args.out, "cpu_split.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
