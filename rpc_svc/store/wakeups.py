"""Who waits for a chat's next message, and what wakes them (long polling).

A send SPUBLISHes the message's send time on its chat's own shard channel
(``im:{<chat>}:w``, in the chat's slot on a cluster; sharded pub/sub works on one Redis
too). While anyone here waits for a chat, im-rpc holds an SSUBSCRIBE to that channel on the
Redis (the cluster master) that serves it: one connection per Redis, not the pool's, shared
by all its channels; channels nobody waits for are dropped every few seconds. Waiting holds
no pooled connection, nothing polls, and im-rpc hears only of the chats someone waits for.
A channel still subscribed is watched again at once (a woken waiter, and its client's next
poll, watch the channels they watched: no lock, no timer, no turn of the event loop).

``watch(chat, cursor)`` yields a future done when a message at or after `cursor` is stored
in the chat (or its subscription broke: the waiter reads again), or None when it cannot
watch now (the Redis cannot be reached; the caller polls). A message before the cursor
wakes nobody: a poll whose cursor no message can reach costs nothing per send. (A message
whose send time cannot be read, from a version that announced something else, wakes every
waiter of its chat.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import NamedTuple

import redis.exceptions as rexc
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot

from im_common.tasks import cancel_and_wait
from rpc_svc.store.keys import wake_channel

log = logging.getLogger(__name__)
_ERRORS = (rexc.RedisError, rexc.RedisClusterException, OSError, TimeoutError)
Watch = asyncio.Future[float] | None  # done with the time (monotonic) the message was heard
SWEEP_S = 5.0  # how often the channels nobody waits for are dropped


class Node(NamedTuple):
    """A Redis server that serves some channels, and how to open a connection to it (with
    the store's own settings: address or socket path, credentials, TLS)."""

    name: str
    connect: Callable[[], AbstractConnection]


Locate = Callable[[str], Awaitable[Node]]  # the Redis that serves a channel


class _Waiters:
    """Futures of the waiting calls, by channel, each with the cursor it waits from."""

    def __init__(self) -> None:
        self.by_name: dict[str, dict[asyncio.Future[float], int]] = {}

    @contextlib.contextmanager
    def add(self, name: str, cursor: int = 0) -> Iterator[asyncio.Future[float]]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.by_name.setdefault(name, {})[future] = cursor
        try:
            yield future
        finally:
            waiters = self.by_name.get(name)
            if waiters is not None:
                waiters.pop(future, None)
                if not waiters:
                    del self.by_name[name]

    def wake(self, name: str, send_time: int | None = None) -> None:
        """Wake the waiters of `name` whose cursor `send_time` reaches (None: all)."""
        now = time.monotonic()
        for future, cursor in self.by_name.get(name, {}).items():
            if not future.done() and (send_time is None or send_time >= cursor):
                future.set_result(now)

    def wake_all(self) -> None:
        for name in list(self.by_name):
            self.wake(name)


class _NodeChannels:
    """The shard channels subscribed on one Redis, over a connection of their own."""

    def __init__(
        self,
        conn: AbstractConnection,
        waiters: _Waiters,
        on_lost: Callable[[_NodeChannels, BaseException], None],
    ) -> None:
        self._conn = conn
        self._waiters = waiters
        self._on_lost = on_lost
        self.channels: dict[str, asyncio.Future[None]] = {}  # done once confirmed
        self.heard: dict[str, int] = {}  # the highest number heard since subscribed (-1: none)
        self._lock = asyncio.Lock()  # SSUBSCRIBE / SUNSUBSCRIBE go out in decision order
        self._task: asyncio.Task[None] | None = None
        # channels whose SSUBSCRIBE is still to go: the first of them starts a task that
        # sends them all in one write once it has the lock (each write is a turn of the loop
        # or more: one a channel made 1,000 watches begun at once, as after a restart, wait
        # up to a second for their turn). A task, not that subscriber: a subscriber can be
        # cancelled (its client gone), and the channels after it would never go out.
        self._unsent: list[str] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def subscribe(self, channel: str, timeout_s: float) -> None:
        """Subscribe to `channel` (once), and wait until the node confirmed it."""
        if _confirmed(self.channels.get(channel)):  # (most watches: no lock, timer or turn)
            return
        confirmed = self.channels.get(channel)
        if confirmed is None:
            confirmed = asyncio.get_running_loop().create_future()
            self.channels[channel] = confirmed
            self.heard[channel] = -1
            self._unsent.append(channel)
            if len(self._unsent) == 1:
                sending = asyncio.create_task(self._send_unsent())
                self._sending.add(sending)  # (the loop holds a task weakly)
                sending.add_done_callback(self._sending.discard)
        await asyncio.wait_for(asyncio.shield(confirmed), timeout_s)

    async def _send_unsent(self) -> None:
        """Send the SSUBSCRIBE of every channel still to go, in one write; on an error each
        of their subscribers learns it (and drops this connection)."""
        async with self._lock:
            unsent, self._unsent = self._unsent, []
            try:
                if self._task is None:
                    await self._conn.connect()  # type: ignore[no-untyped-call]
                    self._task = asyncio.create_task(self._listen())
                await self._write([("SSUBSCRIBE", c) for c in unsent])
            except _ERRORS as exc:
                for channel in unsent:
                    confirmed = self.channels.get(channel)
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_exception(rexc.ConnectionError(str(exc)))

    def _renew(self, channel: str) -> None:
        """Count a subscription in place as made anew (Wakeups.subscription answers another
        object): a wait kept from before it reads again."""
        if _confirmed(self.channels.get(channel)):
            renewed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            renewed.set_result(None)
            self.channels[channel] = renewed

    async def drop_idle(self) -> None:
        """Unsubscribe from the channels nobody waits for: one SUNSUBSCRIBE per slot (a
        cluster refuses one whose channels are in several slots, CROSSSLOT, an error that
        would end this connection and wake every waiter on it)."""
        async with self._lock:
            idle = [
                c for c, ok in self.channels.items() if ok.done() and c not in self._waiters.by_name
            ]
            by_slot: dict[int, list[str]] = {}
            for channel in idle:
                del self.channels[channel]
                self.heard.pop(channel, None)
                by_slot.setdefault(key_slot(channel.encode()), []).append(channel)
            if by_slot:
                await self._write([("SUNSUBSCRIBE", *c) for c in by_slot.values()])

    async def _write(self, commands: list[tuple[str, ...]]) -> None:
        """Send `commands` in one write (each write takes a turn of the loop or more)."""
        await self._conn.send_packed_command(self._conn.pack_commands(commands))

    async def close(self) -> None:
        """Stop listening and sending, and close the connection."""
        for sending in list(self._sending):
            await cancel_and_wait(sending)
        if self._task is not asyncio.current_task():
            await cancel_and_wait(self._task)
        with contextlib.suppress(*_ERRORS):
            await self._conn.disconnect()

    async def _listen(self) -> None:
        try:
            while True:
                # RESP3 (redis-py 8's default): shard messages come as push replies
                reply = await self._conn.read_response(timeout=math.inf, push_request=True)
                kind, channel, *rest = reply
                if kind == "smessage":
                    number = _send_time(rest)
                    if number is None:  # (no number: what was heard before says nothing now)
                        self._renew(channel)
                    elif number > self.heard.get(channel, -1):
                        self.heard[channel] = number
                    self._waiters.wake(channel, number)
                elif kind == "ssubscribe":
                    confirmed = self.channels.get(channel)
                    if confirmed is not None and not confirmed.done():
                        confirmed.set_result(None)
        except _ERRORS as exc:
            for confirmed in self.channels.values():
                if not confirmed.done():
                    confirmed.set_exception(rexc.ConnectionError(str(exc)))
            self._on_lost(self, exc)


def _confirmed(subscription: asyncio.Future[None] | None) -> bool:
    """Whether a subscription is in place (the node confirmed it, and it did not fail)."""
    if subscription is None or not subscription.done() or subscription.cancelled():
        return False
    return subscription.exception() is None


def _send_time(payload: list[object]) -> int | None:
    """The send time a wake-up message announces; None when it announces something else."""
    try:
        return int(str(payload[0]))
    except (IndexError, ValueError):
        return None


class Wakeups:
    """SSUBSCRIBE to a chat's channel, on the Redis that `locate` names, while anyone here
    waits for the chat. A lost connection wakes its channels' waiters (they read again and
    watch anew, on a cluster after `refresh` has the client learn the slots again)."""

    def __init__(self, locate: Locate, refresh: Callable[[], None], timeout_s: float) -> None:
        self._locate = locate
        self._refresh = refresh
        self._timeout_s = timeout_s
        self._waiters = _Waiters()
        self._nodes: dict[str, _NodeChannels] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        self.closed = False
        self.sweep_s = SWEEP_S  # (a test sets it shorter before `start`)

    def start(self) -> None:
        """Be ready to watch; drop idle subscriptions in the background."""
        self._sweeper = asyncio.create_task(self._sweep())
        self.started.set()

    async def close(self) -> None:
        """Unsubscribe everywhere; every waiter is woken. Safe to call twice."""
        self.closed = True
        await cancel_and_wait(self._sweeper)
        self._sweeper = None
        nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            await node.close()
        self.started.clear()
        self._waiters.wake_all()

    @contextlib.asynccontextmanager
    async def watch(self, chat: str, cursor: int = 0) -> AsyncIterator[Watch]:
        """A future done when a message at or after `cursor` is stored in `chat`; None when
        its Redis cannot be subscribed to now (the caller polls: Redis is down, or a
        failover is under way)."""
        async with self.watch_channel(wake_channel(chat), cursor) as future:
            yield future

    @contextlib.asynccontextmanager
    async def watch_channel(self, channel: str, cursor: int = 0) -> AsyncIterator[Watch]:
        """As `watch`, for any shard channel whose messages are numbers (a user's sync
        channel announces its feed's length: a watch from a position is woken by a record
        past it)."""
        with self._waiters.add(channel, cursor) as future:
            yield future if await self._subscribe(channel) else None

    @property
    def subscribed(self) -> int:
        """The channels subscribed now, on every node (safe to read from another thread)."""
        return sum(len(node.channels) for node in list(self._nodes.values()))

    def subscription(self, channel: str) -> object | None:
        """The subscription of `channel` in place now (the node confirmed it), or None. A
        later subscription of the channel (after it was dropped, or its connection lost, or
        a message that is no number came: it wakes every waiter) is another object."""
        found = self._in_place(channel)
        return found[1] if found else None

    def heard(self, channel: str) -> int:
        """The highest number heard on `channel` since its subscription in place was made
        (-1: none, or no subscription in place)."""
        found = self._in_place(channel)
        return found[0].heard.get(channel, -1) if found else -1

    def _in_place(self, channel: str) -> tuple[_NodeChannels, asyncio.Future[None]] | None:
        """The node whose subscription of `channel` is in place, and that subscription."""
        for node in self._nodes.values():
            confirmed = node.channels.get(channel)
            if confirmed is not None and _confirmed(confirmed):
                return node, confirmed
        return None

    async def _subscribe(self, channel: str) -> bool:
        if not self.started.is_set():
            return False
        channels = None
        try:
            node = await self._locate(channel)
            channels = self._nodes.get(node.name)
            if channels is None:
                channels = _NodeChannels(node.connect(), self._waiters, self._lost)
                self._nodes[node.name] = channels
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
            await asyncio.sleep(self.sweep_s)
            for channels in list(self._nodes.values()):
                with contextlib.suppress(*_ERRORS):
                    await channels.drop_idle()
