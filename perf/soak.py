"""Soak: the scaled topology under a moderate, steady load for a bounded time.

    python -m perf.soak [--seconds 600] [--rate 500] [--clients 20] [--syncers 100]
                        [--sync-share 0.2] [--drain 30] [--max-wake-ms 5000]
                        [--cluster MASTERS] [--auth] [--token-ttl 120] [--out DIR]

Starts Redis (AOF), etcd, two im-rpc, two gateways and nginx (the local cluster's topology;
with `--cluster` a Redis Cluster of that many masters and a replica each, every node with
AOF, instead of the one Redis), then sends and pulls through nginx at `--rate` requests/s
(half sends, the rest forward and backward pulls) for `--seconds`. Beside them `--syncers`
users, paired into 1:1 chats and grouped by five (perf.sync_waits's chats), each hold one
sync long poll through nginx from a token taken before the load, again from `next` after
every answer; `--sync-share` of the sends go to their chats, from a member. With `--auth`
the gateways verify bearer tokens (ES256, a key set made for the run) and im-rpc requires
the acting user: every request carries its user's token, renewed at half its `--token-ttl`,
so the gateways keep meeting tokens they have not verified yet; at the start and the end,
requests without a token, with an expired one, with a remembered one once it expired and
with another user's must be refused (401, 401, 401, 403). Every 2 s it samples the resident
memory (RSS) of every process. At the end it waits (at most `--drain` s) until each syncer
saw every acknowledged message of its chats, then prints and writes soak.md
(soak_cluster.md on a cluster; `_auth` before the `.md` with `--auth`): requests and
failures, latency percentiles, the syncs' audit (missed, duplicated, out of order within a
chat) and wake-up latency, the tokens minted and the probes' answers, and each process's
RSS after warm-up (the first quarter, at least 30 s, at most half the run) and at the end.
Exit 1 when a request failed, a sync missed, repeated or reordered a message or was
refused, a probe got another answer, the syncs' wake-up p99 passed `--max-wake-ms` (a sync
that is not woken answers only at its wait_ms), or a service's RSS grew more than
--max-growth (Redis's own growth, every node's on a cluster, is the data it stores:
reported, not judged).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from devtools.procs import (
    Process,
    nginx_server,
)
from devtools.rawhttp import Connection
from perf.lib.bearer import Bearers
from perf.lib.procstats import pid_of, rss_kb
from perf.lib.rounds import log
from perf.lib.stack import ScaledStack, raise_fd_limit, start_owned
from perf.report import write_table
from perf.sync_waits import (
    GROUP_SIZE,
    WAIT_MS,
    Chats,
    Tally,
    audit,
    chats_of,
    sync_users,
    syncer,
    wake_ms,
)

SAMPLE_S = 2.0
PROGRESS_S = 60.0


@dataclass
class Soak:
    """What the soak saw."""

    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    rss: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # name -> (t, kB)
    probes: list[dict[str, int]] = field(default_factory=list)  # probe -> status, each time


async def sample(procs: dict[str, Process], soak: Soak, until: float, started: float) -> None:
    while time.monotonic() < until:
        for name, proc in procs.items():
            assert proc.proc is not None
            taken = (time.monotonic() - started, rss_kb(pid_of(proc)))
            soak.rss.setdefault(name, []).append(taken)
        await asyncio.sleep(SAMPLE_S)


async def progress(soak: Soak, syncs: Syncs, until: float, started: float) -> None:
    """A progress line every PROGRESS_S: requests, failures, the syncs' events so far."""
    while (left := until - time.monotonic()) > 0:
        await asyncio.sleep(min(PROGRESS_S, left))
        tally = syncs.tally
        log(
            "soak",
            f"{time.monotonic() - started:.0f} s: {len(soak.latencies):,} requests, "
            f"{sum(soak.failures.values())} failed; syncs saw {tally.events:,} events of "
            f"{sum(tally.expected.values()):,} owed",
        )


@dataclass
class Syncs:
    """The syncers' chats, what they saw, and the sends to them (`share` of all sends)."""

    chats: Chats
    share: float
    tally: Tally = field(default_factory=Tally)


async def follow(
    port: int, users: int, tally: Tally, done: asyncio.Event, bearers: Bearers
) -> list[asyncio.Task[None]]:
    """Make the syncers' groups, take each syncer's token and start its sync long poll."""
    return [
        asyncio.create_task(syncer(port, name, token, tally, done, bearers))
        for name, token in await sync_users(port, users, bearers)
    ]


# what a gateway with authentication on must answer each probe of `probe_auth`
PROBES = {
    "no token": 401,
    "an expired token": 401,
    "a token of 2 s": 200,
    "the same token, once expired": 401,
    "another user's token, on a chat": 403,
    "another user's token, on a sync": 403,
}


async def probe_auth(ports: list[int], bearers: Bearers) -> dict[str, int]:
    """What the gateways (each asked directly) answer the requests for soak0's chat and sync
    that PROBES names: the proof that authentication is on and enforced, a verified token
    remembered not past its expiry included. A probe's answer is the first that differs from
    PROBES's, else PROBES's."""
    pull, sync = "/api/pull?chat=soak0:peer0&limit=1", "/api/sync?user=soak0"
    short = {"Authorization": f"Bearer {bearers.token('soak0', 2)}"}  # (asked at once)
    expired = {"Authorization": f"Bearer {bearers.token('soak0', -60)}"}
    other = bearers.headers("soak1")
    asked = [
        ("a token of 2 s", pull, short),
        ("no token", pull, None),
        ("an expired token", pull, expired),
        ("another user's token, on a chat", pull, other),
        ("another user's token, on a sync", sync, other),
    ]
    got = dict(PROBES)
    conns = [await Connection.open(port) for port in ports]

    async def ask(probe: str, path: str, headers: dict[str, str] | None) -> None:
        for conn in conns:
            status = (await conn.get(path, headers)).status
            if got[probe] == PROBES[probe]:  # (the first other answer stays)
                got[probe] = status

    try:
        for probe, path, headers in asked:
            await ask(probe, path, headers)
        await asyncio.sleep(3.1)  # (its exp, whole seconds, is at most 2 s off; 1 s more)
        await ask("the same token, once expired", pull, short)
        return got
    finally:
        for conn in conns:
            await conn.close()


async def load(
    port: int,
    soak: Soak,
    rate: float,
    clients: int,
    until: float,
    syncs: Syncs,
    bearers: Bearers,
) -> None:
    """`clients` connections, each pacing itself to rate/clients requests per second, each
    request with its acting user's token when `bearers` mint them."""
    numbers = itertools.count()
    interval = clients / rate

    async def client(c: int) -> None:
        conn = await Connection.open(port)
        rng = random.Random(c)
        next_at = time.monotonic()
        while time.monotonic() < until:
            n = next(numbers)
            me, chat = f"soak{c}", f"soak{c}:peer{n % 50}"
            started = time.monotonic()
            if n % 2 == 0 and syncs.chats and rng.random() < syncs.share:
                chat, members = rng.choice(syncs.chats)
                sender = rng.choice(members)
                r = await conn.post_json(
                    "/api/send",
                    {"chat": chat, "sender": sender, "text": f"{n}"},
                    bearers.headers(sender),
                )
                if r.status == 200:
                    syncs.tally.ack(chat, orjson.loads(r.body)["send_time"], members)
            elif n % 2 == 0:
                r = await conn.post_json(
                    "/api/send",
                    {"chat": chat, "sender": me, "text": f"{n}".ljust(100)},
                    bearers.headers(me),
                )
            else:
                reverse = "true" if n % 10 == 1 else "false"
                path = f"/api/pull?chat={chat}&limit=10&reverse={reverse}"
                r = await conn.get(path, bearers.headers(me))
            soak.latencies.append(time.monotonic() - started)
            if r.status != 200:
                key = str(r.status)
                soak.failures[key] = soak.failures.get(key, 0) + 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await conn.close()

    await asyncio.gather(*(client(c) for c in range(clients)))


def growth(samples: list[tuple[float, int]], warm_until: float) -> tuple[int, int, int]:
    """RSS (kB) just after warm-up, halfway from there to the end, and at the end (medians
    of 3 samples each): a leak grows in both halves, a heap that settles in the first."""
    after = [kb for t, kb in samples if t >= warm_until]
    mid = max(1, len(after) // 2)
    return _median(after[:3]), _median(after[mid - 1 : mid + 2]), _median(after[-3:])


def _median(kbs: list[int]) -> int:
    return int(statistics.median(kbs))


def _change(before: int, after: int) -> float:
    return (after - before) / before if before else 0.0


def auth_lines(args: argparse.Namespace, bearers: Bearers, seen: list[dict[str, int]]) -> list[str]:
    """The report's line on authentication: the tokens minted, and what the probes of
    `probe_auth` got at the start and the end (`seen`)."""
    if not args.auth:
        return ["- authentication: off"]
    got = "; ".join(
        f"{probe} {'/'.join(str(s[probe]) for s in seen)} (must be {status})"
        for probe, status in PROBES.items()
    )
    return [
        f"- authentication: ES256 bearer tokens of {args.token_ttl} s, each user's renewed "
        f"at half its life: **{bearers.minted:,} minted**; probes at the start and the end: "
        f"{got}"
    ]


def sync_lines(
    args: argparse.Namespace, tally: Tally, found: tuple[int, int, int], p50: float, p99: float
) -> list[str]:
    """The report's lines on the syncs: their chats, the audit (`found`: missed, duplicated,
    out of order), the wake-up latency (ms)."""
    if not args.syncers:
        return ["- syncs: none (--syncers 0)"]
    missed, duplicated, disorder = found
    return [
        f"- syncs: {args.syncers} users each holding one sync long poll through nginx (wait_ms "
        f"{WAIT_MS:,}), paired in 1:1 chats and grouped by {GROUP_SIZE}; {len(tally.acked):,} "
        f"sends acknowledged in their chats; events expected (every member, the sender "
        f"included) {sum(tally.expected.values()):,}, seen {tally.events:,}",
        f"- syncs: **missed {missed}, duplicated {duplicated}, out of order {disorder}**; "
        f"errors: {dict(tally.errors) or 'none'}",
        f"- sync wake-up (send_time to the member's sync reading it): p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms (at most {args.max_wake_ms:,.0f})",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when nothing failed and no service's memory grew."""
    p = argparse.ArgumentParser(prog="python -m perf.soak", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=600, help="length of the run (default 600)")
    p.add_argument("--rate", type=float, default=500, help="requests per second in all")
    p.add_argument("--clients", type=int, default=20, help="connections to nginx")
    p.add_argument(
        "--max-growth", type=float, default=0.10, help="RSS growth allowed after warm-up (0.10)"
    )
    p.add_argument(
        "--syncers", type=int, default=100, help="users each holding a sync long poll (100)"
    )
    p.add_argument(
        "--sync-share", type=float, default=0.2, help="share of the sends to their chats (0.2)"
    )
    p.add_argument(
        "--drain", type=float, default=30.0, help="most seconds the syncs take to catch up (30)"
    )
    p.add_argument(
        "--max-wake-ms",
        type=float,
        default=5000,
        help="p99 of the syncs' wake-ups allowed (5,000 ms: a sync not woken waits 30,000)",
    )
    p.add_argument(
        "--cluster",
        type=int,
        default=0,
        metavar="MASTERS",
        help="a Redis Cluster of that many masters (a replica each) instead of one Redis (0)",
    )
    p.add_argument(
        "--auth",
        action="store_true",
        help="authentication on: every request carries its user's bearer token",
    )
    p.add_argument(
        "--token-ttl",
        type=int,
        default=120,
        metavar="S",
        help="with --auth, the tokens' lifetime; each is renewed at half of it (120)",
    )
    p.add_argument("--out", type=Path, help="report directory (default perf/reports)")
    args = p.parse_args(argv)
    if not 10 <= args.token_ttl <= 86_400:
        p.error("--token-ttl must be 10 to 86,400 seconds")
    if args.cluster and not 3 <= args.cluster <= 16:
        p.error("--cluster must be 3 to 16 masters (a Redis Cluster needs 3), or 0: one Redis")
    if args.seconds <= 0 or args.rate <= 0 or args.clients < 1:
        p.error("--seconds and --rate must be above 0, --clients at least 1")
    if args.syncers < 0 or not 0 <= args.sync_share <= 1 or args.drain < 0:
        p.error("--syncers and --drain must be 0 or more, --sync-share from 0 to 1")
    raise_fd_limit()
    soak = Soak()
    pairs, groups = chats_of(args.syncers)
    syncs = Syncs(pairs + groups, args.sync_share)
    # every client comes from this one address: the gateways' per-address bound on waits
    # (100 by default) admits the syncers' long polls
    admits = {"IM_HTTP_MAX_WAITING_PER_USER": str(args.syncers + 100)}
    with ExitStack() as stack:
        scaled = ScaledStack(
            stack, "im-soak-", gateway_env=admits, cluster=args.cluster, auth=args.auth
        )
        bearers = Bearers(scaled.signing, args.token_ttl)
        work, etcd = scaled.work, scaled.etcd
        rpcs, gateways = scaled.rpcs, scaled.gateways
        nginx = start_owned(stack, nginx_server(work, [g.port for g in gateways]))
        procs = scaled.redis_nodes() | {"etcd": etcd, "nginx": nginx}
        procs |= {f"im-rpc {i + 1}": r for i, r in enumerate(rpcs)}
        procs |= {f"im-http {i + 1}": g for i, g in enumerate(gateways)}
        print(
            f"[soak] {args.seconds:.0f} s at {args.rate:.0f} req/s through nginx on port "
            f"{nginx.port}{' (a Redis Cluster)' if args.cluster else ''}"
            f"{' (authentication on)' if args.auth else ''}; RSS sampled every "
            f"{SAMPLE_S:.0f} s",
            file=sys.stderr,
            flush=True,
        )

        async def run() -> None:
            done = asyncio.Event()
            syncers = await follow(nginx.port, args.syncers, syncs.tally, done, bearers)
            if syncers:
                log("soak", f"{len(syncers)} syncs waiting in {len(syncs.chats)} chats")
            if args.auth:
                soak.probes.append(await probe_auth([g.port for g in gateways], bearers))
            started = time.monotonic()
            until = started + args.seconds
            await asyncio.gather(
                load(nginx.port, soak, args.rate, args.clients, until, syncs, bearers),
                sample(procs, soak, until, started),
                progress(soak, syncs, until, started),
            )
            if args.auth:
                soak.probes.append(await probe_auth([g.port for g in gateways], bearers))
            syncs.tally.sending = False
            syncs.tally.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(syncs.tally.caught_up.wait(), args.drain)
            done.set()
            for task in syncers:
                task.cancel()
            await asyncio.gather(*syncers, return_exceptions=True)

        asyncio.run(run())
    warm_until = min(max(args.seconds / 4, 30.0), args.seconds / 2)  # etcd's heap settles late
    lat = sorted(soak.latencies)
    pct = {q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 for q in (0.5, 0.99, 0.999)}
    failed = sum(soak.failures.values())
    found, (p50, p99, _) = audit(syncs.tally), wake_ms(syncs.tally)  # (once: report and verdict)
    store = "Redis with AOF"
    if args.cluster:
        store = f"a Redis Cluster of {args.cluster} masters and a replica each, AOF"
    lines = [
        f"Soak: {args.seconds:.0f} s at {args.rate:.0f} requests/s through nginx, 2 gateways, "
        f"2 im-rpc (etcd), {store}{', authentication on' if args.auth else ''}.",
        "",
        f"- requests: {len(lat):,}; failed: {failed} {soak.failures or ''}",
        f"- latency: p50 {pct[0.5]:.1f} ms, p99 {pct[0.99]:.1f} ms, p99.9 {pct[0.999]:.1f} ms",
        *sync_lines(args, syncs.tally, found, p50, p99),
        *auth_lines(args, bearers, soak.probes),
        "",
        f"| process | RSS after warm-up ({warm_until:.0f} s) | halfway from there "
        f"({(warm_until + args.seconds) / 2:.0f} s) | at the end | growth (first half, second) |",
        "| --- | --- | --- | --- | --- |",
    ]
    grew = []
    for name, samples in soak.rss.items():
        start_kb, mid_kb, end_kb = growth(samples, warm_until)
        change = _change(start_kb, end_kb)
        first, second = _change(start_kb, mid_kb), _change(mid_kb, end_kb)
        judged = not name.startswith("redis")
        if judged and change > args.max_growth:
            grew.append(name)
        note = "" if judged else " (the stored messages)"
        lines.append(
            f"| {name} | {start_kb / 1024:.1f} MB | {mid_kb / 1024:.1f} MB | "
            f"{end_kb / 1024:.1f} MB | {change:+.1%} ({first:+.1%}, {second:+.1%}){note} |"
        )
    wrong = sum(found) + sum(syncs.tally.errors.values())
    slow = p99 > args.max_wake_ms  # (nan, no message seen: not slow)
    otherwise = [
        probe for seen in soak.probes for probe, status in seen.items() if status != PROBES[probe]
    ]
    verdict = "OK"
    if failed or grew or wrong or slow or otherwise:
        verdict = (
            f"FAILED: {failed} failed, grew: {grew}, syncs wrong or refused: {wrong}, "
            f"wake-up p99 over {args.max_wake_ms:,.0f} ms: {slow}, probes answered otherwise: "
            f"{otherwise}"
        )
    lines += ["", f"soak: {verdict}"]
    name = "soak" + ("_cluster" if args.cluster else "") + ("_auth" if args.auth else "")
    write_table(args.out, f"{name}.md", lines)
    return 0 if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main())
