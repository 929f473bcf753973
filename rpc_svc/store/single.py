"""The store on one Redis: every key is on it, so a script may name any key, a membership
change writes the group and the member's side in one script, and a batch of operations is
one pipeline on one connection (lent by rpc_svc.store.connections)."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as rexc
from hiredis import pack_command
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from rpc_svc.domain.errors import StoreError
from rpc_svc.store.base import COMPACT_LIMIT, RedisStore, guard, store_error
from rpc_svc.store.commands.plan import Command, Plan
from rpc_svc.store.connections import Connections
from rpc_svc.store.wakeups import Node, Wakeups


class SingleRedisStore(RedisStore):
    """The store on the Redis at a URL."""

    def __init__(self, conns: Connections, wakeups: Wakeups, plan: Plan, **rest: Any) -> None:
        super().__init__(wakeups, plan, **rest)
        self._conns = conns

    @classmethod
    def from_url(
        cls, url: str, plan: Plan, max_connections: int, timeout_s: float, **rest: Any
    ) -> SingleRedisStore:
        """A store with at most `max_connections` connections to the Redis at `url`."""
        # The pool only reads the URL (scheme, socket, credentials) into connection settings.
        # A command is never sent twice (no retries: a re-sent script could store a message
        # twice); maintenance notifications off: redis-py 8's default skips the check that
        # replaces a connection closed by the server before use.
        url_pool = aioredis.ConnectionPool.from_url(
            url,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
        )
        make, settings = url_pool.connection_class, url_pool.connection_kwargs
        # a round trip is timed as a whole (_round_trip), not each write and reply
        conns = Connections(
            partial(make, **{**settings, "socket_timeout": None}), max_connections, timeout_s
        )
        # the wake-ups' connection is made like the others, but not counted among them
        server = Node("redis", partial(make, **settings))

        async def locate(channel: str) -> Node:
            return server

        wakeups = Wakeups(locate, lambda: None, timeout_s)
        return cls(conns, wakeups, plan._replace(user_side=True), timeout_s=timeout_s, **rest)

    async def pipeline(
        self, commands: list[Command], extra: list[tuple[Command, Any]]
    ) -> list[Any]:
        """One round trip on one connection: `commands`, then the `extra` ones."""
        conn = await guard(self._conns.lend())
        try:
            every = commands + [c for c, _ in extra]
            return await guard(_round_trip(conn, every, self.timeout_s))
        finally:
            self._conns.give_back(conn)

    async def nodes_of(self, commands: dict[int, Command]) -> dict[int, Any]:
        """Every command goes to the one Redis."""
        return dict.fromkeys(commands)

    async def load(self, script: str) -> None:
        """Load `script` into the Redis."""
        await self._command("SCRIPT", "LOAD", script)

    async def ping(self) -> bool:
        """True when the Redis answers; StoreError otherwise."""
        await self._command("PING")
        return True

    async def compact_record_limit(self) -> int | None:
        """Redis's `hash-max-listpack-value`, or None when it cannot be read."""
        try:
            reply = await self._command("CONFIG", "GET", COMPACT_LIMIT)
            return int(reply[COMPACT_LIMIT] if isinstance(reply, dict) else reply[1])
        except (StoreError, LookupError, ValueError):
            return None

    async def close(self) -> None:
        """Close every connection and the subscriptions."""
        await self.wakeups.close()
        await self._conns.close()

    async def _command(self, *command: Any) -> Any:
        """The reply of one command; an error reply raised as StoreError."""
        (reply,) = await self.pipeline([command], [])
        if isinstance(reply, Exception):
            raise store_error(reply)
        return reply


async def _round_trip(
    conn: AbstractConnection, commands: list[Command], timeout_s: float
) -> list[Any]:
    """Pipeline `commands` on `conn`, all replies read within `timeout_s` (TimeoutError):
    an error reply is kept in its place as an exception."""
    try:
        # hiredis packs in C; redis-py's asyncio pack_commands is pure Python (24% of a batch)
        payload = b"".join([pack_command(command) for command in commands])
        replies: list[Any] = []
        async with asyncio.timeout(timeout_s):
            await conn.send_packed_command(payload, check_health=False)
            for _ in commands:
                try:
                    replies.append(await conn.read_response())
                except rexc.ResponseError as exc:
                    replies.append(exc)
        return replies
    except BaseException:
        await conn.disconnect()  # replies still unread would be out of step with the next user
        raise
