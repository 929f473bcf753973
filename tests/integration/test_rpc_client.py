"""The gateway's RpcClient against a real im-rpc server (in process) and a dead address."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import pytest
import redis.asyncio as aioredis
from grpclib.const import Status

from devtools.procs import free_port, listening_socket
from http_svc.batcher import _encode, split
from http_svc.errors import RpcFailure
from http_svc.instances import Instance
from http_svc.rpc_client import RpcClient
from im_common.batch_messages import BatchReplyMessage
from im_common.calls import (
    Call,
    ChatsCall,
    EditCall,
    PullCall,
    ReadCall,
    RecallCall,
    SendCall,
    SyncCall,
    encode,
)
from im_common.tasks import start_now
from rpc_svc.config import Settings
from rpc_svc.edge.servicer import InFlight
from rpc_svc.healthcheck import serving
from rpc_svc.server import build_server
from rpc_svc.store.base import RedisStore
from rpc_svc.store.keys import retry_keys_key


@pytest.fixture
async def live(store: RedisStore) -> AsyncIterator[str]:
    """The address of a real im-rpc server on the test store."""
    sock = listening_socket()
    server = build_server(Settings(), store, InFlight())
    await server.start(sock=sock)
    yield f"127.0.0.1:{sock.getsockname()[1]}"
    server.close()
    await server.wait_closed()


async def test_calls_to_a_dead_instance_are_retried_on_a_live_one(live: str) -> None:
    retried: list[str] = []
    dead = f"127.0.0.1:{free_port()}"
    client = RpcClient([dead, live], 1, 2.0, observe_retry=retried.append)
    try:
        for i in range(6):
            sent = orjson.loads(await client.call(SendCall("a:b", "a", f"m{i}")))
            assert sent["chat"] == "a:b"
        page = orjson.loads(await client.call(PullCall("a:b", 0, 100)))
        assert [m["text"] for m in page["messages"]] == [f"m{i}" for i in range(6)]
        # the dead one was tried once, then skipped while marked down (1 s): the calls take
        # turns, so without that every other one would be retried
        assert len(retried) == 1, retried
        assert await client.ready()
    finally:
        client.close()


@asynccontextmanager
async def _listener(handle_s: float | None) -> AsyncIterator[str]:
    """A TCP server that takes connections and never answers: it closes each after
    `handle_s` seconds (an instance that dies mid-call), or holds it (None: one that hangs)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(reader.read(-1), handle_s)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 1)


async def test_a_retry_gets_what_is_left_of_the_first_deadline() -> None:
    retried: list[str] = []
    async with _listener(1.2) as dies, _listener(None) as hangs:
        client = RpcClient([dies, hangs], 1, 2.0, observe_retry=retried.append)
        started = time.monotonic()
        try:
            with pytest.raises(RpcFailure) as failure:
                await client.call(PullCall("a:b", 0, 10))
        finally:
            client.close()
    took = time.monotonic() - started
    # the first instance failed after 1.2 s; the retry had the 0.8 s left, not 2 s more
    assert (failure.value.status, len(retried)) == (Status.DEADLINE_EXCEEDED, 1)
    assert 1.9 < took < 2.6


async def test_a_send_retried_with_its_key_is_stored_once(live: str) -> None:
    client = RpcClient([live], 1, 2.0)
    try:
        first = await client.call(SendCall("a:b", "a", "once", retry_key="k-1"))
        again = await client.call(SendCall("a:b", "a", "once", retry_key="k-1"))
        page = orjson.loads(await client.call(PullCall("a:b", 0, 100)))
    finally:
        client.close()
    assert first == again
    assert [m["text"] for m in page["messages"]] == ["once"]


async def test_an_edit_is_never_retried_on_another_instance_and_a_recall_is(live: str) -> None:
    """A second edit would be another edit (a later edited_at): the gateway does not run it
    again; a recall changes nothing the second time, so it is retried like a read."""
    alone = RpcClient([live], 1, 2.0)
    retried: list[str] = []
    try:
        sent = orjson.loads(await alone.call(SendCall("a:b", "a", "first")))["send_time"]
        edits = RpcClient([f"127.0.0.1:{free_port()}", live], 1, 2.0, observe_retry=retried.append)
        try:
            with pytest.raises(RpcFailure) as failure:
                await edits.call(EditCall("a:b", "a", sent, "second"))
        finally:
            edits.close()
        assert (failure.value.status, retried) == (Status.UNAVAILABLE, [])
        page = orjson.loads(await alone.call(PullCall("a:b", 0, 10)))
        assert [m["text"] for m in page["messages"]] == ["first"]
        recalls = RpcClient(
            [f"127.0.0.1:{free_port()}", live], 1, 2.0, observe_retry=retried.append
        )
        try:
            answer = orjson.loads(await recalls.call(RecallCall("a:b", "a", sent)))
        finally:
            recalls.close()
        assert (answer["recalled"], retried) == (True, ["batch_stream"])
    finally:
        alone.close()


async def test_sends_get_a_key_when_there_is_another_instance_to_retry_on(
    live: str, redis_client: aioredis.Redis
) -> None:
    alone = RpcClient([live], 1, 2.0)
    try:
        await alone.call(SendCall("a:b", "a", "no retry possible"))
        assert not await redis_client.exists(retry_keys_key("a:b"))
        alone.set_addrs([live, f"127.0.0.1:{free_port()}"])
        await alone.call(SendCall("a:b", "a", "retry possible"))
        assert await redis_client.zcard(retry_keys_key("a:b")) == 1
    finally:
        alone.close()


@pytest.mark.parametrize("retry", [True, False])
async def test_a_call_that_may_not_be_retried_is_not(live: str, retry: bool) -> None:
    dead = f"127.0.0.1:{free_port()}"
    client = RpcClient([dead, live], 1, 2.0)  # the first pick is `dead`
    attempts: list[str] = []

    async def pull(instance: Instance, channel: int, seconds: float) -> object:
        attempts.append(instance.addr)
        return await instance.streams[channel].call(encode([PullCall("a:b")]), seconds)

    try:
        if retry:
            await client._on_any("pull", pull, retry=True)
            assert attempts == [dead, live]
        else:
            with pytest.raises(RpcFailure):
                await client._on_any("pull", pull, retry=False)
            assert attempts == [dead]
    finally:
        client.close()


async def test_every_send_gets_a_key_of_its_own() -> None:
    client = RpcClient([], 1, 1.0)
    keys = {client.retry_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(0 < len(k) <= 64 for k in keys)
    client.close()


async def test_without_any_live_instance_calls_fail_unavailable_fast() -> None:
    nobody = RpcClient([], 1, 1.0)
    with pytest.raises(RpcFailure, match="no im-rpc instance") as info:
        await nobody.call(PullCall("a:b", 0, 10))
    assert info.value.status is Status.UNAVAILABLE
    assert not await nobody.ready()
    dead = RpcClient([f"127.0.0.1:{free_port()}"], 1, 1.0)
    try:
        with pytest.raises(RpcFailure) as info:
            await dead.call(SendCall("a:b", "a", "x"))
        assert info.value.status is Status.UNAVAILABLE
    finally:
        dead.close()


async def test_the_container_healthcheck_asks_the_health_service(live: str) -> None:
    host, _, port = live.rpartition(":")
    assert await serving(host, int(port))
    assert not await serving("127.0.0.1", free_port(), timeout_s=1)


async def test_a_full_batch_goes_out_before_the_loop_turn_ends(live: str) -> None:
    batches: list[int] = []
    client = RpcClient([live], 1, 2.0, batch_max=2, observe_batch=batches.append)
    try:
        sends = [start_now(client.call(SendCall("a:b", "a", f"m{i}"))) for i in range(2)]
        assert batches == [2]  # written by the second send's own step, not at the turn's end
        sends += [start_now(client.call(SendCall("a:b", "a", f"m{i}"))) for i in range(2, 5)]
        assert batches == [2, 2]
        answers = [orjson.loads(body) for body in await asyncio.gather(*sends)]
        assert batches == [2, 2, 1]  # the rest at the end of the turn
        page = orjson.loads(await client.call(PullCall("a:b", 0, 100)))
    finally:
        client.close()
    stored = {m["text"]: m["send_time"] for m in page["messages"]}  # concurrent: any order
    assert stored == {f"m{i}": a["send_time"] for i, a in enumerate(answers)}


async def test_a_call_that_cannot_be_encoded_fails_alone_in_its_batch(live: str) -> None:
    client = RpcClient([live], 1, 2.0)
    try:
        calls = [
            client.call(SendCall("a:b", "a", "before")),
            client.call(SendCall("a:b", "a", "\ud800")),  # a lone surrogate: no UTF-8 for it
            client.call(PullCall("a:b", 0, 10)),
            client.call(SendCall("a:b", "b", "after")),
        ]
        answers = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        client.close()
    bad = answers[1]
    assert isinstance(bad, RpcFailure)
    assert (bad.status, bad.to_api_error().code) == (Status.INVALID_ARGUMENT, "invalid_utf8")
    before, _, page, after = (a if isinstance(a, bytes) else b"{}" for a in answers)
    assert [orjson.loads(a).get("chat") for a in (before, after)] == ["a:b", "a:b"]
    assert "messages" in orjson.loads(page)


async def test_every_call_to_an_instance_that_hangs_ends_at_its_deadline() -> None:
    async with _listener(None) as hangs:
        client = RpcClient([hangs], 1, 0.5)
        calls = {
            "send": client.call(SendCall("a:b", "a", "x", "k")),
            "pull": client.call(PullCall("a:b", 0, 10)),
            "chats": client.call(ChatsCall("a", 0, 10)),
            "read": client.call(ReadCall("a:b", "a", 1)),
            "wait": client.wait(PullCall("a:b", 0, 10, False, 300)),  # its wait, then the deadline
            "sync": client.call(SyncCall("a", "", 10)),
        }
        started = time.monotonic()
        try:
            answers = await asyncio.gather(*calls.values(), return_exceptions=True)
            ready = await client.ready()
        finally:
            client.close()
        took = time.monotonic() - started
    for name, answer in zip(calls, answers, strict=True):
        assert isinstance(answer, RpcFailure), name
        assert (name, answer.status) == (name, Status.DEADLINE_EXCEEDED)
    assert ready is False
    assert took < 2.5  # 0.8 s for the long poll, 0.5 s for the health check, and slack


def test_a_batch_reply_of_the_wrong_size_is_an_upstream_error() -> None:
    reply = BatchReplyMessage(b"[[0, 2]]", b"{}", 1)
    with pytest.raises(RpcFailure) as failure:
        split(reply, 2)
    assert (failure.value.status, failure.value.to_api_error().code) == (
        Status.INTERNAL,
        "upstream_error",
    )
    assert failure.value.message == "upstream_error: batch reply of the wrong size"
    ok, bad = split(BatchReplyMessage(b"[[0, 2], [3, 4]]", b"{}oops", 1), 2)
    assert ok == b"{}"
    assert isinstance(bad, RpcFailure)
    assert (bad.status, bad.message) == (Status.INVALID_ARGUMENT, "oops")


async def test_a_long_poll_may_wait_longer_than_the_rpc_deadline(live: str) -> None:
    client = RpcClient([live], 1, 0.3)  # 0.3 s per call; the poll waits 0.8 s
    started = time.monotonic()
    try:
        page = orjson.loads(await client.wait(PullCall("quiet:x", 0, 10, False, 800)))
    finally:
        client.close()
    assert page == {"messages": [], "has_more": False, "next_cursor": 0}
    assert 0.7 < time.monotonic() - started < 1.5


async def test_a_lone_dead_instance_is_unavailable_for_every_call() -> None:
    client = RpcClient([f"127.0.0.1:{free_port()}"], 1, 1.0)
    try:
        for call in (
            client.call(SendCall("a:b", "a", "x", "with-a-key")),  # keyed: it could be retried
            client.call(PullCall("a:b", 0, 10)),
            client.call(ChatsCall("a", 0, 10)),
        ):
            with pytest.raises(RpcFailure) as failure:
                await call
            assert failure.value.status is Status.UNAVAILABLE
    finally:
        client.close()


async def test_a_bad_call_whose_caller_left_does_not_stop_its_batch() -> None:
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[bytes] = loop.create_future()
    gone.cancel()  # its HTTP client went away before the batch went out
    waiting: asyncio.Future[bytes] = loop.create_future()
    batch: list[tuple[Call, asyncio.Future[bytes], bool, str]] = [
        (SendCall("a:b", "a", "\ud800"), gone, True, ""),
        (PullCall("a:b"), waiting, True, ""),
    ]
    calls, kept = _encode(batch)
    assert orjson.loads(calls) == [["pull", "a:b", 0, 0, False, 0, ""]]
    assert [p[1] for p in kept] == [waiting]
    assert not waiting.done()
