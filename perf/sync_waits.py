"""Waiting clients on sync: many users each holding one sync long poll on one gateway and
one im-rpc while sends land in their chats, 1:1 and groups.

Starts redis-server (AOF everysec), one im-rpc and one im-http on loopback. Users are paired
into 1:1 chats and grouped by five into small groups (each user in one of each); each takes
a sync token, then holds one sync long poll (`wait_ms` 30,000, again from `next` after every
answer) on a keep-alive connection. Then `--rate` sends a second for `--seconds` seconds,
`--group-share` of them to groups, from a random member, and waits until every member's sync
(the sender's included) has seen every message of its chats (or `--drain` seconds pass).
Writes perf/reports/sync_waits.md (or `--out`):

  - every acknowledged message seen by the sync of every member: missed, duplicated, out of
    order within a chat (any of them: exit 1);
  - wake-up latency, from a message's send_time (Redis's clock, this machine) to a member's
    sync reading it: p50, p99, max;
  - RSS and open file descriptors of im-http and im-rpc: before the polls, with every poll
    waiting, at the end of the sends; CPU of each during the sends.

    python -m perf.sync_waits [--users 10000] [--rate 1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvloop

from devtools.procs import Process
from devtools.rawhttp import Connection
from perf.lib.bearer import Bearers
from perf.lib.procstats import cpu_seconds, machine_jiffies, pid_of, usage
from perf.lib.rounds import log
from perf.lib.stack import raise_fd_limit, waiting_trio
from perf.report import write_table

WAIT_MS = 30_000
GROUP_SIZE = 5
Chats = list[tuple[str, tuple[str, ...]]]  # (chat, its members)


@dataclass
class Tally:
    """What the syncs and the senders saw: per user, each message event (chat, send_time);
    the members' events of acknowledged sends not seen yet (`owed`), and those seen before
    their send's acknowledgement came (`early`: a send that failed, 504 say, may have been
    stored all the same, and its members see it)."""

    seen: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))
    expected: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    acked: list[tuple[str, int, tuple[str, ...]]] = field(default_factory=list)
    latencies_us: list[int] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    sending: bool = True
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)
    events: int = 0
    owed: set[tuple[str, str, int]] = field(default_factory=set)
    early: set[tuple[str, str, int]] = field(default_factory=set)

    def ack(self, chat: str, send_time: int, members: tuple[str, ...]) -> None:
        """A send was acknowledged: each member's sync owes its event."""
        self.acked.append((chat, send_time, members))
        for member in members:
            self.expected[member] += 1
            event = (member, chat, send_time)
            if event in self.early:
                self.early.remove(event)
            else:
                self.owed.add(event)

    def saw(self, member: str, chat: str, send_time: int) -> None:
        """`member`'s sync read a message event."""
        self.seen[member].append((chat, send_time))
        self.events += 1
        event = (member, chat, send_time)
        if event in self.owed:
            self.owed.remove(event)
        else:
            self.early.add(event)

    def check(self) -> None:
        """Set caught_up once the sends are over and every member saw every acknowledged
        message (a count would also take a stored but unacknowledged send's events)."""
        if not self.sending and not self.owed:
            self.caught_up.set()


def user(i: int) -> str:
    """User i's name."""
    return f"sw{i:05d}"


def chats_of(users: int) -> tuple[Chats, Chats]:
    """The 1:1 chats (users 2k and 2k+1) and the groups (users 5k..5k+4), each with its
    members."""
    pairs: Chats = [
        (f"{user(2 * k)}:{user(2 * k + 1)}", (user(2 * k), user(2 * k + 1)))
        for k in range(users // 2)
    ]
    groups = [
        (f"#sw{k}", tuple(user(GROUP_SIZE * k + j) for j in range(GROUP_SIZE)))
        for k in range(users // GROUP_SIZE)
    ]
    return pairs, groups


async def _each(
    port: int,
    jobs: list[tuple[str, str, dict[str, Any]]],
    clients: int = 64,
    headers: list[dict[str, str] | None] | None = None,
) -> list[Any]:
    """Run `jobs` (method, path, JSON body) over `clients` connections, each with its
    `headers` when given; their answers."""
    answers: list[Any] = [None] * len(jobs)
    queue = list(enumerate(jobs))
    extra = headers or [None] * len(jobs)

    async def client() -> None:
        conn = await Connection.open(port)
        try:
            while queue:
                i, (method, path, body) = queue.pop()
                if method == "POST":
                    answer = await conn.post_json(path, body, extra[i])
                else:
                    answer = await conn.get(path, extra[i])
                if answer.status != 200:
                    raise SystemExit(f"{method} {path}: {answer.status} {answer.body[:200]!r}")
                answers[i] = orjson.loads(answer.body)
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers


async def syncer(
    port: int,
    name: str,
    since: str,
    tally: Tally,
    done: asyncio.Event,
    bearers: Bearers | None = None,
) -> None:
    """Follow `name`'s sync from `since` until `done`, recording each message event; with
    `bearers`, each request carries `name`'s token."""
    conn = await Connection.open(port)
    try:
        while not done.is_set():
            path = f"/api/sync?user={name}&since={since}&wait_ms={WAIT_MS}"
            answer = await conn.get(path, bearers.headers(name) if bearers else None)
            now_us = time.time_ns() // 1000
            if answer.status != 200:
                tally.errors[f"sync {answer.status}"] += 1
                await asyncio.sleep(0.1)
                continue
            page = orjson.loads(answer.body)
            for event in page["events"]:
                if event["type"] == "message":
                    send_time = event["message"]["send_time"]
                    tally.latencies_us.append(now_us - send_time)
                    tally.saw(name, event["chat"], send_time)
            tally.check()
            since = page["next"]
    except (OSError, asyncio.IncompleteReadError) as exc:
        if not done.is_set():
            tally.errors[f"sync connection: {type(exc).__name__}"] += 1
    finally:
        with contextlib.suppress(OSError):
            await conn.close()


async def sender(port: int, args: argparse.Namespace, tally: Tally) -> None:
    """`args.rate` sends a second for `args.seconds` over 32 connections."""
    pairs, groups = chats_of(args.users)
    rng = random.Random(7)
    queue: asyncio.Queue[tuple[str, tuple[str, ...]] | None] = asyncio.Queue(maxsize=1000)

    async def worker() -> None:
        conn = await Connection.open(port)
        try:
            while (item := await queue.get()) is not None:
                chat, members = item
                body = {"chat": chat, "sender": rng.choice(members), "text": "hi"}
                answer = await conn.post_json("/api/send", body)
                if answer.status == 200:
                    tally.ack(chat, orjson.loads(answer.body)["send_time"], members)
                else:
                    tally.errors[f"send {answer.status}"] += 1
        finally:
            await conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(32)]
    start = time.monotonic()
    for n in range(int(args.rate * args.seconds)):
        delay = start + n / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pool = groups if rng.random() < args.group_share else pairs
        await queue.put(rng.choice(pool))
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)


async def sync_users(
    port: int, users: int, bearers: Bearers | None = None
) -> list[tuple[str, str]]:
    """Make the groups of `users` users (chats_of) and take each user's sync token: (user,
    token) each. With `bearers`, each request carries its acting user's token."""

    def acting(names: list[str]) -> list[dict[str, str] | None] | None:
        return [bearers.headers(n) for n in names] if bearers else None

    _, groups = chats_of(users)
    made = [("POST", "/api/groups", {"chat": g, "user": m[0]}) for g, m in groups]
    await _each(port, made, headers=acting([m[0] for _, m in groups]))
    adds = [
        ("POST", "/api/groups/add", {"chat": g, "user": members[0], "member": m})
        for g, members in groups
        for m in members[1:]
    ]
    await _each(port, adds, headers=acting([a[2]["user"] for a in adds]))
    names = [user(i) for i in range(users)]
    jobs: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/sync?user={n}", {}) for n in names
    ]
    tokens = await _each(port, jobs, headers=acting(names))
    return [(n, t["next"]) for n, t in zip(names, tokens, strict=True)]


def wake_ms(tally: Tally) -> tuple[float, float, float]:
    """The syncs' wake-up latency: p50, p99 and max (ms; nan when no message was seen)."""
    lat = sorted(tally.latencies_us)
    if not lat:
        return float("nan"), float("nan"), float("nan")
    return (
        statistics.median(lat) / 1000,
        lat[max(0, int(len(lat) * 0.99) - 1)] / 1000,
        lat[-1] / 1000,
    )


def audit(tally: Tally) -> tuple[int, int, int]:
    """(missed, duplicated, out of order within a chat) over every member of every send."""
    expected: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for chat, send_time, members in tally.acked:
        for member in members:
            expected[member].add((chat, send_time))
    missed = duplicated = disorder = 0
    for member, wanted in expected.items():
        got = tally.seen.get(member, [])
        missed += len(wanted - set(got))
        duplicated += len(got) - len(set(got))
        last: dict[str, int] = {}
        for chat, send_time in got:
            disorder += send_time <= last.get(chat, 0)
            last[chat] = send_time
    return missed, duplicated, disorder


async def measure(args: argparse.Namespace, gateway: Process, rpc: Process, redis: Process) -> int:
    """Set up, hold the syncs, send; write the table; 1 on a miss, duplicate or error."""
    port, tally, done = gateway.port, Tally(), asyncio.Event()
    pairs, groups = chats_of(args.users)
    tokens = await sync_users(port, args.users)
    log("sync_waits", f"{len(pairs):,} 1:1 chats, {len(groups):,} groups of {GROUP_SIZE}")
    base = {"im-http": usage(gateway), "im-rpc": usage(rpc)}
    t0 = time.monotonic()
    tasks = []
    for i, (name, token) in enumerate(tokens):
        tasks.append(asyncio.create_task(syncer(port, name, token, tally, done)))
        if i % 500 == 499:
            await asyncio.sleep(0.2)  # (a few at a time: the gateway's backlog)
    await asyncio.sleep(2.0)  # the last requests reach im-rpc and wait
    opened_s = time.monotonic() - t0
    waiting = {"im-http": usage(gateway), "im-rpc": usage(rpc)}
    log("sync_waits", f"{args.users:,} syncs waiting after {opened_s:.1f} s; sending")
    pids = {"im-http": pid_of(gateway), "im-rpc": pid_of(rpc), "redis-server": pid_of(redis)}
    pids["the load client"] = os.getpid()
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    idle0, total0 = machine_jiffies()
    t1 = time.monotonic()
    await sender(port, args, tally)
    send_s = time.monotonic() - t1
    busy = {name: (cpu_seconds(pid) - cpu0[name]) / send_s for name, pid in pids.items()}
    idle1, total1 = machine_jiffies()
    spare = (idle1 - idle0) / max(1, total1 - total0)
    loaded = {"im-http": usage(gateway), "im-rpc": usage(rpc)}
    tally.sending = False
    tally.check()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.caught_up.wait(), args.drain)
    done.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    missed, duplicated, disorder = audit(tally)
    p50, p99, most = wake_ms(tally)
    sent = len(tally.acked)
    lines = [
        f"{args.users:,} users, each holding one sync long poll (wait_ms {WAIT_MS}) on one "
        f"gateway and one im-rpc (redis-server with AOF, the load client: all on this 2-core "
        f"machine); each user in one 1:1 chat and one group of {GROUP_SIZE}.",
        "",
        f"- sends: {sent:,} acknowledged in {send_s:.1f} s = {sent / send_s:,.0f}/s (target "
        f"{args.rate:,.0f}/s; {args.group_share:.0%} to groups)",
        f"- events expected (every member of every send, the sender included): "
        f"{sum(tally.expected.values()):,}; seen: {tally.events:,}",
        f"- **missed {missed}, duplicated {duplicated}, out of order {disorder}**; errors: "
        f"{dict(tally.errors) or 'none'}",
        f"- wake-up latency (send_time to the member's sync reading it): p50 {p50:.1f} ms, "
        f"**p99 {p99:.1f} ms**, max {most:.1f} ms",
        "- CPU during the sends (of one core): "
        + ", ".join(f"{name} {share:.0%}" for name, share in busy.items())
        + f"; the 2 cores idle {spare:.0%}",
        "",
        "| process | RSS MB idle | RSS MB, syncs waiting | RSS MB, end of sends | fds idle "
        "| fds, syncs waiting | fds, end of sends |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("im-http", "im-rpc"):
        (r0, f0), (r1, f1), (r2, f2) = base[name], waiting[name], loaded[name]
        lines.append(f"| {name} | {r0:.0f} | {r1:.0f} | {r2:.0f} | {f0} | {f1} | {f2} |")
    write_table(args.out, "sync_waits.md", lines)
    return 1 if missed or duplicated or disorder or tally.errors else 0


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure, write; 1 on any miss or error."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=10_000, help="users, one sync each")
    p.add_argument("--rate", type=float, default=1000.0, help="sends per second")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to send")
    p.add_argument("--group-share", type=float, default=0.3, help="share of sends to groups")
    p.add_argument("--drain", type=float, default=35.0, help="most seconds to wait at the end")
    p.add_argument("--out", type=Path, help="report directory (default perf/reports)")
    args = p.parse_args(argv)
    raise_fd_limit()
    with ExitStack() as stack:
        trio = waiting_trio(stack, args.users, "im-syncs-")
        # the load client on uvloop, as the services run: on the default loop it took a
        # fifth more CPU from the cores it shares with them (perf/README.md, "Waiting clients")
        return uvloop.run(measure(args, trio.gateways[0], trio.rpc, trio.redis))


if __name__ == "__main__":
    sys.exit(main())
