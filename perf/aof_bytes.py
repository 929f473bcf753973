"""Bytes each send writes to Redis's append-only file (and so to each replica), by message
number in its chat.

    python -m perf.aof_bytes [--messages 40] [--text-bytes 100] [--chats 20]

Starts a private redis-server (AOF on, fsync left to the OS, automatic rewrites off) and
sends `--messages` messages of `--text-bytes` bytes to each of `--chats` 1:1 chats through
the store, one at a time, with short chats as im-rpc runs them (IM_SHORT_CHAT_MESSAGES 32)
and with short forms off (a stream from the first message). Each send's figure is the growth of
`aof_current_size`; prints, per message number, the median over the chats for each layout,
then the mean over a chat's first 31 messages.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import redis.asyncio as aioredis

from devtools.procs import redis_server
from rpc_svc.server import open_store
from rpc_svc.store.ops import Append

LAYOUTS = {"short hash": 32, "streams only": 0}


async def _aof_size(client: aioredis.Redis) -> int:
    return int((await client.info("persistence"))["aof_current_size"])


async def measure(url: str, short: int, messages: int, text_bytes: int, chats: int) -> list[int]:
    """Median AOF bytes of the n-th send of a chat, n = 1..messages (`short`: the store's
    IM_SHORT_CHAT_MESSAGES), over `chats` chats."""
    store = open_store(
        url, max_connections=2, timeout_s=5, idempotency_ttl_s=86_400, short_chat_messages=short
    )
    client = aioredis.Redis.from_url(url)
    text = "x" * text_bytes
    grown: list[list[int]] = [[] for _ in range(messages)]
    try:
        for c in range(chats):
            chat = f"s{short}u{c}a:s{short}u{c}b"
            for n in range(messages):
                before = await _aof_size(client)
                await store.one(Append(chat, n % 2, text))
                grown[n].append(await _aof_size(client) - before)
    finally:
        await store.close()
        await client.aclose()
    return [round(statistics.median(g)) for g in grown]


def main(argv: list[str] | None = None) -> int:
    """Measure both layouts, print the table."""
    p = argparse.ArgumentParser(prog="python -m perf.aof_bytes", description=__doc__)
    p.add_argument("--messages", type=int, default=40, help="sends per chat")
    p.add_argument("--text-bytes", type=int, default=100, help="bytes of each text")
    p.add_argument("--chats", type=int, default=20, help="chats per layout (the median)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="im-aof-") as work:
        # appendfsync no: each write reaches the file before its reply (everysec holds a
        # write back while a slow fsync runs, and a send then measured 0 bytes)
        redis = redis_server(
            Path(work), None, "--auto-aof-rewrite-percentage", "0", fsync="no"
        ).start()
        try:
            url = f"redis://127.0.0.1:{redis.port}/0"
            columns = {
                name: asyncio.run(measure(url, short, args.messages, args.text_bytes, args.chats))
                for name, short in LAYOUTS.items()
            }
        finally:
            redis.stop()
    print("message  " + "  ".join(f"{name:>12}" for name in columns))
    for n in range(args.messages):
        print(f"{n + 1:7}  " + "  ".join(f"{col[n]:12,}" for col in columns.values()))
    first = min(31, args.messages)
    means = "  ".join(f"{statistics.mean(col[:first]):12,.0f}" for col in columns.values())
    print(f"mean of the first {first}: {means}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
