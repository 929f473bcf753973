"""The single-Redis store's connections: one lent per pipeline, at most `limit` open.

redis-py's BlockingConnectionPool cost im-rpc about 50 µs per pipeline (a condition and a
timeout per acquire, observability records, an event dispatched per release), and its
connections time every write with a Task (`wait_for`) and every reply with a timeout
context of its own. Here a connection is lent from a list, the most recently used first,
checked as redis-py's pool checks its own; connections have no socket timeout, and the
store times each whole round trip once instead (see perf/README.md, step 9).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis.exceptions as rexc
from redis.asyncio.connection import AbstractConnection

from rpc_svc.store.slots import Slots


class Connections:
    """At most `limit` connections made by `make`; a caller past that waits up to `wait_s`
    for one to come back, then gets ConnectionError (as redis-py's blocking pool does)."""

    def __init__(self, make: Callable[[], AbstractConnection], limit: int, wait_s: float) -> None:
        self._make = make
        self._wait_s = wait_s
        self._slots = Slots(max(1, limit))
        self._idle: list[AbstractConnection] = []
        self._made: list[AbstractConnection] = []

    async def lend(self) -> AbstractConnection:
        """A connection ready for a command; give it back with `give_back`."""
        if self._slots.free:
            await self._slots.acquire()  # returns without waiting (or a timer)
        else:
            try:
                async with asyncio.timeout(self._wait_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise rexc.ConnectionError("No connection available.") from None
        if self._idle:
            conn = self._idle.pop()
        else:
            conn = self._make()
            self._made.append(conn)
        try:
            await _ready(conn, self._wait_s)
        except BaseException:
            self.give_back(conn)
            raise
        return conn

    def give_back(self, conn: AbstractConnection) -> None:
        """Return a lent connection (a broken one too: it connects again when next lent)."""
        self._idle.append(conn)
        self._slots.release()

    @property
    def open(self) -> int:
        """How many connections are connected now."""
        return sum(1 for conn in self._made if conn.is_connected)

    async def close(self) -> None:
        """Disconnect every connection made."""
        for conn in self._made:
            await conn.disconnect()


async def _ready(conn: AbstractConnection, wait_s: float) -> None:
    """Connect `conn` if it is not, within `wait_s` (TimeoutError); one the server closed,
    or with a reply nobody read, is made again (a command written to it would fail, or
    read the wrong reply)."""
    try:
        if conn.is_connected and not await conn.can_read():
            return  # the usual case, without a timer
    except (rexc.ConnectionError, OSError):
        pass
    async with asyncio.timeout(wait_s):  # its handshake has no socket timeout
        await conn.disconnect()
        await conn.connect()  # type: ignore[no-untyped-call]
        if await conn.can_read():
            raise rexc.ConnectionError("Connection not ready")
