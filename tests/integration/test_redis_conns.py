"""The single-Redis store's connections against a real redis-server: the bound, the wait,
reuse, and connections that must not be lent as they are."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from devtools.procs import Process
from rpc_svc.server import open_store
from rpc_svc.store.connections import Connections
from tests.conftest import redis_url
from tests.store_calls import append


def _connections(redis_proc: Process, limit: int, wait_s: float = 1.0) -> Connections:
    make = partial(Connection, host="127.0.0.1", port=redis_proc.port, decode_responses=True)
    return Connections(make, limit, wait_s)


async def _client_id(conns: Connections) -> int:
    conn = await conns.lend()
    try:
        await conn.send_command("CLIENT", "ID")
        return int(await conn.read_response())
    finally:
        conns.give_back(conn)


async def test_a_connection_given_back_is_lent_again(redis_proc: Process) -> None:
    conns = _connections(redis_proc, limit=4)
    try:
        first = await _client_id(conns)
        assert [await _client_id(conns) for _ in range(3)] == [first] * 3
        assert conns.open == 1
        three = [await conns.lend() for _ in range(3)]
        for conn in three:
            conns.give_back(conn)
        # the most recently used is lent first: one connection stays hot, the rest idle
        newest = await _client_id(conns)
        assert [await _client_id(conns) for _ in range(3)] == [newest] * 3
    finally:
        await conns.close()
    assert conns.open == 0


async def test_at_most_limit_are_lent_and_the_next_waits_for_one_back(
    redis_proc: Process,
) -> None:
    conns = _connections(redis_proc, limit=2, wait_s=2.0)
    try:
        held = [await conns.lend(), await conns.lend()]
        waiting = asyncio.create_task(conns.lend())
        await asyncio.sleep(0.1)
        assert not waiting.done()
        conns.give_back(held[0])
        third = await asyncio.wait_for(waiting, 1.0)
        assert third is held[0]
        assert conns.open == 2
        for conn in (held[1], third):
            conns.give_back(conn)
    finally:
        await conns.close()


async def test_past_the_wait_a_caller_gets_no_connection(redis_proc: Process) -> None:
    conns = _connections(redis_proc, limit=1, wait_s=0.2)
    try:
        held = await conns.lend()
        started = time.monotonic()
        with pytest.raises(RedisConnectionError, match=r"^No connection available\.$"):
            await conns.lend()
        assert 0.15 < time.monotonic() - started < 1.0
        conns.give_back(held)
        assert await _client_id(conns) > 0  # the slot the refused caller waited for is free
    finally:
        await conns.close()


async def test_a_connection_with_an_unread_reply_is_made_again(redis_proc: Process) -> None:
    conns = _connections(redis_proc, limit=1)
    try:
        conn = await conns.lend()
        await conn.send_command("ECHO", "stale")  # its reply is never read
        await asyncio.sleep(0.05)
        conns.give_back(conn)
        again = await conns.lend()
        await again.send_command("ECHO", "fresh")
        assert await again.read_response() == "fresh"
        conns.give_back(again)
    finally:
        await conns.close()


async def test_a_connection_the_server_closed_is_made_again(redis_proc: Process) -> None:
    conns = _connections(redis_proc, limit=1)
    try:
        first = await _client_id(conns)
        admin = aioredis.Redis(port=redis_proc.port)
        assert await admin.client_kill_filter(_id=str(first)) == 1
        await admin.aclose()
        await asyncio.sleep(0.05)
        assert await _client_id(conns) != first
    finally:
        await conns.close()


async def test_the_store_keeps_to_its_connection_bound(redis_proc: Process) -> None:
    admin = aioredis.Redis(port=redis_proc.port)
    before = (await admin.info("clients"))["connected_clients"]
    store = open_store(
        redis_url(redis_proc), max_connections=3, timeout_s=2.0, idempotency_ttl_s=60
    )
    try:
        await asyncio.gather(*(append(store, f"bound{i}:x", 0, "m") for i in range(40)))
        assert (await admin.info("clients"))["connected_clients"] - before == 3
    finally:
        await store.close()
        await admin.aclose()


async def test_a_connect_to_a_redis_that_does_not_answer_times_out_and_frees_its_slot(
    redis_proc: Process,
) -> None:
    conns = _connections(redis_proc, limit=1, wait_s=0.3)
    admin = aioredis.Redis(port=redis_proc.port)
    try:
        await admin.execute_command("CLIENT", "PAUSE", 800, "ALL")  # type: ignore[no-untyped-call]
        started = time.monotonic()
        with pytest.raises(TimeoutError):  # the handshake is never answered
            await conns.lend()
        assert time.monotonic() - started < 0.7
        await asyncio.sleep(0.7)  # the pause ends
        assert await _client_id(conns) > 0  # the slot came back, and its connection works
    finally:
        await conns.close()
        await admin.aclose()
