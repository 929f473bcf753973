"""What sync costs: a sync of a user in many chats against a pull, a send to users who sync
against one to users who do not, and the memory of the feeds.

    python -m perf.sync_costs [--seconds 5] [--rounds 5] [--chats 20,2000] [--long-chats 20]
                              [--memory-chats 20000] [--script-base COMMIT]

Reads (one redis-server with AOF, one im-rpc, one gateway, wrk; IM_GROUP_FANOUT_MAX_MEMBERS 2,
so that a group of 3 is big; IM_USER_MAX_GROUPS 5,000): a hub user in N chats (half 1:1,
half small groups of 2, and N/100 big groups of 3) takes a token, gets a message in 10 of its
chats (some of each kind), syncs once (its big groups' messages found), and then the token
is replayed by wrk at 20 connections: each sync answers the same 10 events (`sync10`). The
chats of those hubs hold one or two messages; with --long-chats, one more hub whose 10 chats
each hold 29 messages of 200 bytes before the new one (30: still a short chat's hash, where
a message is found among the others).
Beside it, `pull10` (a page of 10 of a chat of a 200-chat pool). Each round runs every
scenario in turn (the order turned by
one each round); the figures are medians, and the ratio of each round's p99 to its pull's,
and the CPU each process spent per request (/proc: im-http, im-rpc, redis-server).
With --script-base, the sync script of that commit (as its own loader makes it) against this
tree's, on the same Redis and the same replayed tokens: Redis's own time per call (INFO
commandstats), interleaved.
Sends (64 connections, interleaved the same way): to 1:1 chats whose two members each hold a
feed, and to chats of users who never synced.
Memory (a private redis-server): the chat-size mix of perf.chat_sizes written with every user
holding a feed: the chats' bytes per message, the feeds' records per message (each feed's
bytes less the feed of a user who got nothing), and the feeds with their keys; then one feed
at the records kept (IM_SYNC_RETAIN, 10,000).
Writes perf/reports/sync_costs.md (or `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from contextlib import ExitStack
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis import Redis

from devtools.procs import Trio, start_trio
from im_common.calls import SyncCall
from perf.chat_sizes import RAW, _drop_users, _order, user, zipf_sizes
from perf.lib.procstats import cpu_seconds, machine_jiffies, pid_of
from perf.lib.rounds import Samples, interleaved, log
from perf.lib.stack import base_script, comparison_args, worktree
from perf.report import write_table
from perf.store_memory import local_service, settled_memory, used_memory
from perf.sync_waits import _each
from perf.wrk import P99, RPS, WrkResult, run_wrk
from rpc_svc.service.runner import ChatService
from rpc_svc.service.sync import plan_sync
from rpc_svc.store.commands.plan import Plan
from rpc_svc.store.commands.sync import commands
from rpc_svc.store.keys import SYNC_SECRET_KEY, feed_key
from rpc_svc.store.lua import SYNC
from rpc_svc.store.ops import Append

POOL = 200
SCRIPT_CALLS = 2000  # per round of the script A/B
PULL = "pull10 (200 chats)"  # what the reads are set against


def _all_cpu(cpu: dict[str, float]) -> float:  # a round's CPU µs a request, the three processes
    return sum(cpu.values())


def hub_options(p: argparse.ArgumentParser) -> None:
    """The options that choose the hubs (`hubs`)."""
    p.add_argument("--chats", default="20,2000", help="the hubs' chats, comma-separated")
    p.add_argument(
        "--long-chats",
        type=int,
        default=20,
        help="a hub in this many chats of 30 messages (0: none)",
    )


def _options(p: argparse.ArgumentParser) -> None:
    hub_options(p)
    p.add_argument("--memory-chats", type=int, default=20_000, help="chats of the mix")
    p.add_argument("--script-base", default="", help="a commit whose sync script to time too")


LONG_HISTORY, LONG_TEXT = 29, 200  # a long hub's chats: the messages before the new one


class Hub(NamedTuple):
    """A hub user: the name of its scenario, its names' prefix, its chats, and the messages
    each chat that gets a new one holds before it."""

    name: str
    prefix: str
    chats: int
    history: int = 0


MIN_HUB_CHATS = 5  # 4 chats of one kind and 3 of each group kind get the 10 new messages


def hubs(args: argparse.Namespace) -> list[Hub]:
    """The hubs `args` ask for (SystemExit for a hub of fewer than MIN_HUB_CHATS chats)."""
    try:
        sizes = [int(n) for n in args.chats.split(",")]
    except ValueError:
        raise SystemExit(f"--chats: numbers separated by commas, not {args.chats!r}") from None
    out = [Hub(f"a user in {n:,} chats", f"h{n}x", n) for n in sizes]
    if args.long_chats:
        n = args.long_chats
        name = f"a user in {n:,} chats of {LONG_HISTORY + 1} messages"
        out.append(Hub(name, f"l{n}x", n, LONG_HISTORY))
    if any(hub.chats < MIN_HUB_CHATS for hub in out):
        raise SystemExit(f"--chats, --long-chats: a hub is in {MIN_HUB_CHATS} chats at least")
    return out


async def _hub(port: int, prefix: str, chats: int, history: int = 0) -> str:
    """A hub in `chats` chats with 10 events after the token answered: the token. Each
    chat that gets one of them first holds `history` messages of LONG_TEXT bytes."""
    hub = f"{prefix}hub"
    big = max(1, chats // 100)
    small = (chats - big) // 2
    pairs = chats - big - small
    groups = [f"#{prefix}s{i}" for i in range(small)] + [f"#{prefix}b{i}" for i in range(big)]
    await _each(port, [("POST", "/api/groups", {"chat": g, "user": hub}) for g in groups])
    adds = [
        ("POST", "/api/groups/add", {"chat": g, "user": hub, "member": f"{prefix}p{i}{j}"})
        for i, g in enumerate(groups)
        for j in range(1 if g.startswith(f"#{prefix}s") else 2)
    ]
    await _each(port, adds)
    await _each(port, [_send(f"{hub}:{prefix}q{i}", hub, "earlier") for i in range(pairs)])
    news = [f"{hub}:{prefix}q{i}" for i in range(4)] + groups[:3] + groups[-3:]
    for k in range(history):  # (a 1:1 chat of news has one "earlier" already)
        text = f"{k:03} " + "x" * (LONG_TEXT - 4)
        await _each(port, [_send(c, hub, text) for c in news if k or c.startswith("#")])
    (taken,) = await _each(port, [("GET", f"/api/sync?user={hub}", {})])
    token = taken["next"]
    await _each(port, [_send(chat, hub, "new") for chat in news])
    (page,) = await _each(port, [("GET", f"/api/sync?user={hub}&since={token}&limit=10", {})])
    assert len(page["events"]) == 10, page
    return str(token)


def _send(chat: str, sender: str, text: str) -> tuple[str, str, dict[str, Any]]:
    return "POST", "/api/send", {"chat": chat, "sender": sender, "text": text}


async def _feeds(port: int, prefix: str, chats: int) -> None:
    """Both members of each of `chats` send-pool chats hold a feed."""
    users = [f"{prefix}{side}{i}" for i in range(1, chats + 1) for side in "ab"]
    await _each(port, [("GET", f"/api/sync?user={u}", {}) for u in users])


def reads_and_sends(args: argparse.Namespace, trio: Trio) -> list[str]:
    """The interleaved rounds of sync10, pull10 and the two sends: the table's lines."""
    url, port = trio.url(), trio.gateways[0].port
    tokens = {
        hub: asyncio.run(_hub(port, hub.prefix, hub.chats, hub.history)) for hub in hubs(args)
    }
    run_wrk(url, "send", 64, 2, chats=POOL, prefix="pool")  # pull10's chats get messages
    asyncio.run(_feeds(port, "fed", POOL))
    plan: dict[str, dict[str, Any]] = {
        PULL: {"scenario": "pull10", "chats": POOL, "prefix": "pool"}
    }
    for hub, token in tokens.items():
        plan[f"sync10, {hub.name}"] = {"scenario": "sync10", "prefix": hub.prefix, "since": token}
    sends = {
        "send, both members syncing": {"scenario": "send", "chats": POOL, "prefix": "fed"},
        "send, nobody syncing": {"scenario": "send", "chats": POOL, "prefix": "quiet"},
    }
    runs: Samples[WrkResult] = Samples()
    cpu: Samples[dict[str, float]] = Samples()
    idle: Samples[float] = Samples()  # the machine's idle share of each run
    pids = {"im-http": pid_of(trio.gateways[0]), "im-rpc": pid_of(trio.rpc)}
    pids["redis"] = pid_of(trio.redis)
    for r, _, name in interleaved(args.rounds, [*plan, *sends], rotate=True):
        spec = {**plan, **sends}[name]
        conns = 64 if name in sends else 20
        before = {k: cpu_seconds(pid) for k, pid in pids.items()}
        idle0, total0 = machine_jiffies()
        got = run_wrk(url, spec["scenario"], conns, args.seconds, chats=spec.get("chats", 100),
                      prefix=spec["prefix"], since=spec.get("since", ""))  # fmt: skip
        if got.error_count:
            raise SystemExit(f"{name}: errors {got.errors}")
        idle1, total1 = machine_jiffies()
        runs.add(name, got)
        idle.add(name, (idle1 - idle0) / max(1, total1 - total0))
        n = max(1, got.requests)
        cpu.add(name, {k: (cpu_seconds(pid) - before[k]) / n * 1e6 for k, pid in pids.items()})
        log("sync_costs", f"round {r + 1} {name}: {got.rps:,.0f}/s p99 {got.p99_ms:.2f} ms")
    lines = [
        f"Reads at 20 connections, sends at 64: medians of {args.rounds} interleaved rounds "
        f"of {args.seconds:g} s (one gateway, one im-rpc, redis-server with AOF, wrk: this "
        "2-core machine).",
        "",
        "| scenario | req/s | p99 ms | p99 / pull10's p99 (median of the rounds' ratios) "
        "| CPU µs per request: im-http, im-rpc, redis-server | the 2 cores idle "
        "| req/s / pull10's | CPU / pull10's (the three, per request) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in [*plan, *sends]:
        ratio = runs.ratio(name, PULL, P99)
        rps = runs.median(name, RPS)
        p99 = runs.median(name, P99)
        used = ", ".join(f"{cpu.median(name, itemgetter(k)):.0f}" for k in pids)
        spare = idle.median(name)
        rps_share, cpu_share = runs.ratio(name, PULL, RPS), cpu.ratio(name, PULL, _all_cpu)
        lines.append(
            f"| {name} | {rps:,.0f} | {p99:.2f} | {ratio:.2f} | {used} | {spare:.0%} "
            f"| {rps_share:.2f} | {cpu_share:.2f} |"
        )
    share = runs.ratio("send, both members syncing", "send, nobody syncing", RPS)
    lines += ["", f"Send to members who sync / to members who do not: **{share:.1%}**."]
    if args.script_base:
        lines += ["", *script_ab(args, trio, tokens)]
    return lines


def script_ab(args: argparse.Namespace, trio: Trio, tokens: dict[Hub, str]) -> list[str]:
    """The sync script of `--script-base` (A) against this tree's (B), each answering the
    hubs' replayed tokens, interleaved: Redis's own µs per call (INFO commandstats)."""
    with ExitStack() as stack, Redis(port=trio.redis.port, decode_responses=True) as r:
        base = worktree(stack, args.script_base)
        texts = {"A": base_script(base, "sync"), "B": SYNC.text}
        # run by SHA1, as im-rpc runs them (an EVAL hashes the whole text on every call)
        shas = {side: r.script_load(text) for side, text in texts.items()}
        key = bytes.fromhex(r.get(SYNC_SECRET_KEY))
        plan = Plan(0, 0, 0, user_side=True, sync_retain=10_000, sync_idle_ms=30 * 86_400_000)
        calls: dict[Hub, list[Any]] = {}
        for hub, token in tokens.items():
            op = plan_sync(SyncCall(f"{hub.prefix}hub", token, 10), key).op
            ((_, _, *rest),) = commands(op, plan)
            calls[hub] = rest
        times: Samples[float] = Samples()
        for i, hub, side in interleaved(args.rounds, ("A", "B"), list(tokens)):
            r.config_resetstat()
            pipe = r.pipeline(transaction=False)
            for _ in range(SCRIPT_CALLS):
                pipe.evalsha(shas[side], *calls[hub])
            pipe.execute()
            us = float(r.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])
            times.add((side, hub), us)
            log("sync_costs", f"round {i + 1} sync script {side}, {hub.name}: {us:.1f} µs")
    lines = [
        f"The sync script answering the replayed token (10 events), {args.script_base} (A) "
        f"against this tree (B), run by EVALSHA as im-rpc runs them: Redis's µs per call, "
        f"medians of {args.rounds} interleaved rounds of {SCRIPT_CALLS:,} calls.",
        "",
        "| hub | A µs | B µs | B/A |",
        "| --- | --- | --- | --- |",
    ]
    for hub in tokens:
        a, b = times.median(("A", hub)), times.median(("B", hub))
        lines.append(f"| {hub.name} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    return lines


async def memory(args: argparse.Namespace) -> list[str]:
    """The feeds' bytes on the chat-size mix, and one feed at the records kept."""
    async with local_service() as (r, store, service):
        sizes = zipf_sizes(args.memory_chats, 2.0)
        order = _order(sizes)
        users = [user(i) for i in range(2 * len(sizes))]
        start_bytes = await used_memory(r)
        for at in range(0, len(users), 500):
            await asyncio.gather(*(service.sync(SyncCall(u)) for u in users[at : at + 500]))
        empty = int(await r.memory_usage(feed_key(users[0]), samples=0) or 0)
        for at in range(0, len(order), 500):
            await store.execute(
                [
                    Append(f"{user(2 * k)}:{user(2 * k + 1)}", k % 2, "x" * 100)
                    for k in order[at : at + 500]
                ]
            )
        feeds = 0
        for at in range(0, len(users), 1000):
            got = [await r.memory_usage(feed_key(u), samples=0) for u in users[at : at + 1000]]
            feeds += sum(int(b or 0) for b in got)
        records = feeds - empty * len(users)
        await _drop_users(r)
        chats = await settled_memory(r) - start_bytes
        retained = await _retained(service, store, r)
    n = len(order)
    both = chats + records
    return [
        f"Memory on the chat-size mix of perf.chat_sizes ({len(sizes):,} chats, Zipf exponent "
        f"2, {n:,} messages of 100 bytes from 8-byte users: raw {RAW} B/message), each of its "
        f"{len(users):,} users holding a sync feed (used_memory for the chats' keys, as "
        "perf.chat_sizes counts them; MEMORY USAGE for each feed):",
        "",
        "| what | bytes per message | of raw |",
        "| --- | --- | --- |",
        f"| the chats' keys | {chats / n:,.1f} | {chats / n / RAW:.2f}x |",
        f"| the feeds' records (each message in both members' feeds) | {records / n:,.1f} "
        f"| {records / n / RAW:.2f}x |",
        f"| **chats and feed records** | **{both / n:,.1f}** | **{both / n / RAW:.2f}x** |",
        f"| the feeds' keys too ({empty} B a feed without a record; {len(users):,} feeds, "
        f"most users in one chat of one message) | {(chats + feeds) / n:,.1f} "
        f"| {(chats + feeds) / n / RAW:.2f}x |",
        "",
        f"A user's feed at the records kept (IM_SYNC_RETAIN 10,000; 1:1 messages from 100 "
        f"peers): **{retained:,} bytes** ({retained / 10_000:.1f} B a record).",
    ]


async def _retained(service: ChatService, store: Any, r: aioredis.Redis) -> int:
    who = "zzretain"
    await service.sync(SyncCall(who))
    for start in range(0, 10_000, 500):
        await store.execute(
            [Append(f"{who}:zzp{(start + i) % 100:03d}", 1, "x" * 100) for i in range(500)]
        )
    return int(await r.memory_usage(feed_key(who), samples=0) or 0)


def main(argv: list[str] | None = None) -> int:
    """Measure, write the table."""
    args = comparison_args("perf.sync_costs", __doc__ or "", argv, 5, 5, more=_options)
    hubs(args)  # (its errors before anything starts)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-sync-costs-")))
        fanout = {
            "IM_GROUP_FANOUT_MAX_MEMBERS": "2",
            "IM_USER_MAX_GROUPS": "5000",  # the hub's groups
            "IM_LOG_LEVEL": "WARNING",
        }
        trio = start_trio(work, fsync="everysec", rpc_settings=fanout)
        stack.callback(trio.stop)
        lines = reads_and_sends(args, trio)
    lines += ["", *asyncio.run(memory(args))]
    write_table(args.out, "sync_costs.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
