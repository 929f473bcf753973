"""Soak: the scaled topology under a moderate, steady load for a bounded time.

    python -m perf.soak [--seconds 600] [--rate 500] [--clients 20] [--out DIR]

Starts Redis (AOF), etcd, two im-rpc, two gateways and nginx (the local cluster's
topology), then sends and pulls through nginx at `--rate` requests/s (half sends, the
rest forward and backward pulls) for `--seconds`. Every 2 s it samples the resident
memory (RSS) of every process. At the end it prints and writes soak.md: requests and
failures, latency percentiles, and each process's RSS after warm-up (the first quarter, at
least 30 s, at most half the run) and at the end. Exit 1 when a request failed or a
service's RSS grew more than --max-growth (Redis's own growth is the data it stores:
reported, not judged).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from devtools.procs import (
    Process,
    nginx_server,
)
from devtools.rawhttp import Connection
from perf.lib.procstats import pid_of, rss_kb
from perf.lib.stack import ScaledStack, raise_fd_limit, start_owned
from perf.report import write_table

SAMPLE_S = 2.0


@dataclass
class Soak:
    """What the soak saw."""

    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    rss: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # name -> (t, kB)


async def sample(procs: dict[str, Process], soak: Soak, until: float, started: float) -> None:
    while time.monotonic() < until:
        for name, proc in procs.items():
            assert proc.proc is not None
            taken = (time.monotonic() - started, rss_kb(pid_of(proc)))
            soak.rss.setdefault(name, []).append(taken)
        await asyncio.sleep(SAMPLE_S)


async def load(port: int, soak: Soak, rate: float, clients: int, until: float) -> None:
    """`clients` connections, each pacing itself to rate/clients requests per second."""
    numbers = itertools.count()
    interval = clients / rate

    async def client(c: int) -> None:
        conn = await Connection.open(port)
        next_at = time.monotonic()
        while time.monotonic() < until:
            n = next(numbers)
            chat = f"soak{c}:peer{n % 50}"
            started = time.monotonic()
            if n % 2 == 0:
                r = await conn.post_json(
                    "/api/send", {"chat": chat, "sender": f"soak{c}", "text": f"{n}".ljust(100)}
                )
            else:
                reverse = "true" if n % 10 == 1 else "false"
                r = await conn.get(f"/api/pull?chat={chat}&limit=10&reverse={reverse}")
            soak.latencies.append(time.monotonic() - started)
            if r.status != 200:
                key = str(r.status)
                soak.failures[key] = soak.failures.get(key, 0) + 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await conn.close()

    await asyncio.gather(*(client(c) for c in range(clients)))


def growth(samples: list[tuple[float, int]], warm_until: float) -> tuple[int, int]:
    """RSS (kB) just after warm-up and at the end (medians of 3 samples each)."""
    after = [kb for t, kb in samples if t >= warm_until]
    return int(statistics.median(after[:3])), int(statistics.median(after[-3:]))


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when nothing failed and no service's memory grew."""
    p = argparse.ArgumentParser(prog="python -m perf.soak", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=600, help="length of the run (default 600)")
    p.add_argument("--rate", type=float, default=500, help="requests per second in all")
    p.add_argument("--clients", type=int, default=20, help="connections to nginx")
    p.add_argument(
        "--max-growth", type=float, default=0.10, help="RSS growth allowed after warm-up (0.10)"
    )
    p.add_argument("--out", type=Path, help="report directory (default perf/reports)")
    args = p.parse_args(argv)
    raise_fd_limit()
    soak = Soak()
    with ExitStack() as stack:
        scaled = ScaledStack(stack, "im-soak-")
        work, redis, etcd = scaled.work, scaled.redis, scaled.etcd
        rpcs, gateways = scaled.rpcs, scaled.gateways
        nginx = start_owned(stack, nginx_server(work, [g.port for g in gateways]))
        procs = {"redis-server": redis, "etcd": etcd, "nginx": nginx}
        procs |= {f"im-rpc {i + 1}": r for i, r in enumerate(rpcs)}
        procs |= {f"im-http {i + 1}": g for i, g in enumerate(gateways)}
        print(
            f"[soak] {args.seconds:.0f} s at {args.rate:.0f} req/s through nginx on port "
            f"{nginx.port}; RSS sampled every {SAMPLE_S:.0f} s",
            file=sys.stderr,
            flush=True,
        )

        async def run() -> None:
            started = time.monotonic()
            until = started + args.seconds
            await asyncio.gather(
                load(nginx.port, soak, args.rate, args.clients, until),
                sample(procs, soak, until, started),
            )

        asyncio.run(run())
    warm_until = min(max(args.seconds / 4, 30.0), args.seconds / 2)  # etcd's heap settles late
    lat = sorted(soak.latencies)
    pct = {q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 for q in (0.5, 0.99, 0.999)}
    failed = sum(soak.failures.values())
    lines = [
        f"Soak: {args.seconds:.0f} s at {args.rate:.0f} requests/s through nginx, 2 gateways, "
        "2 im-rpc (etcd), Redis with AOF.",
        "",
        f"- requests: {len(lat):,}; failed: {failed} {soak.failures or ''}",
        f"- latency: p50 {pct[0.5]:.1f} ms, p99 {pct[0.99]:.1f} ms, p99.9 {pct[0.999]:.1f} ms",
        "",
        f"| process | RSS after warm-up ({warm_until:.0f} s) | RSS at the end | growth |",
        "| --- | --- | --- | --- |",
    ]
    grew = []
    for name, samples in soak.rss.items():
        start_kb, end_kb = growth(samples, warm_until)
        change = (end_kb - start_kb) / start_kb if start_kb else 0.0
        judged = name != "redis-server"
        if judged and change > args.max_growth:
            grew.append(name)
        note = "" if judged else " (the stored messages)"
        lines.append(
            f"| {name} | {start_kb / 1024:.1f} MB | {end_kb / 1024:.1f} MB | {change:+.1%}{note} |"
        )
    verdict = "OK" if not failed and not grew else f"FAILED: {failed} failed, grew: {grew}"
    lines += ["", f"soak: {verdict}"]
    write_table(args.out, "soak.md", lines)
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
