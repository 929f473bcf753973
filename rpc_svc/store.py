"""The message store: Redis, one stream per chat.

Keys (all of a chat's keys share the hash tag ``{<chat>}``, so they live in one
Redis Cluster slot and one script may touch them together):

    im:{<chat>}:m      stream of the chat's messages
    im:{<chat>}:idem   sorted set: "<role>:<client_msg_id>" -> send_time (24 h)
    im:{<chat>}:retry  sorted set: "<role>:<retry_key>" -> send_time (60 s): the keys
                       gateways put on sends without a client_msg_id, so that a send
                       retried on another instance is not stored twice

A message is one stream entry. Its ID is derived from its ``send_time`` (µs):
``<send_time // 1000>-<send_time % 1000>``, so IDs sort as send times do and a
cursor is an ID. Its single field ``m`` holds the sender's role digit (0 or 1:
which member of the chat) followed by the text; the chat and the member names
are known from the key and are not stored per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar, cast

import redis.asyncio as aioredis
import redis.exceptions as rexc
from hiredis import pack_command
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from rpc_svc.chat import Entry
from rpc_svc.errors import StoreError, StoreTimeout, StoreUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)
_Rows = list[tuple[str, list[str]]]  # an XRANGE reply: [id, [field, value, ...]] per entry

_FIELD = "m"
WAKE_CHANNEL = "im:wake"


def _tag(chat: str) -> str:
    # Braces would end the hash tag early; '%' is escaped so the mapping stays one-to-one.
    return chat.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


def messages_key(chat: str) -> str:
    """The stream key of a canonical chat."""
    return f"im:{{{_tag(chat)}}}:m"


def idempotency_key(chat: str) -> str:
    """The sorted set of a chat's idempotency keys."""
    return f"im:{{{_tag(chat)}}}:idem"


def retry_keys_key(chat: str) -> str:
    """The sorted set of a chat's gateway-made (short-lived) idempotency keys."""
    return f"im:{{{_tag(chat)}}}:retry"


def entry_id(send_time: int) -> str:
    """The stream ID of a send time in microseconds."""
    return f"{send_time // 1000}-{send_time % 1000}"


def send_time_of(entry_id_: str) -> int:
    """The send time in microseconds of a stream ID."""
    ms, _, seq = entry_id_.partition("-")
    return int(ms) * 1000 + int(seq)


# One round trip per send. Redis's own clock gives the time, bumped past the chat's
# last message; an idempotency key seen within its lifetime returns the first answer.
# A stored message is announced on WAKE_CHANNEL (its stream key): long polls wake on it.
SEND_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local idem, ttl = ARGV[2], tonumber(ARGV[3])
if idem ~= '' then
  local prev = redis.call('ZSCORE', KEYS[2], idem)
  if prev and tonumber(prev) > now - ttl then
    return tonumber(prev)
  end
end
local st = now
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if top[1] then
  local id = top[1][1]
  local dash = string.find(id, '-', 1, true)
  local last = tonumber(string.sub(id, 1, dash - 1)) * 1000 + tonumber(string.sub(id, dash + 1))
  if st <= last then st = last + 1 end
end
redis.call('XADD', KEYS[1], string.format('%.0f-%.0f', math.floor(st / 1000), st % 1000),
  'm', ARGV[1])
redis.call('PUBLISH', ARGV[4], KEYS[1])
if idem ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
  redis.call('ZADD', KEYS[2], st, idem)
  redis.call('PEXPIRE', KEYS[2], math.floor(ttl / 1000))
end
return st
"""


class Append(NamedTuple):
    """Store one message of `role` in `chat`, idempotent on a non-empty client_msg_id
    (remembered 24 h), else on a non-empty retry_key (remembered briefly)."""

    chat: str
    role: int
    text: str
    client_msg_id: str = ""
    retry_key: str = ""


class Read(NamedTuple):
    """Read up to `entries` entries of `chat` from `cursor` (inclusive)."""

    chat: str
    cursor: int
    entries: int
    reverse: bool


Op = Append | Read
Outcome = int | list[Entry] | StoreError


class Wakeups:
    """Who waits for a chat's next message: one subscription to WAKE_CHANNEL per process
    (its own connection, not the pool's), waiters by chat. Waiting costs no connection."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        """Subscribe in the background (and again after a lost connection)."""
        self._task = asyncio.create_task(self._listen())

    async def close(self) -> None:
        """Stop listening; every waiter is woken (and waits no more). Safe to call twice."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            await self._client.aclose()
        self.subscribed.clear()
        self.wake_all()

    @contextlib.contextmanager
    def watch(self, chat: str) -> Iterator[asyncio.Future[None]]:
        """A future done when a message is stored in `chat` (or waiters are all woken)."""
        key = messages_key(chat)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, set()).add(future)
        try:
            yield future
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(future)
                if not waiters:
                    del self._waiters[key]

    def wake_all(self) -> None:
        """Wake every waiter: they read again (used on stop and when the subscription broke)."""
        for key in list(self._waiters):
            self._wake(key)

    def _wake(self, key: str) -> None:
        for future in self._waiters.get(key, ()):
            if not future.done():
                future.set_result(None)

    async def _listen(self) -> None:
        failing = False
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(WAKE_CHANNEL)
                self.subscribed.set()
                self.wake_all()  # what was stored while not subscribed is read again
                if failing:
                    log.info("subscribed to %s again", WAKE_CHANNEL)
                failing = False
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._wake(message["data"])
            except (rexc.RedisError, OSError) as exc:
                if not failing:
                    log.warning("lost the %s subscription, retrying: %s", WAKE_CHANNEL, exc)
                failing = True
            finally:
                self.subscribed.clear()
                self.wake_all()
                with contextlib.suppress(rexc.RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(0.5)


class RedisStore:
    """Appends and reads chat messages in Redis; maps Redis failures to StoreError."""

    def __init__(
        self,
        client: aioredis.Redis,
        wakeups: Wakeups,
        idempotency_ttl_s: int,
        retry_key_ttl_s: int = 60,
    ) -> None:
        self._redis = client
        self.wakeups = wakeups
        self._ttl_us = idempotency_ttl_s * 1_000_000
        self._retry_ttl_us = retry_key_ttl_s * 1_000_000
        self._send_sha = hashlib.sha1(SEND_SCRIPT.encode()).hexdigest()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_connections: int,
        timeout_s: float,
        idempotency_ttl_s: int,
        retry_key_ttl_s: int = 60,
    ) -> RedisStore:
        """A store with its own blocking connection pool to the Redis at `url`."""
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            # A command is never sent twice: a re-sent script could store a message
            # twice. The pool replaces connections closed by the server before use,
            # but only with maintenance notifications off: redis-py 8's default "auto"
            # skips that check, and every pooled connection fails once after a restart.
            retry=Retry(NoBackoff(), 0),
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        # the subscription's connection waits for messages as long as it takes; a PING
        # every few seconds tells a dead one
        listener = aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout_s,
            health_check_interval=5,
            retry=Retry(NoBackoff(), 0),
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        client = aioredis.Redis(connection_pool=pool)
        return cls(client, Wakeups(listener), idempotency_ttl_s, retry_key_ttl_s)

    async def close(self) -> None:
        """Close every pooled connection and the subscription."""
        await self.wakeups.close()
        await self._redis.aclose(close_connection_pool=True)

    async def ping(self) -> bool:
        """True when Redis answers; raises StoreError otherwise."""
        return bool(await _guard(self._redis.ping()))

    async def append(
        self, chat: str, role: int, text: str, client_msg_id: str = "", retry_key: str = ""
    ) -> int:
        """Store one message; return its send time (µs), or the first one for a repeated key."""
        (outcome,) = await self.execute([Append(chat, role, text, client_msg_id, retry_key)])
        if isinstance(outcome, StoreError):
            raise outcome
        return cast(int, outcome)

    async def read(self, chat: str, cursor: int, count: int, reverse: bool) -> list[Entry]:
        """Up to `count` entries from `cursor` (inclusive), oldest first or newest first."""
        (outcome,) = await self.execute([Read(chat, cursor, count, reverse)])
        if isinstance(outcome, StoreError):
            raise outcome
        return cast(list[Entry], outcome)

    async def execute(self, ops: Sequence[Op]) -> list[Outcome]:
        """Run `ops` in one pipeline (one round trip); one outcome per op, in order.

        An append answers its send time, a read its entries; a failure is a StoreError
        in place, and a connection failure fails every op.
        """
        try:
            outcomes = await self._run(ops)
            missing = [i for i, o in enumerate(outcomes) if isinstance(o, rexc.NoScriptError)]
            if missing:  # a restarted Redis forgot the script; those appends did not run
                await _guard(self._redis.script_load(SEND_SCRIPT))
                rerun = await self._run([ops[i] for i in missing])
                for i, outcome in zip(missing, rerun, strict=True):
                    outcomes[i] = outcome
        except StoreError as exc:
            return [exc] * len(ops)
        return [_outcome(op, o) for op, o in zip(ops, outcomes, strict=True)]

    async def _run(self, ops: Sequence[Op]) -> list[Any]:
        """Send every op's command on one pooled connection, then read every reply."""
        commands = [self._command(op) for op in ops]
        pool = self._redis.connection_pool
        conn = await _guard(pool.get_connection())  # type: ignore[no-untyped-call]
        try:
            return await _guard(_round_trip(conn, commands))
        finally:
            await pool.release(conn)

    def _command(self, op: Op) -> tuple[Any, ...]:
        if isinstance(op, Append):
            keys, member, ttl = idempotency_key(op.chat), "", self._ttl_us
            if op.client_msg_id:
                member = f"{op.role}:{op.client_msg_id}"
            elif op.retry_key:
                keys, member = retry_keys_key(op.chat), f"{op.role}:{op.retry_key}"
                ttl = self._retry_ttl_us
            return (
                "EVALSHA",
                self._send_sha,
                2,
                messages_key(op.chat),
                keys,
                f"{op.role}{op.text}",
                member,
                ttl,
                WAKE_CHANNEL,
            )
        if op.reverse:
            start = entry_id(op.cursor) if op.cursor else "+"
            return ("XREVRANGE", messages_key(op.chat), start, "-", "COUNT", op.entries)
        return ("XRANGE", messages_key(op.chat), entry_id(op.cursor), "+", "COUNT", op.entries)


async def _round_trip(conn: Connection, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Pipeline `commands` on `conn`: an error reply is kept in its place as an exception."""
    try:
        # hiredis packs in C; redis-py's asyncio pack_commands is pure Python (24% of a batch)
        payload = b"".join([pack_command(command) for command in commands])
        await conn.send_packed_command(payload, check_health=False)
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await conn.read_response())
            except rexc.ResponseError as exc:
                replies.append(exc)
        return replies
    except BaseException:
        await conn.disconnect()  # replies still unread would be out of step with the next user
        raise


def _entry(entry_id_: str, fields: list[str]) -> Entry:
    value = fields[fields.index(_FIELD) + 1]
    return Entry(send_time_of(entry_id_), 1 if value[0] == "1" else 0, value[1:])


def _outcome(op: Op, raw: Any) -> Outcome:
    if isinstance(raw, Exception):
        return _store_error(raw)
    if isinstance(op, Append):
        return int(raw)
    return [_entry(entry_id_, fields) for entry_id_, fields in cast(_Rows, raw)]


def _store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, rexc.TimeoutError | TimeoutError):
        return StoreTimeout(f"redis did not answer in time: {exc}")
    if isinstance(exc, rexc.ConnectionError | rexc.BusyLoadingError | OSError):
        return StoreUnavailable(f"redis is unavailable: {exc}")
    return StoreError(f"redis refused the command: {exc}")


async def _guard(call: Awaitable[T]) -> T:
    """Await a Redis call, turning its connection and timeout failures into StoreError."""
    try:
        return await call
    except (
        rexc.TimeoutError,
        TimeoutError,
        rexc.ConnectionError,
        rexc.BusyLoadingError,
        OSError,
    ) as exc:
        raise _store_error(exc) from exc
