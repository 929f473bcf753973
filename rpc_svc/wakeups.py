"""Who waits for a chat's next message, and what wakes them (long polling).

On one Redis every send PUBLISHes its stream key on WAKE_CHANNEL, and each im-rpc holds
one subscription to it (Wakeups). On a Redis Cluster a send SPUBLISHes on its chat's own
shard channel, in the chat's slot, and im-rpc subscribes to a chat's channel on the
master of that slot while someone waits for the chat (ShardedWakeups). Either way,
waiting holds no pooled connection and nothing polls while the subscription stands.

``watch(chat)`` yields a future done when a message is stored in the chat (or every
waiter is woken: a lost subscription, a stop), or None when it cannot watch now (the
subscription is down): the caller then polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection

from rpc_svc.store_keys import WAKE_CHANNEL, messages_key, wake_channel

log = logging.getLogger(__name__)
_ERRORS = (rexc.RedisError, rexc.RedisClusterException, OSError, TimeoutError)
Watch = asyncio.Future[None] | None


class WakeupSource(Protocol):
    """What the chat service needs of wake-ups."""

    subscribed: asyncio.Event
    closed: bool  # stopped for good: long polls answer now

    def start(self) -> None:
        """Begin listening."""

    async def close(self) -> None:
        """Stop listening; every waiter is woken."""

    def watch(self, chat: str) -> contextlib.AbstractAsyncContextManager[Watch]:
        """A future done when `chat` has a new message; None when it cannot watch now."""


class _Waiters:
    """Futures of the waiting calls, by channel (or stream key)."""

    def __init__(self) -> None:
        self.by_name: dict[str, set[asyncio.Future[None]]] = {}

    @contextlib.contextmanager
    def add(self, name: str) -> Any:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.by_name.setdefault(name, set()).add(future)
        try:
            yield future
        finally:
            waiters = self.by_name.get(name)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self.by_name[name]

    def wake(self, name: str) -> None:
        for future in self.by_name.get(name, ()):
            if not future.done():
                future.set_result(None)

    def wake_all(self) -> None:
        for name in list(self.by_name):
            self.wake(name)


class Wakeups:
    """One subscription to WAKE_CHANNEL per process (its own connection, not the pool's)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._waiters = _Waiters()
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.closed = False

    def start(self) -> None:
        """Subscribe in the background (and again after a lost connection)."""
        self._task = asyncio.create_task(self._listen())

    async def close(self) -> None:
        """Stop listening; every waiter is woken (and waits no more). Safe to call twice."""
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._client.aclose()
        self.subscribed.clear()
        self._waiters.wake_all()

    @contextlib.asynccontextmanager
    async def watch(self, chat: str) -> AsyncIterator[Watch]:
        """A future done when a message is stored in `chat` (or waiters are all woken)."""
        with self._waiters.add(messages_key(chat)) as future:
            yield future if self.subscribed.is_set() else None

    async def _listen(self) -> None:
        failing = False
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(WAKE_CHANNEL)
                self.subscribed.set()
                self._waiters.wake_all()  # what was stored while not subscribed is read again
                if failing:
                    log.info("subscribed to %s again", WAKE_CHANNEL)
                failing = False
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._waiters.wake(message["data"])
            except (rexc.RedisError, OSError) as exc:
                if not failing:
                    log.warning("lost the %s subscription, retrying: %s", WAKE_CHANNEL, exc)
                failing = True
            finally:
                self.subscribed.clear()
                self._waiters.wake_all()
                with contextlib.suppress(rexc.RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(0.5)


class _NodeChannels:
    """The shard channels subscribed on one cluster node, over a connection of their own."""

    def __init__(self, conn: Connection, waiters: _Waiters, on_lost: Any) -> None:
        self._conn = conn
        self._waiters = waiters
        self._on_lost = on_lost
        self.channels: dict[str, asyncio.Future[None]] = {}  # done once confirmed
        self._lock = asyncio.Lock()  # SSUBSCRIBE / SUNSUBSCRIBE go out in decision order
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, channel: str, timeout_s: float) -> None:
        """Subscribe to `channel` (once), and wait until the node confirmed it."""
        async with self._lock:
            confirmed = self.channels.get(channel)
            if confirmed is None:
                confirmed = asyncio.get_running_loop().create_future()
                self.channels[channel] = confirmed
                if self._task is None:
                    await self._conn.connect()  # type: ignore[no-untyped-call]
                    self._task = asyncio.create_task(self._listen())
                await self._conn.send_command("SSUBSCRIBE", channel)
        await asyncio.wait_for(asyncio.shield(confirmed), timeout_s)

    async def drop_idle(self) -> None:
        """Unsubscribe from the channels nobody waits for."""
        async with self._lock:
            idle = [
                c for c, ok in self.channels.items() if ok.done() and c not in self._waiters.by_name
            ]
            for channel in idle:
                del self.channels[channel]
            if idle:
                await self._conn.send_command("SUNSUBSCRIBE", *idle)

    async def close(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(*_ERRORS):
            await self._conn.disconnect()

    async def _listen(self) -> None:
        try:
            while True:
                # RESP3 (redis-py 8's default): shard messages come as push replies
                reply = await self._conn.read_response(timeout=math.inf, push_request=True)
                kind, channel, *_ = reply
                if kind == "smessage":
                    self._waiters.wake(channel)
                elif kind == "ssubscribe":
                    confirmed = self.channels.get(channel)
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
        except _ERRORS as exc:
            for confirmed in self.channels.values():
                if not confirmed.done():
                    confirmed.set_exception(rexc.ConnectionError(str(exc)))
            self._on_lost(self, exc)


class ShardedWakeups:
    """Wake-ups on a Redis Cluster: SSUBSCRIBE to a chat's channel on its slot's master
    while anyone here waits for the chat; idle channels are dropped every few seconds.
    A lost node wakes its channels' waiters (they read again and watch on the new master)."""

    def __init__(
        self, cluster: RedisCluster, refresh: Callable[[], None], timeout_s: float, **connect: Any
    ) -> None:
        self._cluster = cluster
        self._refresh = refresh  # have the cluster client learn the slots again
        self._timeout_s = timeout_s
        self._connect = connect  # credentials and timeouts for the nodes' connections
        self._waiters = _Waiters()
        self._nodes: dict[str, _NodeChannels] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.closed = False

    def start(self) -> None:
        """Be ready to watch; drop idle subscriptions in the background."""
        self._sweeper = asyncio.create_task(self._sweep())
        self.subscribed.set()

    async def close(self) -> None:
        """Unsubscribe everywhere; every waiter is woken. Safe to call twice."""
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            await node.close()
        self.subscribed.clear()
        self._waiters.wake_all()

    @contextlib.asynccontextmanager
    async def watch(self, chat: str) -> AsyncIterator[Watch]:
        """A future done when a message is stored in `chat`; None when its node cannot be
        subscribed to now (the caller polls; a failover is under way)."""
        channel = wake_channel(chat)
        with self._waiters.add(channel) as future:
            yield future if await self._subscribe(channel) else None

    async def _subscribe(self, channel: str) -> bool:
        if not self.subscribed.is_set():
            return False
        channels = None
        try:
            await self._cluster.initialize()  # learns the slots on first use
            node = self._cluster.get_node_from_key(channel)
            assert node is not None
            channels = self._nodes.get(node.name)
            if channels is None:
                conn = Connection(
                    host=node.host, port=node.port, decode_responses=True, **self._connect
                )
                channels = self._nodes[node.name] = _NodeChannels(conn, self._waiters, self._lost)
            await channels.subscribe(channel, self._timeout_s)
        except _ERRORS as exc:
            log.warning("cannot subscribe to %s: %s", channel, exc)
            if channels is not None:  # a connection that failed (or is too slow) is dropped
                self._lost(channels, exc)
            self._refresh()  # a failover moves the slots
            return False
        return True

    def _lost(self, channels: _NodeChannels, exc: BaseException) -> None:
        """Forget a node's connection: its waiters read again and subscribe anew."""
        for name, known in list(self._nodes.items()):
            if known is channels:
                del self._nodes[name]
                log.warning("lost the shard subscriptions on %s: %s", name, exc)
                closing = asyncio.create_task(channels.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        for channel in channels.channels:
            self._waiters.wake(channel)
        self._refresh()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(5)
            for channels in list(self._nodes.values()):
                with contextlib.suppress(*_ERRORS):
                    await channels.drop_idle()
