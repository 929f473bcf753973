"""The message store: Redis (one server, or a Redis Cluster), one stream per chat (one
string while the chat is short: below), an inbox per user. Key names are in store_keys,
scripts in store_scripts.

A message is one stream entry. Its ID is derived from its ``send_time`` (µs):
``<send_time // 1000>-<send_time % 1000>``, so IDs sort as send times do and a
cursor is an ID. Its one field ``t`` holds the sender's role digit (0 or 1: which
member of the chat), how many messages each role had sent up to it, and the text:
``"<role><sent by 0>:<sent by 1>:<text>"`` (entries written before the inbox existed
have field ``m``, ``"<role><text>"``). The chat and the member names are known from
the key.

A chat's first IM_SHORT_CHAT_MESSAGES - 1 messages are records of one hash instead, field
``i`` (the i-th message) holding ``"<id> <value>"`` (a stream's first node costs 4 KB); the
send that makes it that long moves them into the stream. A read asks for the hash's values,
then the stream, in one round trip, and answers from the stream when it has entries. A
string of records in that key is what versions before the hash wrote: a read that meets one
reads it in a second round trip, and the chat's next send makes it a hash.

A send moves the chat to its send time in both members' inboxes (``ZADD GT``: never
back): on one Redis in the same script (atomic); on a cluster, where a user's keys live
in other slots, as a second step right after, which is idempotent and monotonic, so a
retried send converges.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, NamedTuple, TypeVar, cast

import redis.asyncio as aioredis
import redis.exceptions as rexc
from hiredis import pack_command
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.maint_notifications import MaintNotificationsConfig

from im_common.tasks import cancel_and_wait
from rpc_svc.chat import NO_READ, Entry, InboxRow, ReadMark, Tip
from rpc_svc.errors import StoreError, StoreTimeout, StoreUnavailable
from rpc_svc.redis_conns import Connections
from rpc_svc.store_group_scripts import GROUP_SCRIPTS
from rpc_svc.store_groups import (
    WRITE_SHAS,
    GroupAppend,
    GroupOp,
    Posted,
    group_commands,
    group_outcome,
)
from rpc_svc.store_keys import (
    BIG_KEYS,
    entry_id,
    idempotency_entry,
    inbox_key,
    messages_key,
    reads_key,
    send_time_of,
    short_key,
    user_groups_key,
    wake_channel,
)
from rpc_svc.store_member_scripts import BIG_NOTE, MEMBER_SCRIPTS
from rpc_svc.store_members import (
    MEMBER_OPS,
    MemberOp,
    member_commands,
    member_outcome,
)
from rpc_svc.store_members import (
    WRITE_SHAS as MEMBER_WRITE_SHAS,
)
from rpc_svc.store_scripts import INBOX, MARK_READ, SCRIPTS, SEND
from rpc_svc.wakeups import Node, Wakeups

T = TypeVar("T")
log = logging.getLogger(__name__)
_Rows = list[tuple[str, list[str] | dict[str, str]]]  # XRANGE: [id, [field, value, ...]] each

_WRITE_SCRIPTS = {SEND.sha, MARK_READ.sha, INBOX.sha, *WRITE_SHAS, *MEMBER_WRITE_SHAS}
_WRITE_COMMANDS = {"ZADD", "SADD", "SREM", "HDEL", "ZREM"}
_ALL_SCRIPTS = (*SCRIPTS, *GROUP_SCRIPTS, *MEMBER_SCRIPTS)
_COMPACT_LIMIT = "hash-max-listpack-value"
_LOST = (rexc.ConnectionError, rexc.TimeoutError, rexc.ClusterDownError, OSError)


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


class Latest(NamedTuple):
    """The last message of `chat` at or before `at` (0: the newest), with its tally."""

    chat: str
    at: int = 0


class InboxRange(NamedTuple):
    """Up to `rows` rows of `user`'s inbox at or below position `below` (0: from the top),
    the first `skip` of them left out: (the big groups' sequence number the user's inbox has
    seen, how many groups the user is in, the rows). With `caught_up`, first each of
    `moves` (big group, its last send time) that is among the user's groups moves in its
    inbox, and the inbox has seen `caught_up` (a cluster's inbox read)."""

    user: str
    below: int
    skip: int
    rows: int
    caught_up: int = 0
    moves: tuple[tuple[str, int], ...] = ()


class MarkRead(NamedTuple):
    """Move `user`'s read position in `chat` forward to `mark` (never back)."""

    user: str
    chat: str
    mark: ReadMark


ChatOp = Append | Read | Latest | InboxRange | MarkRead
Op = ChatOp | GroupOp | MemberOp
Outcome = Any  # int | list[Entry] | Tip | None | list[InboxRow] | ReadMark | group outcomes
_CHAT_OPS = (Append, Read, Latest, InboxRange, MarkRead)


class ClusterTopology:
    """Has a cluster client learn the slots again, in the background, one refresh at a
    time: after a failover the slots of the lost master belong to its replica. Bounds the
    pipelines under way, since the cluster client does not wait for a free connection."""

    def __init__(self, cluster: RedisCluster, max_connections: int, wait_s: float) -> None:
        self.cluster = cluster
        self._task: asyncio.Task[None] | None = None
        # a pipeline holds at most one connection per node; one stays for slot refreshes
        self._pipelines = asyncio.Semaphore(max(1, max_connections - 1))
        self._wait_s = wait_s

    @asynccontextmanager
    async def pipeline_slot(self) -> AsyncIterator[None]:
        """Run the block as one of the pipelines under way, waiting up to `wait_s` for a
        turn (StoreUnavailable then): past its `max_connections` per node, redis-py's
        cluster client fails a command at once (MaxConnectionsError) instead of waiting,
        as the single-Redis pool does."""
        try:
            async with asyncio.timeout(self._wait_s):
                await self._pipelines.acquire()
        except TimeoutError:
            raise StoreUnavailable(
                f"no connection to redis came free within {self._wait_s:g}s"
            ) from None
        try:
            yield
        finally:
            self._pipelines.release()

    def refresh(self) -> None:
        """Start a refresh unless one is under way."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._refresh())

    async def locate(self, channel: str) -> Node:
        """The master that serves `channel`'s slot (the slots read on first use)."""
        await self.cluster.initialize()
        node = self.cluster.get_node_from_key(channel)
        assert node is not None
        return Node(str(node.name), partial(node.connection_class, **node.connection_kwargs))

    async def close(self) -> None:
        """Stop a refresh under way."""
        await cancel_and_wait(self._task)

    async def _refresh(self) -> None:
        try:
            await self.cluster.nodes_manager.initialize()
        except (rexc.RedisError, OSError) as exc:
            log.warning("cannot read the cluster's slots: %s", exc)
        await asyncio.sleep(0.2)  # at most five refreshes a second


class RedisStore:
    """Runs the store's operations on Redis; maps Redis failures to StoreError."""

    def __init__(
        self,
        client: Connections | ClusterTopology,
        wakeups: Wakeups,
        idempotency_ttl_s: int,
        retry_key_ttl_s: int = 60,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 100,
        short_chat_messages: int = 32,
        timeout_s: float = 5.0,
    ) -> None:
        self._short_max = short_chat_messages
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms
        self._timeout_s = timeout_s
        self._topology = client if isinstance(client, ClusterTopology) else None
        self._conns = client if isinstance(client, Connections) else None
        self.wakeups = wakeups
        self._ttl_us = idempotency_ttl_s * 1_000_000
        self._retry_ttl_us = retry_key_ttl_s * 1_000_000

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_connections: int,
        timeout_s: float,
        idempotency_ttl_s: int,
        retry_key_ttl_s: int = 60,
        cluster: bool = False,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 100,
        short_chat_messages: int = 32,
    ) -> RedisStore:
        """A store with its own connections to the Redis at `url` (with `cluster`, a seed
        node of a Redis Cluster). With `wait_replicas`, a write is acknowledged only once
        that many replicas have it (WAIT, up to `wait_timeout_ms`). A chat keeps its first
        `short_chat_messages` - 1 messages in a string, then moves them into a stream (0:
        streams only)."""
        waits: dict[str, Any] = {
            "wait_replicas": wait_replicas,
            "wait_timeout_ms": wait_timeout_ms,
            "short_chat_messages": short_chat_messages,
            "timeout_s": timeout_s,
        }
        # A command is never sent twice: a re-sent script could store a message twice.
        # The pool replaces connections closed by the server before use, but only with
        # maintenance notifications off: redis-py 8's default "auto" skips that check,
        # and every pooled connection fails once after a restart.
        common: dict[str, Any] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "decode_responses": True,
            "retry": Retry(NoBackoff(), 0),
        }
        if cluster:
            topology = ClusterTopology(
                RedisCluster.from_url(url, max_connections=max_connections, **common),
                max_connections,
                timeout_s,
            )
            wakeups = Wakeups(topology.locate, topology.refresh, timeout_s)
            return cls(topology, wakeups, idempotency_ttl_s, retry_key_ttl_s, **waits)
        # the pool only reads the URL (scheme, socket, credentials) into connection settings
        url_pool = aioredis.ConnectionPool.from_url(
            url, maint_notifications_config=MaintNotificationsConfig(enabled=False), **common
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
        return cls(conns, wakeups, idempotency_ttl_s, retry_key_ttl_s, **waits)

    @property
    def one_node(self) -> bool:
        """Whether the store is one Redis (not a cluster): a script may then name any key."""
        return self._topology is None

    async def close(self) -> None:
        """Close every connection and the subscriptions."""
        await self.wakeups.close()
        if self._topology is not None:
            await self._topology.close()
            await self._topology.cluster.aclose()
        elif self._conns is not None:
            await self._conns.close()

    async def ping(self) -> bool:
        """True when Redis (every cluster master) answers; raises StoreError otherwise."""
        if self._topology is None:
            await self._one_command("PING")
            return True
        async with self._topology.pipeline_slot():
            return bool(await _guard(self._topology.cluster.ping()))

    async def compact_record_limit(self) -> int | None:
        """Redis's `hash-max-listpack-value`: the longest record a short chat's hash holds
        and stays compact (a longer one makes that chat's hash a hash table, which costs
        more memory but reads the same). None when it cannot be read (CONFIG not allowed,
        or Redis not answering); on a cluster, the lowest of its masters'."""
        try:
            if self._topology is None:
                reply = await self._one_command("CONFIG", "GET", _COMPACT_LIMIT)
                return int(reply[_COMPACT_LIMIT] if isinstance(reply, dict) else reply[1])
            async with self._topology.pipeline_slot():
                replies: dict[Any, Any] = await _guard(
                    self._topology.cluster.config_get(
                        _COMPACT_LIMIT, target_nodes=RedisCluster.PRIMARIES
                    )
                )
            if _COMPACT_LIMIT in replies:  # one master: its reply itself
                return int(replies[_COMPACT_LIMIT])
            return min(int(r[_COMPACT_LIMIT]) for r in replies.values())
        except (StoreError, rexc.RedisError, LookupError, ValueError):
            return None

    async def _one_command(self, *command: Any) -> Any:
        """The reply of one command on the single Redis; an error reply raised as StoreError."""
        (reply,) = await self._pipeline([command], [])
        if isinstance(reply, Exception):
            raise _store_error(reply)
        return reply

    async def append(
        self, chat: str, role: int, text: str, client_msg_id: str = "", retry_key: str = ""
    ) -> int:
        """Store one message; return its send time (µs), or the first one for a repeated key."""
        return cast(int, await self.one(Append(chat, role, text, client_msg_id, retry_key)))

    async def read(self, chat: str, cursor: int, count: int, reverse: bool) -> list[Entry]:
        """Up to `count` entries from `cursor` (inclusive), oldest first or newest first."""
        return cast(list[Entry], await self.one(Read(chat, cursor, count, reverse)))

    async def one(self, op: Op) -> Outcome:
        """The outcome of one op; a StoreError raised."""
        (outcome,) = await self.execute([op])
        if isinstance(outcome, StoreError):
            raise outcome
        return outcome

    async def execute(self, ops: Sequence[Op]) -> list[Outcome]:
        """Run `ops` in one pipeline (one round trip per node); one outcome per op, in order.

        An append answers its send time, a read its entries, Latest a Tip (or None),
        InboxRange its rows, MarkRead the position kept; a failure is a StoreError in
        place. On a cluster the appends then update the members' inboxes (a second
        round trip); an append whose inbox update failed answers that failure.
        """
        commands: list[tuple[Any, ...]] = []
        spans: list[int] = []
        one_node = self._topology is None
        for op in ops:
            if isinstance(op, _CHAT_OPS):
                more = self._commands(op)
            elif isinstance(op, MEMBER_OPS):
                more = member_commands(op, one_node)
            else:
                more = group_commands(
                    op, self._ttl_us, self._retry_ttl_us, self._short_max, one_node
                )
            commands += more
            spans.append(len(more))
        try:
            outcomes = await self._run(commands)
            await self._read_strings(commands, outcomes)
        except StoreError as exc:
            return [exc] * len(ops)
        results: list[Outcome] = []
        at = 0
        for op, span in zip(ops, spans, strict=True):
            raw = outcomes[at : at + span]
            at += span
            failed = next((r for r in raw if isinstance(r, Exception)), None)
            results.append(_store_error(failed) if failed is not None else _read_outcome(op, raw))
        if self._topology is not None:
            await self._touch_inboxes(ops, results)
        return results

    async def _read_strings(self, commands: list[tuple[Any, ...]], outcomes: list[Any]) -> None:
        """Where a read's HVALS met a string (what versions before the hash wrote), the
        string, read in a second round trip, takes its reply's place."""
        legacy = [
            i
            for i, outcome in enumerate(outcomes)
            if isinstance(outcome, rexc.ResponseError)
            and commands[i][0] == "HVALS"
            and str(outcome).startswith("WRONGTYPE")
        ]
        if legacy:
            strings = await self._run([("GET", commands[i][1]) for i in legacy])
            for i, string in zip(legacy, strings, strict=True):
                outcomes[i] = string

    async def _touch_inboxes(self, ops: Sequence[Op], results: list[Outcome]) -> None:
        touched = [
            (i, op)
            for i, (op, result) in enumerate(zip(ops, results, strict=True))
            if isinstance(op, Append) and isinstance(result, int)
        ]
        commands: list[tuple[int, tuple[Any, ...]]] = [
            (i, ("ZADD", inbox_key(member), "GT", results[i], op.chat))
            for i, op in touched
            for member in set(op.chat.split(":"))
        ]
        for i, op in enumerate(ops):  # a small group's members, a big group's activity
            posted = results[i]
            if not isinstance(op, GroupAppend) or not isinstance(posted, Posted):
                continue
            sent = posted.send_time
            if posted.kind == "b":
                commands.append((i, ("EVALSHA", BIG_NOTE.sha, 3, *BIG_KEYS, op.chat, sent)))
            commands += [(i, ("ZADD", inbox_key(m), "GT", sent, op.chat)) for m in posted.members]
        if not commands:
            return
        try:
            outcomes = await self._run([c for _, c in commands])
        except StoreError as exc:
            outcomes = [exc] * len(commands)
        for (i, _), outcome in zip(commands, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                results[i] = _store_error(outcome)

    async def _run(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Run `commands`; those a restarted (or, after a failover, promoted) Redis refused
        for want of a script run again once the scripts are loaded."""
        outcomes = await self._send(commands)
        missing = [i for i, o in enumerate(outcomes) if isinstance(o, rexc.NoScriptError)]
        if missing:
            needed = {commands[i][1] for i in missing}  # only these: each load is a round trip
            for script in _ALL_SCRIPTS:
                if script.sha in needed:
                    await self._load(script.text)
            rerun = await self._send([commands[i] for i in missing])
            for i, outcome in zip(missing, rerun, strict=True):
                outcomes[i] = outcome
        return outcomes

    async def _load(self, script: str) -> None:
        """Load `script` into Redis (every cluster master)."""
        if self._topology is None:
            await self._one_command("SCRIPT", "LOAD", script)
            return
        async with self._topology.pipeline_slot():  # a connection on every master
            await _guard(self._topology.cluster.script_load(script))

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send `commands` and read every reply: an error reply is kept in its place. With
        wait_replicas, a WAIT follows the writes on each node they went to; writes that
        fewer replicas than that acknowledged in time answer StoreTimeout."""
        if not self._wait_replicas:  # the default: no scan of the commands for writes
            return await self._pipeline(commands, [])
        writes = [
            i
            for i, c in enumerate(commands)
            if c[0] in _WRITE_COMMANDS or (c[0] == "EVALSHA" and c[1] in _WRITE_SCRIPTS)
        ]
        if not writes:
            return await self._pipeline(commands, [])
        wait = ("WAIT", self._wait_replicas, self._wait_timeout_ms)
        node_of: dict[int, ClusterNode | None] = dict.fromkeys(writes)
        if self._topology is not None:  # a WAIT on each master written to
            cluster = self._topology.cluster
            await _guard(cluster.initialize())
            node_of = {i: cluster.get_node_from_key(_key_of(commands[i])) for i in writes}
        nodes = list({id(n): n for n in node_of.values()}.values())
        replies = await self._pipeline(commands, [(wait, node) for node in nodes])
        replies, acked = replies[: len(commands)], replies[len(commands) :]
        short = {
            id(node)
            for node, count in zip(nodes, acked, strict=True)
            if isinstance(count, Exception) or count < self._wait_replicas
        }
        for i in writes:
            if id(node_of[i]) in short and not isinstance(replies[i], Exception):
                replies[i] = StoreTimeout(
                    f"stored, but fewer than {self._wait_replicas} replica(s) acknowledged it "
                    f"within {self._wait_timeout_ms} ms"
                )
        return replies

    async def _pipeline(
        self,
        commands: list[tuple[Any, ...]],
        extra: list[tuple[tuple[Any, ...], ClusterNode | None]],
    ) -> list[Any]:
        """One round trip per node: `commands`, then each `extra` command on its node."""
        if self._topology is not None:
            pipe = self._topology.cluster.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            for command, node in extra:
                pipe.execute_command(*command, target_nodes=node)
            async with self._topology.pipeline_slot():
                try:
                    replies = await _guard(pipe.execute(raise_on_error=False))
                except StoreUnavailable:
                    self._topology.refresh()
                    raise
            if any(isinstance(r, _LOST) for r in replies):
                self._topology.refresh()
            return replies
        assert self._conns is not None
        conn = await _guard(self._conns.lend())
        try:
            return await _guard(
                _round_trip(conn, commands + [c for c, _ in extra], self._timeout_s)
            )
        finally:
            self._conns.give_back(conn)

    def _commands(self, op: Op) -> list[tuple[Any, ...]]:
        if isinstance(op, Read):  # the hot path first, without pattern matching
            # a short chat's hash, then the stream: a send that moves the hash into the
            # stream between the two replies leaves both read, and the stream wins
            short, key, count = ("HVALS", short_key(op.chat)), messages_key(op.chat), op.entries
            if op.reverse:
                start = entry_id(op.cursor) if op.cursor else "+"
                return [short, ("XREVRANGE", key, start, "-", "COUNT", count)]
            return [short, ("XRANGE", key, entry_id(op.cursor), "+", "COUNT", count)]
        if isinstance(op, Append):
            return [self._append_command(op)]
        match op:
            case Latest(chat, at):
                start = entry_id(at) if at else "+"
                return [
                    ("HVALS", short_key(chat)),
                    ("XREVRANGE", messages_key(chat), start, "-", "COUNT", 1),
                ]
            case InboxRange(user, below, skip, count, caught_up, moves):
                keys = (inbox_key(user), reads_key(user), user_groups_key(user))
                more = (caught_up, *[v for move in moves for v in move]) if caught_up else ()
                top = below or "+inf"
                return [("EVALSHA", INBOX.sha, 3, *keys, top, skip, count, *more)]
            case MarkRead(user, chat, mark):
                value = f"{mark.send_time}:{mark.sent[0]}:{mark.sent[1]}"
                return [("EVALSHA", MARK_READ.sha, 1, reads_key(user), chat, value)]
        raise AssertionError(op)

    def _append_command(self, op: Append) -> tuple[Any, ...]:
        keys, member, ttl = idempotency_entry(
            op.chat, str(op.role), op.client_msg_id, op.retry_key, self._ttl_us, self._retry_ttl_us
        )
        inboxes: tuple[str, ...] = ()
        if self._topology is None:  # on a cluster the inboxes follow in a second step
            first, _, second = op.chat.partition(":")
            inboxes = (
                (inbox_key(first), inbox_key(second)) if first != second else (inbox_key(first),)
            )
        return (
            "EVALSHA", SEND.sha, 3 + len(inboxes), messages_key(op.chat), short_key(op.chat),
            keys, *inboxes, "1" if op.role else "0", op.text, member, ttl,
            wake_channel(op.chat), op.chat, self._short_max,
        )  # fmt: skip


def short_records(reply: list[str] | str | None) -> list[tuple[str, str]]:
    """The (stream ID, value) records of a short chat, newest first: from its hash's values
    (`reply` a list: "<id> <value>" each, in any order), or from a string a version before
    the hash wrote (`reply` a str: "<id> <bytes> <value>" each, newest first, `bytes` the
    value's length in UTF-8)."""
    return [(entry_id_, value) for _, entry_id_, value in _timed_records(reply)]


def _timed_records(reply: list[str] | str | None) -> list[tuple[int, str, str]]:
    """short_records, each with its send time first."""
    if not reply:
        return []
    timed = []
    if isinstance(reply, list):
        for record in reply:  # a pull's hot path: send_time_of inlined
            entry_id_, _, value = record.partition(" ")
            ms, _, seq = entry_id_.partition("-")
            timed.append((int(ms) * 1000 + int(seq), entry_id_, value))
        timed.sort(reverse=True)  # (a listpack answers oldest first: one reversed run)
        return timed
    data, at = reply.encode(), 0
    while at < len(data):
        sp = data.index(b" ", at)
        sp2 = data.index(b" ", sp + 1)
        stop = sp2 + 1 + int(data[sp + 1 : sp2])
        entry_id_ = data[at:sp].decode()
        timed.append((send_time_of(entry_id_), entry_id_, data[sp2 + 1 : stop].decode()))
        at = stop
    return timed


def short_rows(
    reply: list[str] | str | None, cursor: int, entries: int, reverse: bool, field: str = "t"
) -> _Rows:
    """The XRANGE-shaped rows of a short chat: up to `entries` from `cursor` (inclusive; 0:
    from the oldest, or the newest when `reverse`)."""
    timed = _timed_records(reply)
    rows: _Rows = []
    for at, entry_id_, value in timed if reverse else reversed(timed):
        if cursor and ((at > cursor) if reverse else (at < cursor)):
            continue
        rows.append((entry_id_, [field, value]))
        if len(rows) == entries:
            break
    return rows


def _key_of(command: tuple[Any, ...]) -> str:
    """The (first) key a command names: an EVALSHA's after its script and key count."""
    return str(command[3] if command[0] == "EVALSHA" else command[1])


async def _round_trip(
    conn: AbstractConnection, commands: list[tuple[Any, ...]], timeout_s: float
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


def _field(fields: list[str] | dict[str, str]) -> tuple[str, str]:
    # a raw reply lists field, value; the cluster client's pipeline makes it a dict
    if isinstance(fields, list):
        return fields[0], fields[1]
    return next(iter(fields.items()))


def _entry(entry_id_: str, fields: list[str] | dict[str, str]) -> Entry:
    return _entries([(entry_id_, fields)])[0]


def _entries(rows: _Rows) -> list[Entry]:
    """The entries of an XRANGE reply, in one loop: the hot path of a pull, where a call and
    a named-tuple constructor per entry cost a tenth of it (send_time_of is inlined)."""
    entries: list[Entry] = []
    append = entries.append
    for entry_id_, fields in rows:
        if type(fields) is list:
            name, value = fields[0], fields[1]
        else:
            name, value = _field(fields)
        ms, _, seq = entry_id_.partition("-")
        text = value[value.index(":", value.index(":") + 1) + 1 :] if name == "t" else value[1:]
        role = 1 if value[0] == "1" else 0
        append(tuple.__new__(Entry, (int(ms) * 1000 + int(seq), role, text)))
    return entries


def _tip(rows: _Rows) -> Tip | None:
    if not rows:
        return None
    entry_id_, fields = rows[0]
    name, value = _field(fields)
    sent = (0, 0)
    if name == "t":
        sent0, sent1, _ = value[1:].split(":", 2)
        sent = (int(sent0), int(sent1))
    return Tip(_entry(entry_id_, fields), sent)


def _mark(value: str) -> ReadMark:
    if not value:
        return NO_READ
    send_time, sent0, sent1 = value.split(":")
    return ReadMark(int(send_time), (int(sent0), int(sent1)))


def _outcome(op: Op, replies: list[Any]) -> Outcome:
    raw = replies[-1]  # a read's stream reply follows its list's
    if isinstance(op, Read):
        if raw or not replies[0]:
            return _entries(cast(_Rows, raw))
        return _entries(short_rows(replies[0], op.cursor, op.entries, op.reverse))
    match op:
        case Append():
            return int(raw)
        case Latest(_, at):
            return _tip(cast(_Rows, raw) or short_rows(replies[0], at, 1, True))
        case InboxRange():
            rows = [
                InboxRow(raw[i], int(float(raw[i + 1])), _mark(raw[i + 2]))
                for i in range(2, len(raw), 3)
            ]
            return int(raw[0]), int(raw[1]), rows
        case MarkRead():
            return _mark(raw)
    raise AssertionError(op)


def _read_outcome(op: Op, raw: list[Any]) -> Outcome:
    """What `op` answers from its replies; a reply this version cannot read is a
    StoreError of that op alone (logged), never a failure of the other ops of its batch."""
    try:
        if isinstance(op, _CHAT_OPS):
            return _outcome(op, raw)
        if isinstance(op, MEMBER_OPS):
            return member_outcome(op, raw)
        return group_outcome(op, raw)
    except Exception as exc:  # any parse error: that op's failure
        log.error("cannot read the store's answer to %s: %s", type(op).__name__, exc)
        return StoreError(f"cannot read the store's answer to {type(op).__name__}")


def _store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, rexc.TimeoutError | TimeoutError):
        return StoreTimeout(f"redis did not answer in time: {exc}")
    if isinstance(exc, (*_LOST, rexc.BusyLoadingError, rexc.RedisClusterException)):
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
        rexc.ClusterDownError,
        rexc.RedisClusterException,
        OSError,
    ) as exc:
        raise _store_error(exc) from exc
