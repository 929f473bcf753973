"""What every backend does the same: a batch of operations as their commands in one
pipeline, each outcome read on its own (a reply one operation cannot read fails that
operation alone), scripts loaded again where a restarted or promoted Redis lost them, a
WAIT for replicas after the writes, and Redis's failures as StoreError."""

from __future__ import annotations

import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import redis.exceptions as rexc

from rpc_svc.domain.errors import StoreError, StoreTimeout, StoreUnavailable
from rpc_svc.store.commands import changes, chats, groups, members, sync
from rpc_svc.store.commands.plan import Command, Plan
from rpc_svc.store.interface import Outcome
from rpc_svc.store.keys import LAYOUT, LAYOUT_KEY, SYNC_SECRET_KEY
from rpc_svc.store.lua import LUA_NUMBERS, SCRIPTS, WRITES
from rpc_svc.store.ops import EraseStep, EraseTail, Erasing, Erasures, Op
from rpc_svc.store.wakeups import Wakeups

T = TypeVar("T")
log = logging.getLogger(__name__)
LOST = (rexc.ConnectionError, rexc.TimeoutError, rexc.ClusterDownError, OSError)
COMPACT_LIMIT = "hash-max-listpack-value"
ERASE_STEP_ENTRIES = 1000  # a stream's entries copied per step of an erasure
ERASE_TAIL_ENTRIES = 2000  # at most this many after the oldest recalled: its tail rewritten
_WRITE_SHAS = {s.sha for s in WRITES}
_WRITE_COMMANDS = {"ZADD", "SADD", "SREM", "HDEL", "ZREM", "SET"}


_BUILDERS: dict[type, Callable[[Any, Plan], list[Command]]] = {
    **dict.fromkeys(chats.OPS, chats.commands),
    **dict.fromkeys(groups.OPS, groups.commands),
    **dict.fromkeys(members.OPS, members.commands),
    **dict.fromkeys(sync.OPS, sync.commands),
    **dict.fromkeys(changes.OPS, changes.commands),
}
_READERS: dict[type, Callable[[Any, list[Any]], Any]] = {
    **dict.fromkeys(chats.OPS, chats.outcome),
    **dict.fromkeys(groups.OPS, groups.outcome),
    **dict.fromkeys(members.OPS, members.outcome),
    **dict.fromkeys(sync.OPS, sync.outcome),
    **dict.fromkeys(changes.OPS, changes.outcome),
}


class LayoutError(Exception):
    """Redis holds data of a layout this im-rpc does not read."""


class RedisStore(ABC):
    """Runs the store's operations on Redis; a backend says how a round trip goes."""

    def __init__(
        self,
        wakeups: Wakeups,
        plan: Plan,
        timeout_s: float,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 100,
    ) -> None:
        self.wakeups = wakeups
        self.plan = plan
        self.timeout_s = timeout_s
        self._wait_replicas = wait_replicas
        self._wait_timeout_ms = wait_timeout_ms

    async def execute(self, ops: Sequence[Op]) -> list[Outcome]:
        """One outcome per operation; see rpc_svc.store.interface.Store."""
        return await self.direct(ops)

    async def one(self, op: Op) -> Outcome:
        """The outcome of one operation; a StoreError raised."""
        (outcome,) = await self.execute([op])
        if isinstance(outcome, StoreError):
            raise outcome
        return outcome

    async def direct(self, ops: Sequence[Op]) -> list[Outcome]:
        """The operations' commands in one round trip (per node), then each outcome read on
        its own, then the backend's second steps (`after`)."""
        commands: list[Command] = []
        spans: list[int] = []
        for op in ops:
            more = _BUILDERS[type(op)](op, self.plan)
            commands += more
            spans.append(len(more))
        try:
            replies = await self._run(commands)
        except StoreError as exc:
            return [exc] * len(ops)
        results: list[Outcome] = []
        at = 0
        for op, span in zip(ops, spans, strict=True):
            raw = replies[at : at + span]
            at += span
            failed = next((r for r in raw if isinstance(r, Exception)), None)
            results.append(store_error(failed) if failed is not None else _read(op, raw))
        await self.after(ops, results)
        return results

    async def after(self, ops: Sequence[Op], results: list[Outcome]) -> None:  # noqa: B027
        """What a backend does once `ops` are answered (a cluster: the second steps; one
        Redis: nothing, its scripts did it all)."""

    async def check_layout(self) -> None:
        """Mark an empty Redis with this code's layout; LayoutError when it holds another,
        or when its Lua would print the scripts' numbers wrong."""
        _, held, printed = await self._run(
            [
                ("SET", LAYOUT_KEY, LAYOUT, "NX"),
                ("GET", LAYOUT_KEY),
                ("EVALSHA", LUA_NUMBERS.sha, 1, LAYOUT_KEY),
            ]
        )
        for reply in (held, printed):
            if isinstance(reply, Exception):
                raise store_error(reply)
        if held != LAYOUT:
            raise LayoutError(
                f"Redis holds data of store layout {held!r}; this im-rpc reads layout "
                f"{LAYOUT!r} only. Run the im-rpc of the release that wrote it, or start on "
                "an empty Redis (docs/store.md, 'Layout versions')."
            )
        refused = lua_numbers_refused(printed)
        if refused is not None:
            raise refused

    async def sync_key(self) -> bytes:
        """The key sync tokens are signed with, shared by every im-rpc of this Redis: made
        by the first that asks (SET NX), read by the others. StoreError when Redis fails."""
        _, held = await self._send(
            [("SET", SYNC_SECRET_KEY, secrets.token_hex(32), "NX"), ("GET", SYNC_SECRET_KEY)]
        )
        if isinstance(held, Exception):
            raise store_error(held)
        return bytes.fromhex(held)

    async def erase(
        self, chat: str, step: int = ERASE_STEP_ENTRIES, tail: int = ERASE_TAIL_ENTRIES
    ) -> bool:
        """Erase the recalled texts waiting in `chat`'s stream: rewrite its tail in place
        when at most `tail` entries follow the oldest (lua/erase_tail.lua), else copy it,
        `step` entries a round trip, without them, and put the copy in its place
        (lua/erase_step.lua). True when none waits any more; False when another erasure
        holds the chat (it finishes it). StoreError when Redis fails (the chat stays noted:
        an eraser tries again)."""
        times = tuple(cast(list[str], await self.one(Erasures(chat))))
        if times:
            rewritten = await self.one(EraseTail(chat, tail, times))
            if rewritten == "busy":
                return False
            if rewritten == "done":
                times = ()
        if times:
            token, after = secrets.token_hex(8), ""
            while True:
                got = cast(str, await self.one(EraseStep(chat, token, after, step, 30_000, times)))
                if got == "busy":
                    return False
                if got == "done":
                    break
                after = got
        if await self.one(Erasures(chat)):
            return False  # recalled since it started: the next round
        await self.one(Erasing(chat, add=False))
        return True

    async def run_commands(self, commands: list[Command]) -> list[Any]:
        """The replies of raw `commands` (a backend's own steps); an error reply in place."""
        return await self._run(commands)

    @staticmethod
    def as_error(exc: BaseException) -> StoreError:
        """The StoreError a Redis failure is."""
        return store_error(exc)

    async def _run(self, commands: list[Command]) -> list[Any]:
        """Run `commands`; those a restarted (or, after a failover, promoted) Redis refused
        for want of a script run again once the scripts are loaded."""
        replies = await self._send(commands)
        missing = [i for i, r in enumerate(replies) if isinstance(r, rexc.NoScriptError)]
        if missing:
            needed = {commands[i][1] for i in missing}  # only these: each load is a round trip
            for script in SCRIPTS:
                if script.sha in needed:
                    await self.load(script.text)
            rerun = await self._send([commands[i] for i in missing])
            for i, reply in zip(missing, rerun, strict=True):
                replies[i] = reply
        return replies

    async def _send(self, commands: list[Command]) -> list[Any]:
        """Send `commands` and read every reply: an error reply is kept in its place. With
        wait_replicas, a WAIT follows the writes on each node they went to; writes that
        fewer replicas than that acknowledged in time answer StoreTimeout."""
        if not self._wait_replicas:  # the default: no scan of the commands for writes
            return await self.pipeline(commands, [])
        writes = [
            i
            for i, c in enumerate(commands)
            if c[0] in _WRITE_COMMANDS or (c[0] == "EVALSHA" and c[1] in _WRITE_SHAS)
        ]
        if not writes:
            return await self.pipeline(commands, [])
        node_of = await self.nodes_of({i: commands[i] for i in writes})
        nodes = list({id(n): n for n in node_of.values()}.values())
        wait = ("WAIT", self._wait_replicas, self._wait_timeout_ms)
        replies = await self.pipeline(commands, [(wait, node) for node in nodes])
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

    @abstractmethod
    async def pipeline(
        self, commands: list[Command], extra: list[tuple[Command, Any]]
    ) -> list[Any]:
        """One round trip per node: `commands`, then each `extra` command on its node."""

    @abstractmethod
    async def nodes_of(self, commands: dict[int, Command]) -> dict[int, Any]:
        """The node each command (by index) goes to, for a WAIT on it."""

    @abstractmethod
    async def load(self, script: str) -> None:
        """Load `script` into Redis (every cluster master)."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when Redis (every cluster master) answers; StoreError otherwise."""

    @abstractmethod
    async def compact_record_limit(self) -> int | None:
        """Redis's `hash-max-listpack-value` (on a cluster the lowest master's), or None when
        it cannot be read (CONFIG not allowed, or Redis not answering)."""

    @abstractmethod
    async def close(self) -> None:
        """Close every connection and the subscriptions."""


def _read(op: Op, raw: list[Any]) -> Outcome:
    """What `op` answers from its replies; a reply this version cannot read is a StoreError
    of that op alone (logged), never a failure of the other ops of its batch."""
    try:
        return _READERS[type(op)](op, raw)
    except Exception as exc:  # any parse error: that op's failure
        log.error("cannot read the store's answer to %s: %s", type(op).__name__, exc)
        return StoreError(f"cannot read the store's answer to {type(op).__name__}")


def lua_numbers_refused(printed: str) -> LayoutError | None:
    """The error of a Redis whose Lua printed 2^53 with %d as `printed` (None: exactly)."""
    if printed == str(2**53):
        return None
    return LayoutError(
        f"Redis's Lua prints 2^53 with %d as {printed!r}: its C long is narrower than 64 "
        "bits, and the store's scripts print send times (µs) with %d. Run a 64-bit build "
        "of Redis (docs/store.md, 'Layout versions')."
    )


def store_error(exc: BaseException) -> StoreError:
    """The StoreError a Redis failure is."""
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, rexc.TimeoutError | TimeoutError):
        return StoreTimeout(f"redis did not answer in time: {exc}")
    if isinstance(exc, (*LOST, rexc.BusyLoadingError, rexc.RedisClusterException)):
        return StoreUnavailable(f"redis is unavailable: {exc}")
    return StoreError(f"redis refused the command: {exc}")


async def guard(call: Awaitable[T]) -> T:
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
        raise store_error(exc) from exc
