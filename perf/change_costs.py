"""What edit and recall cost: a pull of 10 messages with edited and recalled ones among them
against one of unedited messages, an edit's and a recall's latency against a send's, and the
Redis bytes of an edited and of a recalled message.

    python -m perf.change_costs [--seconds 5] [--rounds 5] [--memory-chats 1000]

Load (one redis-server with AOF, one im-rpc, one gateway, wrk on the same machine): two pools
of 200 chats, each chat's messages sent by its first member; in the `changed` pool, of each
chat's first 10 messages, the 2nd, 5th and 8th are edited and the 3rd and 9th recalled.
`pull10` reads the first 10 messages of a random chat of a pool (20 connections). Writes at
20 connections: `send`, `edit` (a random message of a third pool, by its sender) and
`recall` (each request a message not recalled yet, from a pool filled for it: newest first,
as a sender takes back what it just sent, and oldest first, the worst case). Each
round runs every scenario in turn, the order turned by one each round; the figures are
medians, the ratios the median of each round's own ratio.
Memory (a private redis-server, the store driven directly): chats of 50 messages of 100
bytes, then one message of each chat edited (a new text of 100 bytes), then another of each
recalled (its text erased: the stream copied without it): used_memory before and after each.
Writes perf/reports/change_costs.md (or `--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis

from devtools.procs import Trio, start_trio
from im_common.calls import EditCall, PullCall, RecallCall
from perf.lib.rounds import Samples, interleaved, log
from perf.lib.stack import comparison_args
from perf.report import write_table
from perf.store_memory import local_service
from perf.sync_waits import _each
from perf.wrk import P99, RPS, WrkResult, run_wrk
from rpc_svc.store.keys import ERASING_KEY, changes_key, messages_key, short_key
from rpc_svc.store.ops import Append, Erasing

POOL = 200
EDITED, RECALLED = (1, 4, 7), (2, 8)  # of each chat's first 10 messages (from 0)
RECALLS_PER_S = 8_000  # the most a round is expected to recall: its pool is made that big


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory-chats", type=int, default=1_000, help="chats of 50 messages")


async def _change_pool(port: int, prefix: str) -> int:
    """Edit and recall some of the first 10 messages of each chat of `prefix`'s pool: how
    many messages it changed."""
    chats = [f"{prefix}a{i}:{prefix}b{i}" for i in range(1, POOL + 1)]
    pages = await _each(port, [("GET", f"/api/pull?chat={c}&limit=10", {}) for c in chats])
    jobs = []
    for chat, page in zip(chats, pages, strict=True):
        sender = chat.split(":")[0]
        for i, message in enumerate(page["messages"]):
            at = {"chat": chat, "send_time": message["send_time"]}
            if i in EDITED:
                jobs.append(("POST", "/api/edit", {**at, "sender": sender, "text": "e" * 100}))
            elif i in RECALLED:
                jobs.append(("POST", "/api/recall", {**at, "user": sender}))
    await _each(port, jobs)
    return len(jobs)


def _fill(url: str, prefix: str, acks: Path, messages: int) -> int:
    """Sends (by each chat's first member) to `prefix`'s pool until `acks` names at least
    `messages` of them (bounded: 30 runs of 2 s): how many it names."""
    for _ in range(30):
        got = len(acks.read_text().splitlines()) if acks.exists() else 0
        if got >= messages:
            return got
        run_wrk(url, "asend", 64, 2, chats=POOL, prefix=prefix, acks=acks)
    return len(acks.read_text().splitlines())


async def _erasures_done(port: int) -> None:
    """Wait (60 s at most) until no chat has recalled texts waiting to be erased."""
    r = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(600):
            if not await r.scard(ERASING_KEY):
                return
            await asyncio.sleep(0.1)
    finally:
        await r.aclose()


def reads_and_writes(args: argparse.Namespace, trio: Trio, work: Path) -> list[str]:
    """The interleaved rounds of the two pulls and the three writes: the table's lines."""
    url, port = trio.url(), trio.gateways[0].port
    for prefix in ("plain", "changed"):
        _fill(url, prefix, work / f"{prefix}.acks", POOL * 30)
    changed = asyncio.run(_change_pool(port, "changed"))
    edits = work / "edit.acks"
    _fill(url, "ed", edits, POOL * 30)
    recalls, recent = work / "recall.acks", work / "recallnew.acks"
    wanted = int(RECALLS_PER_S * args.seconds * args.rounds)
    targets = min(_fill(url, "rc", recalls, wanted), _fill(url, "rn", recent, wanted))
    log("change_costs", f"{changed:,} messages changed in the pull pool; {targets:,} to recall")
    plan: dict[str, tuple[str, dict[str, Any]]] = {
        "pull10, unedited": ("pull10", {"prefix": "plain"}),
        "pull10, 3 edited and 2 recalled of the 10": ("pull10", {"prefix": "changed"}),
        "send": ("send", {"prefix": "sends"}),
        "edit": ("edit", {"prefix": "ed", "acks": edits}),
        "recall, newest first": ("recallnew", {"prefix": "rn", "acks": recent}),
        "recall, oldest first": ("recall", {"prefix": "rc", "acks": recalls}),
    }
    runs: Samples[WrkResult] = Samples()
    recalled = newest = 0
    for r, _, name in interleaved(args.rounds, list(plan), rotate=True):
        scenario, spec = plan[name]
        got = run_wrk(url, scenario, 20, args.seconds, chats=POOL, prefix=spec["prefix"],
                      acks=spec.get("acks"))  # fmt: skip
        if got.error_count:
            raise SystemExit(f"{name}: errors {got.errors}")
        recalled += got.requests if name == "recall, oldest first" else 0
        newest += got.requests if name == "recall, newest first" else 0
        runs.add(name, got)
        log("change_costs", f"round {r + 1} {name}: {got.rps:,.0f}/s p99 {got.p99_ms:.2f} ms")
        if scenario.startswith("recall"):  # its erasures done before the next scenario
            asyncio.run(_erasures_done(trio.redis.port))
    base = {"pull10, unedited": "pull10, unedited", "send": "send"}
    lines = [
        f"20 connections, medians of {args.rounds} interleaved rounds of {args.seconds:g} s "
        "(one gateway, one im-rpc, redis-server with AOF, wrk: this 2-core machine). Ratios: "
        "the median of each round's own ratio to the scenario it is compared with.",
        "",
        "| scenario | req/s | p50 ms | p99 ms | compared with | req/s ratio | p99 ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in plan:
        against = "pull10, unedited" if name.startswith("pull10") else "send"
        rps, p99 = runs.ratio(name, base[against], RPS), runs.ratio(name, base[against], P99)
        lines.append(
            f"| {name} | {runs.median(name, RPS):,.0f} "
            f"| {runs.median(name, lambda w: w.p50_ms):.2f} "
            f"| {runs.median(name, P99):.2f} | {against} | {rps:.3f} | {p99:.2f} |"
        )
    again = "" if max(recalled, newest) <= targets else " (the rest: again, which changes nothing)"
    lines += [
        "",
        f"Recalls: {recalled:,} oldest first and {newest:,} newest first, each over a pool "
        f"of at least {targets:,} messages: every request recalled a message for the first "
        f"time{again}.",
    ]
    return lines


async def _chat_bytes(r: aioredis.Redis, chats: list[str]) -> int:
    """MEMORY USAGE of the chats' keys: stream, short hash, changes (exact: samples 0)."""
    total = 0
    for chat in chats:
        for key in (messages_key(chat), short_key(chat), changes_key(chat)):
            total += int(await r.memory_usage(key, samples=0) or 0)
    return total


async def memory(args: argparse.Namespace) -> list[str]:
    """Redis bytes of an edit and of a recall, on chats of 50 messages (MEMORY USAGE of
    each chat's keys: connection buffers and script caches do not count)."""
    async with local_service() as (r, store, service):
        chats = [f"m{i:05d}a:m{i:05d}b" for i in range(args.memory_chats)]
        for _ in range(50):
            for at in range(0, len(chats), 500):
                await store.execute([Append(c, 0, "x" * 100) for c in chats[at : at + 500]])
        times = {}
        for chat in chats:
            page = await service.pull(PullCall(chat, 0, 50))
            times[chat] = [m["send_time"] for m in page.messages]
        before = await _chat_bytes(r, chats)
        for at in range(0, len(chats), 200):
            await asyncio.gather(
                *(
                    service.edit(EditCall(c, c.split(":")[0], times[c][10], "y" * 100))
                    for c in chats[at : at + 200]
                )
            )
        edited = await _chat_bytes(r, chats)
        for at in range(0, len(chats), 200):
            await asyncio.gather(
                *(
                    service.recall(RecallCall(c, c.split(":")[0], times[c][20]))
                    for c in chats[at : at + 200]
                )
            )
        for _ in range(100):  # the erasures (started by the recalls) finished, bounded
            pending = cast(list[str], await store.one(Erasing()))
            if not pending:
                break
            for chat in pending:
                await store.erase(chat)
            await asyncio.sleep(0.05)
        await service.erasers.close()
        recalled = await _chat_bytes(r, chats)
    n = len(chats)
    return [
        f"Memory (MEMORY USAGE of each chat's keys; {n:,} 1:1 chats of 50 messages of 100 "
        f"bytes, {before / (50 * n):,.1f} B a message before any change):",
        "",
        "| change (one message of each chat) | bytes per changed message |",
        "| --- | --- |",
        "| an edit (a new text of 100 bytes in the changes set; the old stays in the stream) "
        f"| {(edited - before) / n:+,.1f} |",
        "| a recall of another message (its mark in the changes set; the stream rewritten "
        f"without its text) | {(recalled - edited) / n:+,.1f} |",
    ]


def main(argv: list[str] | None = None) -> int:
    """Measure, write the table."""
    args = comparison_args("perf.change_costs", __doc__ or "", argv, 5, 5, more=_options)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-changes-")))
        trio = start_trio(work, fsync="everysec", rpc_settings={"IM_LOG_LEVEL": "WARNING"})
        stack.callback(trio.stop)
        lines = reads_and_writes(args, trio, work)
    lines += ["", *asyncio.run(memory(args))]
    write_table(args.out, "change_costs.md", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
