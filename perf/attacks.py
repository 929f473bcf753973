"""What two of issue 23's attacks cost, an older commit's im-rpc (A) against this tree's (B).

    python -m perf.attacks --base 2672e14 [--polls 1000] [--groups 5000] [--rounds 3]

Each side is a redis-server (AOF everysec) of its own, an im-rpc (A from a git worktree of
`--base`, B this tree) and a gateway of this tree; small groups have at most 3 members
(IM_GROUP_FANOUT_MAX_MEMBERS=3, as the attacks were found), users may be in `--groups` + 10
groups. Scenarios, interleaved by round (A, B, then B, A):

- parked: `--polls` long polls wait on one chat with a cursor no message reaches; 20 sends
  per second go to that chat for `--seconds`. Per send: im-rpc's CPU (ms) and the commands
  Redis ran (INFO stats); the same sends with no poll parked first, for reference.
- inbox: a user in `--groups` big groups (made through the API, once per side) and one in 10
  read their inboxes one call at a time, then 3 clients loop the first user's inbox for
  `--seconds` while an honest client pulls: latency of each (p50, p99), Redis commands per
  inbox read, the honest client's p50 and p99 meanwhile.
Prints every round and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from devtools.procs import Process, http_service, redis_server, rpc_service
from devtools.rawhttp import Connection
from perf.lib.procstats import cpu_seconds, pid_of
from perf.lib.rounds import Samples, interleaved, log
from perf.lib.stack import base_rpc, comparison_args, start_owned, worktree
from perf.report import write_table

FAR = 1 << 62
SEND_RATE = 20.0


@dataclass
class Side:
    """One side's processes."""

    redis: Process
    rpc: Process
    gateway: Process


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default="HEAD", help="the commit whose im-rpc is A")
    p.add_argument("--polls", type=int, default=1000, help="long polls parked")
    p.add_argument("--groups", type=int, default=5000, help="big groups of the inbox's user")


def _commands(port: int) -> int:
    with redis.Redis(port=port) as admin:
        return int(admin.info("stats")["total_commands_processed"])


async def _sends(port: int, chat: str, seconds: float) -> int:
    """SEND_RATE sends a second to `chat` for `seconds`; how many."""
    conn = await Connection.open(port)
    sender = chat.split(":")[0]
    sent, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        answer = await conn.post_json("/api/send", {"chat": chat, "sender": sender, "text": "x"})
        assert answer.status == 200, answer.body
        sent += 1
        await asyncio.sleep(max(0.0, started + sent / SEND_RATE - time.monotonic()))
    await conn.close()
    return sent


async def _per_send(side: Side, chat: str, seconds: float) -> tuple[float, float]:
    """(im-rpc CPU ms, Redis commands) per send of `seconds` of sends to `chat`."""
    assert side.rpc.proc is not None
    cpu0, commands0 = cpu_seconds(pid_of(side.rpc)), _commands(side.redis.port)
    sent = await _sends(side.gateway.port, chat, seconds)
    cpu1, commands1 = cpu_seconds(pid_of(side.rpc)), _commands(side.redis.port)
    return (cpu1 - cpu0) * 1000 / sent, (commands1 - commands0) / sent


async def parked(side: Side, polls: int, seconds: float, n: int) -> dict[str, float]:
    """The parked-polls scenario on `side`."""
    chat = f"park{n}:x"
    none = await _per_send(side, chat, seconds)
    conns = []
    for i in range(0, polls, 200):  # (a few at a time: the gateway's backlog)
        conns += await asyncio.gather(
            *(Connection.open(side.gateway.port) for _ in range(min(200, polls - i)))
        )
    path = f"/api/pull?chat={chat}&cursor={FAR}&wait_ms=30000"
    for conn in conns:
        conn.send_only(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
    await asyncio.sleep(2.0)
    with_polls = await _per_send(side, chat, seconds)
    await asyncio.gather(*(c.close() for c in conns))
    await asyncio.sleep(2.0)  # the gateway and im-rpc stop the polls gone: not the next figure's
    return {
        "cpu_ms_none": none[0],
        "commands_none": none[1],
        "cpu_ms_parked": with_polls[0],
        "commands_parked": with_polls[1],
    }


async def _calls(port: int, calls: list[tuple[str, dict[str, Any]]], clients: int = 32) -> None:
    """POST each of `calls` (path, body), `clients` at a time; every answer 200."""
    queue = iter(calls)

    async def client() -> None:
        conn = await Connection.open(port)
        for path, body in queue:
            answer = await conn.post_json(path, body)
            assert answer.status == 200, answer.body
        await conn.close()

    await asyncio.gather(*(client() for _ in range(clients)))


async def make_groups(side: Side, user: str, count: int, tag: str) -> list[str]:
    """`count` big groups holding `user` (an owner and 3 more: 5 members), made through the
    API, each with one message."""
    groups = [f"#{tag}{i}" for i in range(count)]
    owner = f"{tag}own"
    await _calls(side.gateway.port, [("/api/groups", {"chat": g, "user": owner}) for g in groups])
    adds = [
        ("/api/groups/add", {"chat": g, "user": owner, "member": m})
        for g in groups
        for m in (f"{tag}f1", f"{tag}f2", f"{tag}f3", user)
    ]
    await _calls(side.gateway.port, adds)
    sends = [("/api/send", {"chat": g, "sender": owner, "text": "hi"}) for g in groups]
    await _calls(side.gateway.port, sends)
    return groups


def _ms(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


async def inbox(side: Side, many: str, few: str, seconds: float) -> dict[str, float]:
    """The inbox scenario on `side` (its users made already)."""
    out: dict[str, float] = {}
    conn = await Connection.open(side.gateway.port)
    for name, user in (("many", many), ("few", few)):
        took = []
        commands0 = _commands(side.redis.port)
        for _ in range(100):
            started = time.monotonic()
            answer = await conn.get(f"/api/chats?user={user}")
            assert answer.status == 200, answer.body
            took.append(time.monotonic() - started)
        out[f"{name}_commands"] = (_commands(side.redis.port) - commands0) / 100
        out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = _ms(took, 0.5), _ms(took, 0.99)
    await conn.close()
    stop = time.monotonic() + seconds

    async def loop() -> None:
        c = await Connection.open(side.gateway.port)
        while time.monotonic() < stop:
            await c.get(f"/api/chats?user={many}")
        await c.close()

    async def honest() -> list[float]:
        c, took = await Connection.open(side.gateway.port), []
        while time.monotonic() < stop:
            started = time.monotonic()
            await c.get("/api/pull?chat=honest:peer")
            took.append(time.monotonic() - started)
        await c.close()
        return took

    *_, took = await asyncio.gather(loop(), loop(), loop(), honest())
    out["honest_p50_ms"], out["honest_p99_ms"] = _ms(took, 0.5), _ms(took, 0.99)
    return out


def _start(stack: ExitStack, work: Path, name: str, base: Path | None, groups: int) -> Side:
    settings = {
        "IM_GROUP_FANOUT_MAX_MEMBERS": "3",
        "IM_USER_MAX_GROUPS": str(groups + 10),
        "IM_LOG_LEVEL": "WARNING",
    }
    store = start_owned(stack, redis_server(work / f"redis-{name}", fsync="everysec"))
    url = f"redis://127.0.0.1:{store.port}/0"
    rpc = (
        base_rpc(work, url, base, settings)[0] if base else rpc_service(work, url, None, **settings)
    )
    start_owned(stack, rpc)
    gateway = http_service(
        work, [rpc.port], IM_HTTP_MAX_WAITING_PER_USER="100000", IM_LOG_LEVEL="WARNING"
    )
    return Side(store, rpc, start_owned(stack, gateway))


async def run(args: argparse.Namespace, sides: dict[str, Side]) -> None:
    """Every round of both scenarios, then the medians."""
    log("attacks", "making the inbox users' groups")
    for side in sides.values():
        await make_groups(side, "many", args.groups, "big")
        await make_groups(side, "few", 10, "small")
    results: Samples[dict[str, float]] = Samples()
    for n, (r, _, name) in enumerate(interleaved(args.rounds, ("A", "B"))):
        got = await parked(sides[name], args.polls, args.seconds, n + 1)
        got |= await inbox(sides[name], "many", "few", args.seconds)
        results.add(name, got)
        log(
            "attacks", f"round {r + 1} {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in got.items())
        )
    lines = [
        f"A: im-rpc of {args.base}; B: this tree. Medians of {args.rounds} interleaved rounds "
        f"({args.polls:,} parked polls, a user in {args.groups:,} big groups):",
        "",
        "| figure | A | B |",
        "| --- | --- | --- |",
    ]
    for key in results.rounds("A")[0]:
        a, b = (statistics.median(run[key] for run in results.rounds(n)) for n in ("A", "B"))
        lines.append(f"| {key} | {a:.2f} | {b:.2f} |")
    write_table(args.out, "attacks.md", lines)


def main(argv: list[str] | None = None) -> int:
    """Start both sides, run, print."""
    args = comparison_args("perf.attacks", __doc__ or "", argv, 10, 3, more=_options)
    with ExitStack() as stack:
        base = worktree(stack, args.base)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-attacks-")))
        sides = {
            "A": _start(stack, work, "A", base, args.groups),
            "B": _start(stack, work, "B", None, args.groups),
        }
        log("attacks", f"A: im-rpc of {args.base}; B: this tree")
        asyncio.run(run(args, sides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
