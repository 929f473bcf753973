"""The store against a real redis-server: times, order, idempotency, keys, failures."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from devtools.procs import Process, redis_server
from devtools.redis_cluster import RedisClusterNodes
from rpc_svc.domain.errors import StoreTimeout, StoreUnavailable
from rpc_svc.server import open_store
from rpc_svc.store.base import RedisStore
from rpc_svc.store.keys import idempotency_key, messages_key, retry_keys_key, short_key
from rpc_svc.store.records import entry_id, send_time_of
from tests.conftest import ON_EVERY_BACKEND, make_cluster_store, make_store, redis_url
from tests.store_calls import append, read


@ON_EVERY_BACKEND
async def test_send_times_are_redis_microseconds_and_strictly_increase(store: RedisStore) -> None:
    before = time.time_ns() // 1000
    times = [await append(store, "a:b", i % 2, "same text") for i in range(20)]
    assert times == sorted(set(times))
    assert abs(times[0] - before) < 5_000_000  # Redis's clock, close to ours on one machine
    entries = await read(store, "a:b", 0, 100, reverse=False)
    assert [e.send_time for e in entries] == times
    assert [e.role for e in entries] == [i % 2 for i in range(20)]
    assert {e.text for e in entries} == {"same text"}


@ON_EVERY_BACKEND
async def test_concurrent_appends_are_all_kept_with_unique_times(store: RedisStore) -> None:
    times = await asyncio.gather(*(append(store, "a:b", 0, "x") for _ in range(300)))
    assert len(set(times)) == 300
    entries = await read(store, "a:b", 0, 1000, reverse=False)
    assert [e.send_time for e in entries] == sorted(times)


async def test_a_cluster_store_waits_for_a_free_connection_instead_of_failing(
    redis_cluster: RedisClusterNodes,
) -> None:
    # redis-py's cluster client fails a command past max_connections per node
    # (MaxConnectionsError); the store waits for a turn, as the single-Redis pool does
    redis_cluster.flush()
    store = make_cluster_store(redis_cluster, max_connections=2)
    try:
        chats = [f"c{i}:d{i}" for i in range(10)]  # spread over the masters
        times = await asyncio.gather(*(append(store, chats[i % 10], 0, "x") for i in range(200)))
        assert len(set(times)) == 200
        stored = [await read(store, chat, 0, 100, reverse=False) for chat in chats]
        assert sum(len(entries) for entries in stored) == 200
    finally:
        await store.close()


async def test_masters_without_the_scripts_get_them_again_within_the_connection_bound(
    redis_cluster: RedisClusterNodes,
) -> None:
    # as after a restart: every send meets NOSCRIPT, and each batch loads the scripts on
    # every master (a connection each) before sending again, in its turn
    redis_cluster.flush()
    for master in redis_cluster.masters():
        async with aioredis.Redis(port=master.port) as admin:
            await admin.script_flush()
    store = make_cluster_store(redis_cluster)
    try:
        times = await asyncio.gather(*(append(store, "a:b", 0, "x") for _ in range(300)))
        assert len(set(times)) == 300
    finally:
        await store.close()


@ON_EVERY_BACKEND
async def test_a_chat_whose_last_message_is_in_the_future_continues_after_it(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    future = (time.time_ns() // 1000) + 3_600_000_000
    await redis_client.xadd(messages_key("a:b"), {"t": "01:0:from the future"}, id=entry_id(future))
    assert await append(store, "a:b", 1, "next") == future + 1
    assert await append(store, "a:b", 1, "next") == future + 2


@ON_EVERY_BACKEND
async def test_reverse_reads_start_at_the_newest_or_at_the_cursor(store: RedisStore) -> None:
    times = [await append(store, "a:b", 0, str(i)) for i in range(5)]
    newest = await read(store, "a:b", 0, 2, reverse=True)
    assert [e.send_time for e in newest] == times[:-3:-1]
    older = await read(store, "a:b", times[2], 10, reverse=True)
    assert [e.send_time for e in older] == times[2::-1]


@ON_EVERY_BACKEND
async def test_a_repeated_idempotency_key_stores_nothing_new(store: RedisStore) -> None:
    first = await append(store, "a:b", 0, "hello", "key-1")
    again = await append(store, "a:b", 0, "hello", "key-1")
    other_sender = await append(store, "a:b", 1, "hello", "key-1")
    other_chat = await append(store, "a:c", 0, "hello", "key-1")
    assert again == first
    assert len({first, other_sender}) == 2
    assert other_chat != first
    assert len(await read(store, "a:b", 0, 10, reverse=False)) == 2


async def test_an_idempotency_key_expires_after_its_lifetime(
    redis_proc: Process, redis_client: aioredis.Redis
) -> None:
    short = make_store(redis_proc, ttl_s=1)
    key = idempotency_key("a:b")
    try:
        first = await append(short, "a:b", 0, "x", "k")
        await append(short, "a:b", 0, "x", "old")
        assert await append(short, "a:b", 0, "x", "k") == first
        assert 0 < await redis_client.pttl(key) <= 1000
        await asyncio.sleep(0.7)
        await append(short, "a:b", 0, "x", "k2")  # the set now lives until 1.7 s
        await asyncio.sleep(0.5)
        assert await redis_client.exists(key) == 1  # so the entry's own lifetime decides:
        again = await append(short, "a:b", 0, "x", "k")
        assert again > first  # past its lifetime, the key no longer dedups
        # and the send pruned the entries past their lifetime ("old"), not the others
        assert await redis_client.zrange(key, 0, -1) == ["0:k2", "0:k"]
        assert await append(short, "a:b", 0, "x", "k2") < again  # still dedups
    finally:
        await short.close()


async def test_a_retry_key_dedups_briefly_and_apart_from_client_keys(
    redis_proc: Process, redis_client: aioredis.Redis
) -> None:
    short = make_store(redis_proc, retry_ttl_s=1)
    key = retry_keys_key("a:b")
    try:
        first = await append(short, "a:b", 0, "x", retry_key="r1")
        await append(short, "a:b", 0, "x", retry_key="old")
        kept = await append(short, "a:b", 0, "y", client_msg_id="c1")
        assert await append(short, "a:b", 0, "x", retry_key="r1") == first
        assert 0 < await redis_client.pttl(key) <= 1000
        await asyncio.sleep(0.7)
        third = await append(short, "a:b", 0, "x", retry_key="r2")  # the set lives until 1.7 s
        await asyncio.sleep(0.5)
        assert await redis_client.exists(key) == 1  # so the entry's own lifetime decides:
        assert await append(short, "a:b", 0, "x", retry_key="r1") > third
        assert await redis_client.zrange(key, 0, -1) == ["0:r2", "0:r1"]  # "old" pruned
        # the client's key lives its own 24 h: untouched by the retry keys' trimming
        assert await append(short, "a:b", 0, "y", client_msg_id="c1") == kept
    finally:
        await short.close()


@pytest.mark.parametrize("chat", ["{a}:b", "%7Ba%7D:b", "}x:{y", "a%:b"])
async def test_keys_stay_distinct_and_in_one_hash_slot(store: RedisStore, chat: str) -> None:
    await append(store, chat, 0, chat, "k")
    for key in (messages_key(chat), short_key(chat), idempotency_key(chat)):
        tag = key[key.index("{") + 1 : key.index("}")]
        assert tag
        assert key.startswith(f"im:{{{tag}}}:")
    entries = await read(store, chat, 0, 10, reverse=False)
    assert [e.text for e in entries] == [chat]


async def test_keys_of_escaped_and_plain_chats_differ() -> None:
    assert messages_key("{a}:b") != messages_key("%7Ba%7D:b")


def test_entry_ids_round_trip() -> None:
    for t in (0, 1, 999, 1000, 1_795_902_056_876_842, 2**63 - 1):
        assert send_time_of(entry_id(t)) == t


async def test_a_restarted_redis_is_used_again_without_errors(tmp_path: Path) -> None:
    proc = redis_server(tmp_path, fsync="always")
    proc.start()
    s = open_store(
        f"redis://127.0.0.1:{proc.port}/0", max_connections=4, timeout_s=1.0, idempotency_ttl_s=60
    )
    try:
        first = await append(s, "a:b", 0, "before")
        proc.stop()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await append(s, "a:b", 0, "while down")
        assert time.monotonic() - started < 1.0
        proc.start()
        # the pooled connection to the old process is replaced, not reported as an error
        later = await append(s, "a:b", 0, "after")
        entries = await read(s, "a:b", 0, 10, reverse=False)
        assert [(e.send_time, e.text) for e in entries] == [(first, "before"), (later, "after")]
        # many pooled connections, and a crash rather than a clean stop: none fails after it
        await asyncio.gather(*(append(s, f"c{i}:d", 0, "x") for i in range(4)))
        proc.stop(signal.SIGKILL)
        proc.start()
        await asyncio.sleep(0.05)  # proc.start blocked the loop: let it see the closed sockets
        reads = await asyncio.gather(*(read(s, f"c{i}:d", 0, 10, False) for i in range(4)))
        assert [len(r) for r in reads] == [1, 1, 1, 1]
    finally:
        await s.close()
        proc.stop()


async def test_a_redis_that_does_not_answer_times_out_and_the_next_call_works(
    redis_proc: Process, redis_client: aioredis.Redis
) -> None:
    quick = open_store(
        f"redis://127.0.0.1:{redis_proc.port}/0",
        max_connections=2,
        timeout_s=0.3,
        idempotency_ttl_s=60,
    )
    try:
        await append(quick, "a:b", 0, "warm")
        await redis_client.execute_command("CLIENT", "PAUSE", 800, "ALL")  # type: ignore[no-untyped-call]
        started = time.monotonic()
        with pytest.raises(StoreTimeout):
            await read(quick, "a:b", 0, 10, reverse=False)
        assert time.monotonic() - started < 0.7
        await asyncio.sleep(0.6)  # the pause ends
        entries = await read(quick, "a:b", 0, 10, reverse=False)
        assert [e.text for e in entries] == ["warm"]
    finally:
        await quick.close()


async def test_with_wait_replicas_a_write_no_replica_confirms_is_not_acknowledged(
    redis_proc: Process, redis_client: aioredis.Redis
) -> None:
    s = open_store(
        redis_url(redis_proc),
        max_connections=4,
        timeout_s=1.0,
        idempotency_ttl_s=60,
        wait_replicas=1,
        wait_timeout_ms=50,
    )
    try:  # this Redis has no replica: WAIT 1 times out
        started = time.monotonic()
        with pytest.raises(StoreTimeout, match="fewer than 1 replica"):
            await append(s, "a:b", 0, "unconfirmed", client_msg_id="k")
        assert time.monotonic() - started < 0.5
        # reads are not held up by WAIT, and the message is on the master: a 504, not a loss
        (entry,) = await read(s, "a:b", 0, 10, reverse=False)
        assert entry.text == "unconfirmed"
    finally:
        await s.close()
