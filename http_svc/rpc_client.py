"""The gateway's client of im-rpc: a pool of grpclib channels, a deadline on every call.

Sends and pulls are coalesced: the calls made in the same event-loop turn go out in
one batch as soon as the loop gets to it (no timer, no added wait), or as soon as
`batch_max` of them wait, and each caller gets back its answer's public JSON body.
How batches travel is the mode: "stream" (one long-lived BatchStream per channel),
"batch" (a unary Batch RPC each); "unary" does not batch at all (a Send or Pull RPC
per request). Every failure comes
out as RpcFailure with a gRPC status: a refused or broken connection is UNAVAILABLE,
a passed deadline DEADLINE_EXCEEDED. Which instance serves a call is the InstancePool's
choice; an unavailable one costs a retry on another, not an error.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from grpclib.const import Status
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from http_svc.errors import RPC_ERRORS, RpcFailure, rpc_failure
from http_svc.instances import Instance, InstancePool
from im_common.batch_messages import BatchReplyMessage
from im_common.logs import request_id
from im_common.rpc_names import SERVICE
from im_common.tasks import start_now
from improto import (
    BatchRequest,
    ChatsRequest,
    ChatsResponse,
    GroupReply,
    GroupRequest,
    Message,
    PullRequest,
    PullResponse,
    ReadRequest,
    SendRequest,
)

T = TypeVar("T")
R = TypeVar("R")

Observer = Callable[[str, str, float], None]
SizeObserver = Callable[[int], None]
RetryObserver = Callable[[str], None]


class RpcClient:
    """Calls IMService on the instances of an InstancePool, `channels` connections each.

    A call that fails with UNAVAILABLE (connection refused or reset, instance going
    away) is retried once on another instance within the same deadline. For sends that
    is safe only with an idempotency key: the client's, nginx's retry key, or one made
    here whenever there is another instance to retry on. A batch holding a send without
    any key (there was a single instance when it was made) is not retried.
    """

    def __init__(
        self,
        addrs: Sequence[str],
        channels: int,
        timeout_s: float,
        *,
        mode: str = "stream",
        batch_max: int = 32,
        max_in_flight: int = 1 << 30,
        max_waiting: int = 1 << 30,
        observe: Observer | None = None,
        observe_batch: SizeObserver | None = None,
        observe_retry: RetryObserver | None = None,
    ) -> None:
        self.pool = InstancePool(channels, streams=mode == "stream")
        self.pool.set_addrs(addrs)
        self._mode = mode
        self._timeout = timeout_s
        self._in_flight = _Bound(max_in_flight, "calls to im-rpc in flight")
        self._waiting = _Bound(max_waiting, "long polls waiting")
        self._observe = observe
        self._observe_retry = observe_retry
        self._batcher = _Batcher(self._batch, batch_max, observe_batch) if mode != "unary" else None
        # Keys for sends without client_msg_id: unique per process start, cheap to make.
        self._key_prefix = secrets.token_hex(6)
        self._key_seq = itertools.count(1)

    def set_addrs(self, addrs: Sequence[str]) -> None:
        """Call the instances at `addrs` from now on (discovery calls this)."""
        self.pool.set_addrs(addrs)

    def close(self) -> None:
        """Close every channel."""
        self.pool.close()

    def retry_key(self) -> str:
        """A new idempotency key for a send whose client gave none."""
        return f"g{self._key_prefix}{next(self._key_seq)}"

    async def send(
        self,
        chat: str,
        text: str,
        sender: str,
        client_msg_id: str,
        retry_key: str = "",
        *,
        actor: str = "",
    ) -> bytes:
        """Store a message through im-rpc; the JSON body of the answer. `actor` (on every
        call): the authenticated caller, "" when authentication is off."""
        self._in_flight.take()
        try:
            return await self._send(chat, text, sender, client_msg_id, retry_key, actor)
        finally:
            self._in_flight.give()

    async def _send(
        self, chat: str, text: str, sender: str, client_msg_id: str, retry_key: str, actor: str
    ) -> bytes:
        if not client_msg_id and not retry_key and self.pool.size > 1:
            retry_key = self.retry_key()
        keyed = bool(client_msg_id or retry_key)
        if self._batcher is not None:
            call = _with_actor(["send", chat, sender, text, client_msg_id, retry_key], actor)
            return await self._batcher.submit(call, keyed)
        request = SendRequest(
            chat=chat,
            text=text,
            sender=sender,
            client_msg_id=client_msg_id,
            retry_key=retry_key,
            request_id=request_id.get(),
            acting_user=actor,
        )
        sent = await self._on_any(
            "send", lambda i, c, t: i.stubs[c].send(request, timeout=t), retry=keyed
        )
        return orjson.dumps({"chat": sent.chat, "send_time": sent.send_time})

    async def pull(
        self, chat: str, cursor: int, limit: int, reverse: bool, *, actor: str = ""
    ) -> bytes:
        """Read one page through im-rpc; the JSON body of the answer."""
        return await self._read_only(
            ["pull", chat, cursor, limit, reverse, 0, actor]
            if actor
            else ["pull", chat, cursor, limit, reverse],
            lambda: PullRequest(
                chat=chat,
                cursor=cursor,
                limit=limit,
                reverse=reverse,
                request_id=request_id.get(),
                acting_user=actor,
            ),
            "pull",
            lambda i, c, t, r: i.stubs[c].pull(r, timeout=t),
            _page_body,
        )

    async def chats(self, user: str, cursor: int, limit: int, *, actor: str = "") -> bytes:
        """One page of a user's inbox through im-rpc; the JSON body of the answer."""
        return await self._read_only(
            _with_actor(["chats", user, cursor, limit], actor),
            lambda: ChatsRequest(
                user=user,
                cursor=cursor,
                limit=limit,
                request_id=request_id.get(),
                acting_user=actor,
            ),
            "chats",
            lambda i, c, t, r: i.stubs[c].chats(r, timeout=t),
            _chats_body,
        )

    async def read(self, chat: str, user: str, send_time: int, *, actor: str = "") -> bytes:
        """Move a member's read position forward through im-rpc (safe to repeat: it only
        moves forward); the JSON body of the answer."""
        return await self._read_only(
            _with_actor(["read", chat, user, send_time], actor),
            lambda: ReadRequest(
                chat=chat,
                user=user,
                send_time=send_time,
                request_id=request_id.get(),
                acting_user=actor,
            ),
            "read",
            lambda i, c, t, r: i.stubs[c].read(r, timeout=t),
            lambda r: orjson.dumps({"chat": r.chat, "user": r.user, "read_until": r.read_until}),
        )

    async def group(self, op: str, chat: str, user: str, member: str, *, actor: str = "") -> bytes:
        """A group call (create, add, remove, members) through im-rpc; the JSON body of
        the group. Each may be repeated safely but create (a second one answers 409), so
        create alone is not retried on another instance."""
        return await self._read_only(
            _with_actor(["group", op, chat, user, member], actor),
            lambda: GroupRequest(
                op=op,
                chat=chat,
                user=user,
                member=member,
                request_id=request_id.get(),
                acting_user=actor,
            ),
            "group",
            lambda i, c, t, r: i.stubs[c].group(r, timeout=t),
            _user_groups_body if op == "list" else _group_body,
            retry=op != "create",
        )

    async def _read_only(
        self,
        call: list[Any],
        request: Callable[[], R],
        method: str,
        unary: Callable[[Instance, int, float, R], Awaitable[T]],
        body: Callable[[T], bytes],
        *,
        retry: bool = True,
    ) -> bytes:
        """A call that may be repeated safely (else `retry` False: not retried on another
        instance): batched (`call`), or the typed RPC `unary` with the message `request()`
        makes, whose answer `body` turns into the public JSON body (messages are made only
        in unary mode: betterproto's are slow to build)."""
        self._in_flight.take()
        try:
            if self._batcher is not None:
                return await self._batcher.submit(call, retry)
            message = request()
            return body(
                await self._on_any(method, lambda i, c, t: unary(i, c, t, message), retry=retry)
            )
        finally:
            self._in_flight.give()

    async def pull_wait(
        self, chat: str, cursor: int, limit: int, wait_ms: int, *, actor: str = ""
    ) -> bytes:
        """A forward long poll that im-rpc holds up to `wait_ms` while the page would be
        empty. In stream mode it is a batch of its own on the batch stream (a waiting
        call in a shared batch would hold the others; a unary call would take an HTTP/2
        stream, of which a connection has 100); otherwise a Pull RPC. Not counted
        against max_in_flight (it waits, it does not load), but against max_waiting."""
        self._waiting.take()
        timeout = wait_ms / 1000 + self._timeout
        rid = request_id.get()
        try:
            if self._mode == "stream":  # a batch of its own on the stream: no HTTP/2 stream
                call = _with_actor(["pull", chat, cursor, limit, False, wait_ms], actor)
                calls = orjson.dumps([call])
                reply = await self._on_any(
                    "pull_wait",
                    lambda i, c, t: i.streams[c].call(calls, t, rid, abandon=True),
                    timeout_s=timeout,
                )
                return _answers(reply, 1)[0]
            request = PullRequest(
                chat=chat,
                cursor=cursor,
                limit=limit,
                wait_ms=wait_ms,
                request_id=rid,
                acting_user=actor,
            )
            page = await self._on_any(
                "pull_wait", lambda i, c, t: i.stubs[c].pull(request, timeout=t), timeout_s=timeout
            )
            return _page_body(page)
        finally:
            self._waiting.give()

    async def ready(self) -> bool:
        """True when an im-rpc instance reports IMService (and so its store) as serving."""
        request = HealthCheckRequest(service=SERVICE)
        try:
            reply = await self._on_any(
                "health", lambda i, c, t: i.health[c].Check(request, timeout=t)
            )
        except RpcFailure:
            return False
        return bool(reply.status == HealthCheckResponse.SERVING)

    async def _batch(self, calls: bytes, retry: bool, request_ids: str) -> BatchReplyMessage:
        if self._mode == "stream":
            return await self._on_any(
                "batch_stream",
                lambda i, c, t: i.streams[c].call(calls, t, request_ids),
                retry=retry,
            )
        request = BatchRequest(calls=calls, request_ids=request_ids)
        reply = await self._on_any(
            "batch", lambda i, c, t: i.stubs[c].batch(request, timeout=t), retry=retry
        )
        return BatchReplyMessage(reply.index, reply.bodies, reply.id)

    async def _on_any(
        self,
        method: str,
        call: Callable[[Instance, int, float], Awaitable[T]],
        *,
        retry: bool = True,
        timeout_s: float | None = None,
    ) -> T:
        """Run `call(instance, channel, seconds_left)` on an instance; once more on another
        one if the first is unavailable and time is left (of `timeout_s`, default the
        client's deadline)."""
        timeout = self._timeout if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        instance = self.pool.pick()
        if instance is None:
            raise RpcFailure(Status.UNAVAILABLE, "rpc_unavailable: no im-rpc instance is known")
        try:
            with self.pool.use(instance):
                return await self._call(method, call(instance, instance.channel(), timeout))
        except RpcFailure as failure:
            if failure.status is not Status.UNAVAILABLE:
                raise
            if failure.connection:
                self.pool.mark_down(instance)
            if not retry:
                raise
            other = self.pool.pick(exclude=instance)
            left = deadline - time.monotonic()
            if other is None or left <= 0:
                raise
        if self._observe_retry is not None:
            self._observe_retry(method)
        with self.pool.use(other):
            return await self._call(method, call(other, other.channel(), left))

    async def _call(self, method: str, call: Awaitable[T]) -> T:
        start = time.perf_counter()
        outcome = "OK"
        try:
            return await call
        except RpcFailure as failure:
            outcome = failure.status.name
            raise
        except TimeoutError:
            outcome = Status.DEADLINE_EXCEEDED.name
            raise RpcFailure(
                Status.DEADLINE_EXCEEDED,
                f"rpc_timeout: im-rpc did not answer within {self._timeout:g}s",
            ) from None
        except RPC_ERRORS as exc:
            mapped = rpc_failure(exc)
            outcome = mapped.status.name
            raise mapped from None
        finally:
            if self._observe is not None:
                self._observe(method, outcome, time.perf_counter() - start)


# a call, its answer, whether it may be retried elsewhere, its HTTP request's id
class _Bound:
    """How many calls of a kind are under way; past `limit` a new one is shed at once
    (RESOURCE_EXHAUSTED -> 503 overloaded): beyond it, waiting only adds latency."""

    def __init__(self, limit: int, what: str) -> None:
        self._limit = limit
        self._what = what
        self.count = 0

    def take(self) -> None:
        """Count one more call, or raise RpcFailure when `limit` are under way."""
        if self.count >= self._limit:
            raise RpcFailure(
                Status.RESOURCE_EXHAUSTED, f"overloaded: {self.count} {self._what}; retry later"
            )
        self.count += 1

    def give(self) -> None:
        """One call is over."""
        self.count -= 1


def _split(reply: BatchReplyMessage, calls: int) -> list[bytes | RpcFailure]:
    """Each call's answer in a BatchReply: its body, or an RpcFailure with its status."""
    index = orjson.loads(reply.index)
    if len(index) != calls:
        raise RpcFailure(Status.INTERNAL, "upstream_error: batch reply of the wrong size")
    body = memoryview(reply.bodies)
    answers: list[bytes | RpcFailure] = []
    offset = 0
    for status, length in index:
        answer = bytes(body[offset : offset + length])
        offset += length
        answers.append(answer if status == 0 else RpcFailure(Status(status), answer.decode()))
    return answers


def _answers(reply: BatchReplyMessage, calls: int) -> list[bytes]:
    """The bodies of a BatchReply's answers; the first failed one raised."""
    out = []
    for answer in _split(reply, calls):
        if isinstance(answer, RpcFailure):
            raise answer
        out.append(answer)
    return out


def _with_actor(call: list[Any], actor: str) -> list[Any]:
    """A batch call, with the acting user at its end when there is one."""
    if actor:
        call.append(actor)
    return call


def _message(m: Message) -> dict[str, Any]:
    return {"chat": m.chat, "text": m.text, "sender": m.sender, "send_time": m.send_time}


def _page_body(page: PullResponse) -> bytes:
    """The public JSON body of a PullResponse."""
    messages = [_message(m) for m in page.messages]
    body = {"messages": messages, "has_more": page.has_more, "next_cursor": page.next_cursor}
    return orjson.dumps(body)


def _group_body(reply: GroupReply) -> bytes:
    """The public JSON body of a GroupReply."""
    return orjson.dumps({"chat": reply.chat, "owner": reply.owner, "members": reply.members})


def _user_groups_body(reply: GroupReply) -> bytes:
    """The public JSON body of a user's groups, which unary mode carries in a GroupReply
    (its owner: the user; its members: the groups)."""
    return orjson.dumps({"user": reply.owner, "groups": reply.members})


def _chats_body(page: ChatsResponse) -> bytes:
    """The public JSON body of a ChatsResponse."""
    chats = [
        {"chat": c.chat, "last_message": _message(c.last_message), "unread": c.unread}
        for c in page.chats
    ]
    body = {"chats": chats, "has_more": page.has_more, "next_cursor": page.next_cursor}
    return orjson.dumps(body)


_Pending = tuple[list[Any], asyncio.Future[bytes], bool, str]


def _fail(batch: list[_Pending], failure: RpcFailure) -> None:
    for _, future, _, _ in batch:
        if not future.done():
            future.set_exception(failure)


def _encode(batch: list[_Pending]) -> tuple[bytes, list[_Pending]]:
    """The batch's calls as one JSON array, and the calls in it. A call that cannot be
    encoded (a str with lone surrogates that slipped past the parameter checks) fails
    alone with INVALID_ARGUMENT: one client's bad bytes never fail the others' calls."""
    try:
        return orjson.dumps([call for call, _, _, _ in batch]), batch
    except orjson.JSONEncodeError:
        pass
    kept: list[_Pending] = []
    for pending in batch:
        try:
            orjson.dumps(pending[0])
        except orjson.JSONEncodeError:
            bad = RpcFailure(Status.INVALID_ARGUMENT, "invalid_utf8: a parameter is not UTF-8")
            _fail([pending], bad)  # (its caller may be gone: the future already done)
        else:
            kept.append(pending)
    return orjson.dumps([call for call, _, _, _ in kept]), kept


class _Batcher:
    """Gathers the calls of one loop turn and sends them as batches of `limit` at most, each
    as soon as it is full, the last at the end of the turn; a batch may be retried
    elsewhere only when each of its calls may."""

    def __init__(
        self,
        send: Callable[[bytes, bool, str], Awaitable[BatchReplyMessage]],
        limit: int,
        observe: SizeObserver | None,
    ) -> None:
        self._send = send
        self._limit = limit
        self._observe = observe
        self._pending: list[_Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, call: list[Any], retry: bool = True) -> asyncio.Future[bytes]:
        """Queue `call`; the future gets its answer's body or an RpcFailure. A batch that
        reaches the limit goes out at once, before the loop turn's other handlers run:
        im-rpc starts on it while the gateway reads the rest."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((call, future, retry, request_id.get()))
        if len(self._pending) >= self._limit:
            self._flush()
        return future

    def _flush(self) -> None:
        if not self._pending:  # it went out full
            return
        batch, self._pending = self._pending, []
        task = start_now(self._run(batch))  # written to im-rpc before this returns
        if not task.done():
            self._tasks.add(task)  # keep a reference until it finishes
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Pending]) -> None:
        calls, batch = _encode(batch)
        if not batch:
            return
        if self._observe is not None:
            self._observe(len(batch))
        try:
            retry = all(r for _, _, r, _ in batch)
            ids = ",".join(rid for _, _, _, rid in batch)
            reply = await self._send(calls, retry, ids)
            answers = _split(reply, len(batch))
        except RpcFailure as failure:
            _fail(batch, failure)
            return
        except BaseException:  # cancelled, or a bug: no caller may wait forever
            _fail(batch, RpcFailure(Status.INTERNAL, "upstream_error: the batch was abandoned"))
            raise
        for (_, future, _, _), answer in zip(batch, answers, strict=True):
            if future.done():  # the caller went away
                continue
            if isinstance(answer, RpcFailure):
                future.set_exception(answer)
            else:
                future.set_result(answer)
