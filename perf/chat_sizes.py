"""Bytes of Redis memory per message by chat size, and on a heavy-tailed population.

Starts a private redis-server on a free loopback port and, for each chat size in
`--sizes`, writes `--messages` messages of 100-byte text from 8-byte users as chats of
that size (chat i between users 2i and 2i+1), then prints used_memory growth per message
for these layouts:

  short     this store: a chat's first IM_SHORT_CHAT_MESSAGES - 1 messages in a hash,
            then a stream (what im-rpc runs)
  streams   this store with short forms off (IM_SHORT_CHAT_MESSAGES=0): a stream per
            chat from the first message, the layout before short forms
  +ids      `short`, every send with a client_msg_id (the chat's idempotency set, 24 h)
  zset-json the naive design: a sorted set per chat, one JSON member per message

The store's figures count the chat's keys only: the members' inboxes are measured apart
(their bytes are dropped before the figure is read), and reported per user. Then the same
on a mix of chat sizes drawn from a power law (`--zipf` exponent, sizes 1 to 100,000), and
the bytes a user's inbox and read positions cost per chat it is in.

    python -m perf.chat_sizes [--messages 100000] [--sizes 1,2,5,10,...] [--mix-chats 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
from collections.abc import Sequence

import orjson
import redis.asyncio as aioredis

from perf.store_memory import local_redis, used_memory
from rpc_svc.domain.values import ReadMark
from rpc_svc.server import open_store
from rpc_svc.store.ops import Append, MarkRead

TEXT = "x" * 100
RAW = len(TEXT) + 8  # text + sender: 108 bytes
BATCH = 500
SIZES = (1, 2, 3, 5, 10, 20, 31, 32, 50, 100, 1000, 10_000, 100_000)


def user(i: int) -> str:
    """The 8-byte name of user i."""
    return f"u{i:07d}"


def chat(k: int) -> str:
    """Chat k: between users 2k and 2k+1."""
    return f"{user(2 * k)}:{user(2 * k + 1)}"


async def _drop_users(r: aioredis.Redis) -> None:
    """Delete every user's inbox and read positions (`im:{u...}:inbox|read`)."""
    keys = [
        k
        async for k in r.scan_iter("im:{u*}:*", count=10_000)
        if b":" not in k[k.index(b"{") + 1 : k.index(b"}")]
    ]
    for i in range(0, len(keys), 10_000):
        await r.delete(*keys[i : i + 10_000])


async def _send_all(url: str, order: Sequence[int], short: int, ids: bool) -> None:
    store = open_store(
        url,
        max_connections=64,
        timeout_s=10,
        idempotency_ttl_s=86_400,
        short_chat_messages=short,
    )
    try:
        for start in range(0, len(order), BATCH):
            await asyncio.gather(
                *(
                    store.one(Append(chat(k), i % 2, TEXT, f"id{i}" if ids else ""))
                    for i, k in enumerate(order[start : start + BATCH], start)
                )
            )
    finally:
        await store.close()


async def _zset_json(r: aioredis.Redis, order: Sequence[int]) -> None:
    base = 1_764_000_000_000_000
    for start in range(0, len(order), BATCH):
        pipe = r.pipeline(transaction=False)
        for i, k in enumerate(order[start : start + BATCH], start):
            name = chat(k)
            sender = name.split(":")[i % 2]
            member = orjson.dumps({"chat": name, "text": TEXT, "sender": sender, "send_time": i})
            pipe.zadd(f"zs:{{{name}}}", {member: base + i})
        await pipe.execute()


async def _measure(url: str, r: aioredis.Redis, layout: str, order: Sequence[int]) -> float:
    """Bytes per message of the chats' keys (inboxes dropped) after writing `order`."""
    await r.flushall()
    before = await used_memory(r)
    if layout == "zset-json":
        await _zset_json(r, order)
    else:
        await _send_all(url, order, 0 if layout == "streams" else 32, layout == "+ids")
        await _drop_users(r)
    return (await used_memory(r) - before) / len(order)


def _order(sizes: Sequence[int], seed: int = 7) -> list[int]:
    """Chat k's index once per message, interleaved as a population sends."""
    order = [k for k, size in enumerate(sizes) for _ in range(size)]
    random.Random(seed).shuffle(order)
    return order


def zipf_sizes(chats: int, exponent: float, largest: int = 100_000, seed: int = 7) -> list[int]:
    """`chats` sizes drawn from P(size = s) ~ s^-exponent, 1 <= s <= largest."""
    weights = [s**-exponent for s in range(1, largest + 1)]
    return random.Random(seed).choices(range(1, largest + 1), weights=weights, k=chats)


async def _user_bytes(url: str, r: aioredis.Redis, users: int, per_user: int) -> float:
    """Bytes of inbox and read positions per user, each user in `per_user` chats (one
    message each, read by both members)."""
    await r.flushall()
    store = open_store(url, max_connections=64, timeout_s=10, idempotency_ttl_s=60)
    pairs = [(a, (a + j) % users) for a in range(users) for j in range(1, per_user // 2 + 1)]
    try:
        for start in range(0, len(pairs), BATCH):
            batch = pairs[start : start + BATCH]
            names = [":".join(sorted((user(a), user(b)))) for a, b in batch]
            times = await asyncio.gather(*(store.one(Append(n, 0, "x")) for n in names))
            marks = [
                MarkRead(u, n, ReadMark(t, (1, 0)))
                for n, t in zip(names, times, strict=True)
                for u in n.split(":")
            ]
            await store.execute(marks)
        before = await used_memory(r)
        await _drop_users(r)
        return (before - await used_memory(r)) / users
    finally:
        await store.close()


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


async def run(args: argparse.Namespace, url: str) -> None:
    r = aioredis.Redis.from_url(url)
    layouts = ("short", "streams", "+ids", "zset-json")
    print(f"raw: {RAW} B/message (100-byte text, 8-byte sender)", flush=True)
    print(_row(["messages per chat", "chats", *layouts, "short / raw"]))
    print(_row(["---"] * (len(layouts) + 3)))
    for size in args.sizes:
        chats = max(1, args.messages // size)
        order = _order([size] * chats)
        got = {layout: await _measure(url, r, layout, order) for layout in layouts}
        cells = [f"{got[layout]:,.1f}" for layout in layouts]
        print(_row([size, f"{chats:,}", *cells, f"{got['short'] / RAW:.2f}x"]), flush=True)
    sizes = zipf_sizes(args.mix_chats, args.zipf)
    order = _order(sizes)
    small = sum(1 for s in sizes if s < 10) / len(sizes)
    print(
        f"mix: {len(sizes):,} chats, zipf exponent {args.zipf:g}, {len(order):,} messages; "
        f"{small:.1%} of chats under 10 messages, {sum(1 for s in sizes if s > 10_000)} over "
        f"10,000, median {statistics.median(sizes):g}, largest {max(sizes):,}",
        flush=True,
    )
    got = {layout: await _measure(url, r, layout, order) for layout in layouts}
    cells = [f"{got[layout]:,.1f}" for layout in layouts]
    print(_row(["mix", f"{len(sizes):,}", *cells, f"{got['short'] / RAW:.2f}x"]), flush=True)
    for per_user in (2, 10, 100):
        users = max(2 * per_user + 1, args.users // per_user)  # partners all distinct
        per = await _user_bytes(url, r, users, per_user)
        print(
            f"user in {per_user} chats: {per:,.1f} B per user ({per / per_user:,.1f} B per "
            f"chat it is in), {users:,} users",
            flush=True,
        )
    await r.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=100_000, help="messages per chat size")
    p.add_argument(
        "--sizes",
        type=lambda v: [int(x) for x in v.split(",")],
        default=list(SIZES),
        help="chat sizes, comma-separated",
    )
    p.add_argument("--mix-chats", type=int, default=20_000, help="chats of the power-law mix")
    p.add_argument("--zipf", type=float, default=2.0, help="exponent of the chat-size law")
    p.add_argument("--users", type=int, default=20_000, help="users of the per-user figure")
    args = p.parse_args(argv)
    with local_redis() as url:
        asyncio.run(run(args, url))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
