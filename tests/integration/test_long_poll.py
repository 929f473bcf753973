"""Long polling in the service over the real store: woken by its own chat's message only,
never misses one stored around its read, and times out with an empty page."""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from devtools.procs import redis_server
from im_common.calls import PullCall, SendCall
from rpc_svc.domain.errors import InvalidArgument, Overloaded, StoreUnavailable
from rpc_svc.server import open_store
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from rpc_svc.store.keys import wake_channel
from tests.conftest import ON_EVERY_BACKEND


@asynccontextmanager
async def _listening_service(url: str) -> AsyncIterator[ChatService]:
    """A service on its own store at `url`, listening for new messages, closed after."""
    store = open_store(url, max_connections=4, timeout_s=1.0, idempotency_ttl_s=60)
    store.wakeups.start()
    try:
        yield ChatService(store, 4096)
    finally:
        await store.close()


async def _seconds_to_wake(service: ChatService, chat: str, text: str, settle_s: float) -> float:
    """Long-poll `chat`, send `text` to it once the poll has waited `settle_s`; how long
    after the send the poll answered (with that message, asserted)."""
    cursor = (await service.pull(PullCall(chat, reverse=True, limit=1))).messages
    after = cursor[0]["send_time"] + 1 if cursor else 0
    waiting = asyncio.create_task(service.pull_wait(PullCall(chat, after), 5000))
    await asyncio.sleep(settle_s)
    started = time.monotonic()
    await service.send(SendCall(chat, chat.split(":")[0], text))
    page = await asyncio.wait_for(waiting, 5)
    assert [m["text"] for m in page.messages] == [text]
    return time.monotonic() - started


_chat_ids = itertools.count()
WOKEN_S = 0.2  # a waiter is woken within this; one that polls (every POLL_S = 0.5 s) is not


async def _assert_woken_not_polled(service: ChatService, chat: str, settle_s: float) -> None:
    """Six long polls in a row on `chat`, each answered within WOKEN_S of its message: a
    poll that read again every 0.5 s instead would pass all six once in 250 runs."""
    waits = [await _seconds_to_wake(service, chat, f"w{i}", settle_s) for i in range(6)]
    assert max(waits) < WOKEN_S, waits


@pytest.fixture
async def service(store: RedisStore) -> ChatService:
    """A service whose store listens for new messages (as im-rpc's does)."""
    store.wakeups.start()
    await asyncio.wait_for(store.wakeups.started.wait(), 5)
    return ChatService(store, 4096)


@ON_EVERY_BACKEND
async def test_a_long_poll_answers_when_its_chat_gets_a_message(service: ChatService) -> None:
    waiting = asyncio.create_task(service.pull_wait(PullCall("a:b"), 5000))
    other = asyncio.create_task(service.pull_wait(PullCall("a:c"), 2000))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    sent = await service.send(SendCall("a:b", "a", "wake up"))
    page = await asyncio.wait_for(waiting, 2)
    woke_after = time.monotonic() - started
    assert [m["text"] for m in page.messages] == ["wake up"]
    assert page.next_cursor == sent.send_time + 1
    assert woke_after < 1.0
    await _assert_woken_not_polled(service, "a:b", 0.05)
    assert not other.done()  # another chat's message did not wake it
    unrelated = await other
    assert (unrelated.messages, unrelated.next_cursor) == ([], 0)


@ON_EVERY_BACKEND
async def test_a_long_poll_times_out_with_an_empty_page_at_its_cursor(
    service: ChatService,
) -> None:
    started = time.monotonic()
    page = await service.pull_wait(PullCall("a:b", cursor=12345), 300)
    took = time.monotonic() - started
    assert (page.messages, page.has_more, page.next_cursor) == ([], False, 12345)
    assert 0.25 < took < 1.5


@ON_EVERY_BACKEND
async def test_no_wait_when_there_is_something_or_for_reverse_or_zero(
    service: ChatService,
) -> None:
    await service.send(SendCall("a:b", "a", "already here"))
    quick = [(PullCall("a:b"), 5000), (PullCall("a:x", reverse=True), 5000), (PullCall("a:x"), 0)]
    for call, wait in quick:
        started = time.monotonic()
        await service.pull_wait(call, wait)
        assert time.monotonic() - started < 0.5
    with pytest.raises(InvalidArgument):
        await service.pull_wait(PullCall("a:b"), 30_001)


@ON_EVERY_BACKEND
async def test_a_message_stored_around_the_read_is_never_missed(service: ChatService) -> None:
    rng = random.Random(7)
    for i in range(60):  # a send racing each poll by 0..3 ms, either side of its read
        chat = f"race{i}:x"
        poll = asyncio.create_task(service.pull_wait(PullCall(chat), 3000))
        await asyncio.sleep(rng.uniform(0, 0.003))
        started = time.monotonic()
        await service.send(SendCall(chat, "x", f"m{i}"))
        page = await asyncio.wait_for(poll, 5)
        assert [m["text"] for m in page.messages] == [f"m{i}"]
        assert time.monotonic() - started < 1.5  # answered by the message, not the timeout


async def test_a_redis_restart_answers_the_waiters_and_long_polls_work_after_it(
    tmp_path: Path,
) -> None:
    """(On a cluster, a master's death: tests/e2e/test_redis_cluster.py.)"""
    proc = redis_server(tmp_path).start()
    try:
        async with _listening_service(f"redis://127.0.0.1:{proc.port}/0") as service:
            waiting = asyncio.create_task(service.pull_wait(PullCall("r:s"), 20_000))
            await asyncio.sleep(0.2)
            proc.stop(signal.SIGKILL)
            started = time.monotonic()
            # woken when its subscription broke: it reads again and fails, it does not hang
            with pytest.raises(StoreUnavailable):
                await asyncio.wait_for(waiting, 5)
            assert time.monotonic() - started < 1.5
            proc.start()
            await asyncio.sleep(0.05)  # proc.start blocked the loop: let it see the closed sockets
            await _assert_woken_not_polled(service, "r:s", 0.2)
    finally:
        proc.stop()


async def test_long_polls_work_over_a_unix_socket(tmp_path: Path) -> None:
    """The wake-ups' connection is made like the pool's (here: a socket path, not a port)."""
    sock = tmp_path / "redis.sock"
    proc = redis_server(tmp_path, None, "--unixsocket", str(sock)).start()
    try:
        async with _listening_service(f"unix://{sock}?db=0") as service:
            await _assert_woken_not_polled(service, "u:v", 0.1)
    finally:
        proc.stop()


async def test_past_its_bound_a_long_poll_is_refused_at_once(store: RedisStore) -> None:
    store.wakeups.start()
    service = ChatService(store, 4096, max_waiting=3)
    waits = [asyncio.create_task(service.pull_wait(PullCall(f"w{i}:x"), 5000)) for i in range(3)]
    await asyncio.sleep(0.2)
    assert service.waiting == 3
    started = time.monotonic()
    with pytest.raises(Overloaded, match="3 long polls wait here already; retry later"):
        await service.pull_wait(PullCall("w3:x"), 5000)
    assert time.monotonic() - started < 0.5
    await service.send(SendCall("w9:x", "x", "here"))
    page = await service.pull_wait(PullCall("w9:x"), 5000)  # a page at once: no wait to count
    assert [m["text"] for m in page.messages] == ["here"]
    await service.send(SendCall("w0:x", "x", "wake"))
    assert [m["text"] for m in (await asyncio.wait_for(waits[0], 2)).messages] == ["wake"]
    assert service.waiting == 2  # a woken poll leaves the count
    for task in waits[1:]:
        task.cancel()
    await asyncio.gather(*waits[1:], return_exceptions=True)
    assert service.waiting == 0  # and so does an abandoned one


async def test_closing_the_wakeups_answers_every_waiting_poll_at_once(store: RedisStore) -> None:
    """What SIGTERM does first: the waiting polls answer with what they have, not after
    their wait."""
    store.wakeups.start()
    service = ChatService(store, 4096)
    waits = [asyncio.create_task(service.pull_wait(PullCall(f"c{i}:x"), 20_000)) for i in range(3)]
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await store.wakeups.close()
    pages = await asyncio.wait_for(asyncio.gather(*waits), 5)
    assert time.monotonic() - started < 1.0
    assert [p.messages for p in pages] == [[], [], []]


async def test_watching_a_channel_subscribed_already_takes_no_turn_of_the_loop(
    store: RedisStore,
) -> None:
    """A woken sync watches its channels again before it reads, and its client's next long
    poll does too: a channel the node confirmed already is watched at once (no lock, no
    timer), and that watch is woken like the first."""
    store.wakeups.start()
    entered: list[object] = []

    async def watch_again(release: asyncio.Event) -> None:
        async with store.wakeups.watch("fast:x", 1) as again:
            entered.append(again)
            await release.wait()

    async with store.wakeups.watch("fast:x", 1) as first:
        assert first is not None  # (subscribed and confirmed)
        release = asyncio.Event()
        task = asyncio.create_task(watch_again(release))
        await asyncio.sleep(0)  # one turn: the task's first step, which must not wait
        assert len(entered) == 1
        again = entered[0]
        assert isinstance(again, asyncio.Future)  # (not None: a watch in place)
        await ChatService(store, 4096).send(SendCall("fast:x", "fast", "wake"))
        await asyncio.wait_for(asyncio.gather(first, again), 2)
        release.set()
        await task


async def _watch_until_woken(
    store: RedisStore, chat: str, entered: dict[str, object], release: asyncio.Event | None = None
) -> None:
    """Watch `chat`, note in `entered` what the watch gave once it is in place, then (after
    `release`, when given) wait until it is woken."""
    async with store.wakeups.watch(chat, 1) as woken:
        entered[chat] = woken
        if release is not None:
            await release.wait()
        assert woken is not None
        await woken


async def _watching(entered: dict[str, object], n: int) -> list[str]:
    """Once `n` watches are in place (or after 1 s), the chats whose watch can be woken."""
    for _ in range(100):
        if len(entered) == n:
            break
        await asyncio.sleep(0.01)
    return sorted(c for c, w in entered.items() if isinstance(w, asyncio.Future))


@ON_EVERY_BACKEND
async def test_watches_begun_at_once_subscribe_together_and_each_is_woken(
    store: RedisStore,
) -> None:
    """Many watches of new channels begun in one turn (clients coming back after a restart)
    go out as one write per Redis, not one each behind a lock: every one is in place (a
    channel left out would time out after the store's timeout, then poll), and each is woken
    by its own chat's message."""
    store.wakeups.start()
    chats = [f"herd{i}:x" for i in range(60)]
    entered: dict[str, object] = {}
    release = asyncio.Event()
    tasks = [asyncio.create_task(_watch_until_woken(store, c, entered, release)) for c in chats]
    assert await _watching(entered, len(chats)) == sorted(chats)
    assert all(store.wakeups.subscription(wake_channel(c)) is not None for c in chats)
    release.set()
    service = ChatService(store, 4096)
    for chat in chats:
        await service.send(SendCall(chat, "x", "wake"))
    await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def test_a_watch_given_up_before_its_subscription_went_out_leaves_the_others_watched(
    store: RedisStore,
) -> None:
    """A watcher whose client leaves (its task cancelled) while the subscriptions of its
    turn are still to go out does not take the others' with it: they go out all the same,
    and each is woken. (On one Redis, where finding the node takes no turn: after one turn
    the first subscription is being written on a new connection, and the second and third
    wait to go out; the second watcher is the one given up.)"""
    store.wakeups.start()
    entered: dict[str, object] = {}
    chats = [f"gone{next(_chat_ids)}:x" for _ in range(3)]
    tasks = [asyncio.create_task(_watch_until_woken(store, c, entered)) for c in chats]
    await asyncio.sleep(0)  # (each has asked for its subscription: none has gone out)
    tasks[1].cancel()
    kept = [chats[0], chats[2]]
    assert await _watching(entered, 2) == kept
    service = ChatService(store, 4096)
    for chat in kept:
        await service.send(SendCall(chat, "x", "wake"))
    await asyncio.wait_for(asyncio.gather(tasks[0], tasks[2]), 5)


@ON_EVERY_BACKEND
async def test_channels_nobody_waits_for_are_dropped_and_watched_again_later(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """The sweep unsubscribes the channels whose waits are over (Redis counts no subscriber
    of them), keeps one still waited for on the same Redis (its subscription not made
    again, its waiter woken as before), and a later wait on a dropped channel subscribes
    again. The idle channels are in several slots of the kept one's node: a cluster refuses
    one SUNSUBSCRIBE of them all (CROSSSLOT), which ended the node's connection and woke
    every waiter on it at each sweep."""
    store.wakeups.sweep_s = 0.1
    store.wakeups.start()
    service = ChatService(store, 4096)
    kept = "d1:x"
    idle = await _chats_on_the_node_of(redis_client, kept, 3)
    waiting = asyncio.create_task(service.pull_wait(PullCall(kept), 5000))
    woken = [_seconds_to_wake(service, chat, "once", 0.05) for chat in idle]  # (together:
    assert max(await asyncio.gather(*woken)) < WOKEN_S  # one sweep finds them all over)
    watched = store.wakeups.subscription(wake_channel(kept))
    await asyncio.sleep(0.4)  # (sweeps)
    assert [store.wakeups.subscription(wake_channel(chat)) for chat in idle] == [None] * 3
    assert watched is not None
    assert store.wakeups.subscription(wake_channel(kept)) is watched  # (not made again)
    for chat in idle:
        assert await redis_client.spublish(wake_channel(chat), "0") == 0  # (no subscriber)
    await service.send(SendCall(kept, "x", "still watched"))
    page = await asyncio.wait_for(waiting, 2)
    assert [m["text"] for m in page.messages] == ["still watched"]
    assert await _seconds_to_wake(service, idle[0], "again", 0.05) < WOKEN_S


async def _chats_on_the_node_of(redis_client: aioredis.Redis, chat: str, n: int) -> list[str]:
    """`n` chats whose wake channels are in other slots than each other's and `chat`'s,
    all served by the Redis that serves `chat`'s (on one Redis: any)."""

    def node(c: str) -> object:
        if isinstance(redis_client, aioredis.RedisCluster):
            return redis_client.get_node_from_key(wake_channel(c)).name
        return None

    if isinstance(redis_client, aioredis.RedisCluster):
        await redis_client.initialize()  # (the slots' owners known)
    slots, found = {key_slot(wake_channel(chat).encode())}, []
    for i in range(1000):
        other = f"d{i + 2}:x"
        slot = key_slot(wake_channel(other).encode())
        if slot not in slots and node(other) == node(chat):
            slots.add(slot)
            found.append(other)
            if len(found) == n:
                return found
    raise AssertionError("no such chats")


async def test_two_messages_heard_at_once_wake_a_waiter_and_the_listener_goes_on(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """Two announcements read in one go, both past a waiter's cursor: the first wakes it,
    the second finds it woken already (and not yet gone), and the listener goes on to wake
    the next waiter."""
    store.wakeups.start()
    channel = wake_channel("t1:x")
    async with store.wakeups.watch_channel(channel, 5) as first:
        assert first is not None
        async with redis_client.pipeline(transaction=False) as pipe:
            pipe.spublish(channel, "5")
            pipe.spublish(channel, "6")
            await pipe.execute()
        await asyncio.wait_for(first, 2)
    async with store.wakeups.watch_channel(channel, 7) as second:
        assert second is not None
        await redis_client.spublish(channel, "7")
        await asyncio.wait_for(second, WOKEN_S)


async def _commands(redis_client: aioredis.Redis) -> int:
    """Commands Redis has processed so far (this INFO among them)."""
    stats = await redis_client.info("stats")
    return int(stats["total_commands_processed"])


async def test_long_polls_woken_by_one_message_share_one_read(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """Six long polls of one chat from one cursor, woken by one message: they take one read's
    answer (what Redis processes for the send and the wake is the same as for one poll)."""
    store.wakeups.start()
    service = ChatService(store, 4096)
    processed: list[int] = []
    for polls in (1, 1, 6):  # (the first: scripts loaded, not counted)
        chat = f"s{len(processed)}:x"
        waits = [asyncio.create_task(service.pull_wait(PullCall(chat), 5000)) for _ in range(polls)]
        await asyncio.sleep(0.1)
        before = await _commands(redis_client)
        await service.send(SendCall(chat, "x", "one"))
        pages = await asyncio.wait_for(asyncio.gather(*waits), 2)
        processed.append(await _commands(redis_client) - before)
        assert [[m["text"] for m in page.messages] for page in pages] == [["one"]] * polls
    assert processed[2] == processed[1], processed
