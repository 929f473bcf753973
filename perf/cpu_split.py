"""Where the CPU goes: µs per request in each process, with Redis's append-only file on and
off, interleaved.

    python -m perf.cpu_split [--seconds 8] [--rounds 3] [--chats 100000] [--fill-seconds 30]

Two stacks (redis-server, one im-rpc, one gateway), one with AOF `everysec` (as every other
figure) and one without persistence, each filled by `--fill-seconds` of sends over a pool of
`--chats` chats. Each round runs /ping, send and pull10 at `--connections` on both stacks in
turn (the order alternating by round) and records requests/s, the CPU time each process
spent per request (gateway, im-rpc, Redis with the AOF rewrites it forked, wrk; from
`/proc/<pid>/stat`), the machine's idle share and how many AOF rewrites ran. Prints every
run, then the medians per stack and the send and pull10 ratios without AOF over with it.
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
from perf.auth import cpu_seconds
from perf.stack import comparison_args
from perf.wrk import run_wrk

SCENARIOS = ("ping", "send", "pull10")


@dataclass
class Sample:
    """One wrk run on one stack."""

    rps: float
    cpu_us: dict[str, float]
    idle: float
    rewrites: int = 0


def _machine() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--chats", type=int, default=100_000, help="chats in the load's pool")
    p.add_argument("--fill-seconds", type=float, default=30, help="sends into each stack first")


def measure(url: str, procs: dict[str, Process], scenario: str, args: argparse.Namespace) -> Sample:
    """One wrk run of `scenario` on `url` (`args`: connections, seconds, chats): requests/s,
    the CPU µs per request of each of `procs` (one named "redis" with the AOF rewrites it
    forked) and of wrk, and the machine's idle share."""
    pids = {name: p.proc.pid for name, p in procs.items() if p.proc is not None}
    before = {name: cpu_seconds(pid, name == "redis") for name, pid in pids.items()}
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle0, total0 = _machine()
    result = run_wrk(url, scenario, args.connections, args.seconds, chats=args.chats)
    idle1, total1 = _machine()
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
    samples: dict[tuple[str, str], list[Sample]] = {}
    with ExitStack() as stack:
        trios: dict[str, Trio] = {}
        for name, fsync in zip(names, ("everysec", None), strict=True):
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-cpu-")))
            trios[name] = start_trio(work, fsync=fsync)
            stack.callback(trios[name].stop)
            if args.fill_seconds:
                print(f"filling {args.chats:,} chats of '{name}' ...", flush=True)
                run_wrk(trios[name].url(), "send", 64, args.fill_seconds, chats=args.chats)
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for scenario in SCENARIOS:
                for name in order:
                    s = _sample(trios[name], scenario, args)
                    samples.setdefault((scenario, name), []).append(s)
                    cpu = "  ".join(f"{p} {us:5.1f}" for p, us in s.cpu_us.items())
                    print(f"round {r + 1} {scenario:>6} {name:>14} {s.rps:9,.0f}/s  "
                          f"CPU µs per request: {cpu}  idle {s.idle:4.1f}%  "
                          f"AOF rewrites {s.rewrites}", flush=True)  # fmt: skip
    print("\nmedians:")
    for scenario in SCENARIOS:
        for name in names:
            runs = samples[(scenario, name)]
            cpu = "  ".join(
                f"{p} {statistics.median(s.cpu_us[p] for s in runs):.1f}" for p in runs[0].cpu_us
            )
            rps = statistics.median(s.rps for s in runs)
            print(f"{scenario:>6} {name:>14} {rps:9,.0f}/s  CPU µs per request: {cpu}")
    for scenario in ("send", "pull10"):
        with_aof, without = samples[(scenario, names[0])], samples[(scenario, names[1])]
        ratios = [b.rps / a.rps for a, b in zip(with_aof, without, strict=True)]
        rounds = ", ".join(f"{x:.2f}" for x in ratios)
        print(
            f"{scenario}: without AOF / with it {statistics.median(ratios):.3f} (rounds {rounds})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
