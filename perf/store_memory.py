"""Bytes of Redis memory per stored message, measured with INFO memory.

Starts a private redis-server on a free loopback port, writes `--messages`
messages of `--text-bytes`-byte text from 8-byte senders, and prints
used_memory growth per message for:

  store     this project's layout, written through the store's Append (one stream
            per chat, ID from send_time, one field: role digit, the members' running
            counts, text; and each member's inbox)
  group     this project's group layout, through the store's group operations (one
            stream per group, field: message count, sender, text; the group's owner and
            members, created within the measurement), both senders members
  zset-json the original reference design: a sorted set per chat, JSON members
  stream-3f a plain stream per chat with sender/text/send_time fields

each in two shapes: all messages in one chat, and spread over `--chats` chats. Then the
bytes a group member costs (its entry in the group, its set of groups, its inbox row, its
read position).

    python -m perf.store_memory [--messages 100000] [--chats 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial

import orjson
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from devtools.procs import COMPACT_CHANGES, COMPACT_HASHES
from rpc_svc.server import open_store
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from rpc_svc.store.ops import AddMember, Append, CreateGroup, GroupAppend

SENDERS = ("sender01", "sender02")  # 8 bytes each
BATCH = 500
Writer = Callable[[Pipeline, int, str], None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def used_memory(r: aioredis.Redis) -> int:
    """Redis's `used_memory` in bytes."""
    return int((await r.info("memory"))["used_memory"])


async def settled_memory(r: aioredis.Redis, most_s: float = 10.0) -> int:
    """`used_memory` once Redis's cron has shrunk the keyspace's tables after a mass delete
    (a table under a tenth full is resized in the background, not by the DEL): polled every
    0.25 s until the tables' bytes have not changed for 1 s, at most `most_s`. Without the
    wait, keys deleted a moment ago still cost their buckets (8 bytes each, for up to twice
    the keys the table held) in the figure of the keys kept."""
    last, still = await _tables(r), 0
    for _ in range(int(most_s / 0.25)):
        await asyncio.sleep(0.25)
        now = await _tables(r)
        still = still + 1 if now == last else 0
        if still == 4:
            break
        last = now
    return await used_memory(r)


async def _tables(r: aioredis.Redis) -> object:
    """The bytes of db 0's keyspace tables (MEMORY STATS: main and expires)."""
    return [v for k, v in (await r.memory_stats()).items() if str(k).startswith(("db.", "b'db."))]


def _chat_of(i: int, chats: int) -> str:
    return f"{SENDERS[0]}{i % chats:06d}:{SENDERS[1]}"


async def _fill_store(url: str, n: int, chats: int, text: str) -> None:
    store = open_store(url, max_connections=64, timeout_s=5, idempotency_ttl_s=60)
    for start in range(0, n, BATCH):
        await asyncio.gather(
            *(
                store.one(Append(_chat_of(i, chats), i % 2, text))
                for i in range(start, min(n, start + BATCH))
            )
        )
    await store.close()


def _group_of(i: int, chats: int) -> str:
    return f"#{SENDERS[0]}{i % chats:06d}"


async def _fill_groups(url: str, n: int, chats: int, text: str) -> None:
    store = open_store(url, max_connections=64, timeout_s=5, idempotency_ttl_s=60)
    groups = {_group_of(i, chats) for i in range(n)}
    for group in groups:
        await store.one(CreateGroup(group, SENDERS[0]))
        await store.one(AddMember(group, SENDERS[0], SENDERS[1], 10))
    for start in range(0, n, BATCH):
        ops = [
            GroupAppend(_group_of(i, chats), SENDERS[i % 2], text)
            for i in range(start, min(n, start + BATCH))
        ]
        await store.execute(ops)
    await store.close()


async def _member_bytes(url: str, r: aioredis.Redis, members: int) -> float:
    """Redis bytes per member of a group with messages (its entry, set, read position)."""
    await r.flushall()
    store = open_store(url, max_connections=8, timeout_s=5, idempotency_ttl_s=60)
    await store.one(CreateGroup("#big", "owner"))
    await store.one(GroupAppend("#big", "owner", "hello"))
    before = await used_memory(r)
    for start in range(0, members, BATCH):  # the store's add, the member's side with it
        names = [f"member{i:06d}" for i in range(start, min(members, start + BATCH))]
        await store.execute([AddMember("#big", "owner", m, members + 1) for m in names])
    used = await used_memory(r) - before
    await store.close()
    return used / members


async def _fill_pipelined(r: aioredis.Redis, n: int, chats: int, write: Writer) -> None:
    for start in range(0, n, BATCH):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + BATCH)):
            write(pipe, i, _chat_of(i, chats))
        await pipe.execute()


def _zset_json(text: str) -> Writer:
    base = time.time_ns() // 1000

    def write(pipe: Pipeline, i: int, chat: str) -> None:
        member = orjson.dumps(
            {"chat": chat, "text": text, "sender": SENDERS[i % 2], "send_time": base + i}
        )
        pipe.zadd(f"zs:{{{chat}}}", {member: base + i})

    return write


def _stream_3f(text: str) -> Writer:
    base = time.time_ns() // 1000

    def write(pipe: Pipeline, i: int, chat: str) -> None:
        fields = {"sender": SENDERS[i % 2], "text": text, "send_time": base + i}
        pipe.xadd(f"st:{{{chat}}}", fields)  # type: ignore[arg-type]

    return write


async def _measure(r: aioredis.Redis, fill: Callable[[], Awaitable[None]], n: int) -> float:
    await r.flushall()
    before = await used_memory(r)
    await fill()
    return (await used_memory(r) - before) / n


async def run(n: int, chats: int, text_bytes: int, url: str) -> None:
    r = aioredis.Redis.from_url(url)
    text = "x" * text_bytes
    raw = text_bytes + len(SENDERS[0])
    print(f"{n} messages, text {text_bytes} B, sender {len(SENDERS[0])} B: raw {raw} B/message")
    print(f"{'layout':<10} {'chats':>6} {'B/message':>10} {'x raw':>6}")
    for shape in (1, chats):
        rows = [
            ("store", partial(_fill_store, url, n, shape, text)),
            ("group", partial(_fill_groups, url, n, shape, text)),
            ("zset-json", partial(_fill_pipelined, r, n, shape, _zset_json(text))),
            ("stream-3f", partial(_fill_pipelined, r, n, shape, _stream_3f(text))),
        ]
        for name, fill in rows:
            per = await _measure(r, fill, n)
            print(f"{name:<10} {shape:>6} {per:>10.1f} {per / raw:>6.2f}", flush=True)
    per_member = await _member_bytes(url, r, min(n, 10_000))
    print(f"group member: {per_member:.1f} B/member", flush=True)
    await r.aclose()


@contextmanager
def local_redis(changes: bool = False) -> Iterator[str]:
    """A private redis-server (no persistence, short chats' hashes compact as the store
    requires; with `changes`, edited texts' sorted sets compact as operations.md asks; else
    Redis's default, which the naive sorted-set layouts are measured with) on a free
    loopback port: its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed: run scripts/bootstrap")
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        argv = [exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", tmp]
        proc = subprocess.Popen(
            [
                *argv,
                "--save",
                "",
                "--appendonly",
                "no",
                *COMPACT_HASHES,
                *(COMPACT_CHANGES if changes else ()),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
            print(version.strip())
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait()


@asynccontextmanager
async def local_service() -> AsyncIterator[tuple[aioredis.Redis, RedisStore, ChatService]]:
    """A private redis-server (`local_redis`): a client of it, the store on it and a
    ChatService over that store, closed after."""
    with local_redis(changes=True) as url:
        r = aioredis.Redis.from_url(url)
        store = open_store(url, max_connections=64, timeout_s=30, idempotency_ttl_s=60)
        try:
            yield r, store, ChatService(store, 4096)
        finally:
            await store.close()
            await r.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--text-bytes", type=int, default=100)
    args = parser.parse_args()
    with local_redis() as url:
        asyncio.run(run(args.messages, args.chats, args.text_bytes, url))


if __name__ == "__main__":
    main()
