"""gRPC transport of the chat service: proto messages <-> domain calls.

Domain errors become gRPC statuses here and nowhere else; the status message is
"<machine_code>: <message>" so the gateway can answer with the same code.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

from grpclib import GRPCError
from grpclib.const import Cardinality, Handler, Status
from grpclib.server import Stream

from im_common.batch_messages import BatchReplyMessage, BatchRequestMessage
from im_common.logs import request_id
from im_common.rpc_names import BATCH_STREAM
from im_common.tasks import start_now
from improto import (
    BatchReply,
    BatchRequest,
    ChatsRequest,
    ChatsResponse,
    ChatSummary,
    GroupReply,
    GroupRequest,
    ImServiceBase,
    Message,
    PullRequest,
    PullResponse,
    ReadRequest,
    ReadResponse,
    SendRequest,
    SendResponse,
)
from rpc_svc.chat import Message as MessageDict
from rpc_svc.errors import IMError
from rpc_svc.group_service import GroupCall
from rpc_svc.groups import UserGroupList
from rpc_svc.service import ChatsCall, ChatService, PullCall, ReadCall, Result, SendCall
from rpc_svc.wire import decode_calls, encode_results, status_message, status_of

log = logging.getLogger(__name__)
T = TypeVar("T")


class InFlight:
    """Counts calls being served, so a stop can wait for them to finish."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Count one call for as long as the block runs."""
        self.count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.count -= 1
            if not self.count:
                self._idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        """Wait until no call is in flight or `seconds` pass; True when idle."""
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True


class FailureLog:
    """Logs calls that failed on the server's side (store down or slow, a bug): at most one
    line per `every_s` seconds, with the request ids and how many failed meanwhile."""

    def __init__(self, every_s: float = 1.0) -> None:
        self._every_s = every_s
        self._next = 0.0
        self._failed = 0

    def record(self, results: Sequence[object], request_ids: str) -> None:
        """Note the server-side failures among `results` (one per request id, in order)."""
        failed = [i for i, r in enumerate(results) if _server_side(r)]
        if not failed:
            return
        self._failed += len(failed)
        now = time.monotonic()
        if now < self._next:
            return
        ids = request_ids.split(",") if request_ids else []
        first = results[failed[0]]
        assert isinstance(first, IMError)
        log.warning(
            "%d call(s) failed: %s: %s",
            self._failed,
            first.code,
            first.message,
            extra={"request_ids": [ids[i] for i in failed if i < len(ids)][:20]},
        )
        self._failed = 0
        self._next = now + self._every_s


_CLIENT_SIDE = (
    Status.INVALID_ARGUMENT,
    Status.PERMISSION_DENIED,
    Status.NOT_FOUND,
    Status.ALREADY_EXISTS,
)


def _server_side(result: object) -> bool:
    return isinstance(result, IMError) and status_of(result) not in _CLIENT_SIDE


def _forget(tasks: dict[int, asyncio.Task[None]], batch_id: int, _: object) -> None:
    tasks.pop(batch_id, None)


def _to_status(exc: IMError) -> GRPCError:
    return GRPCError(status_of(exc), status_message(exc))


def _failed_batch(request: BatchRequestMessage, exc: Exception) -> BatchReplyMessage:
    """The reply to a batch that failed as a whole: each call answered with the error (an
    IMError, or INTERNAL for a bug), so the gateway answers each call for itself; an empty
    index only where the calls could not even be counted (not a JSON array)."""
    try:
        count = len(decode_calls(request.calls))
    except IMError:
        return BatchReplyMessage(index=b"[]")
    error = exc if isinstance(exc, IMError) else IMError("im-rpc could not answer this batch")
    index, bodies = encode_results([error] * count)
    return BatchReplyMessage(index, bodies)


def _message(m: MessageDict) -> Message:
    return Message(chat=m["chat"], text=m["text"], sender=m["sender"], send_time=m["send_time"])


class IMServicer(ImServiceBase):
    """Serves IMService: Send and Pull."""

    def __init__(self, service: ChatService, in_flight: InFlight) -> None:
        self._service = service
        self._in_flight = in_flight
        self._failures = FailureLog()

    async def _unary(self, rid: str, work: Awaitable[T]) -> T:
        """Run one typed call: counted in flight, logged by request id, errors as statuses."""
        request_id.set(rid)
        async with self._in_flight.track():
            try:
                return await work
            except IMError as exc:
                self._failures.record([exc], rid)
                raise _to_status(exc) from None

    async def send(self, send_request: SendRequest) -> SendResponse:
        """Store a message."""
        r = send_request
        call = SendCall(r.chat, r.sender, r.text, r.client_msg_id, r.retry_key, r.acting_user)
        sent = await self._unary(r.request_id, self._service.send(call))
        return SendResponse(chat=sent.chat, send_time=sent.send_time)

    async def pull(self, pull_request: PullRequest) -> PullResponse:
        """Read one page of a chat (a forward pull with wait_ms long-polls)."""
        r = pull_request
        call = PullCall(r.chat, r.cursor, r.limit, r.reverse, actor=r.acting_user)
        page = await self._unary(r.request_id, self._service.pull_wait(call, r.wait_ms))
        return PullResponse(
            messages=[_message(m) for m in page.messages],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )

    async def chats(self, chats_request: ChatsRequest) -> ChatsResponse:
        """One page of a user's chats."""
        r = chats_request
        page = await self._unary(
            r.request_id, self._service.chats(ChatsCall(r.user, r.cursor, r.limit, r.acting_user))
        )
        return ChatsResponse(
            chats=[
                ChatSummary(
                    chat=c["chat"], last_message=_message(c["last_message"]), unread=c["unread"]
                )
                for c in page.chats
            ],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )

    async def read(self, read_request: ReadRequest) -> ReadResponse:
        """Move a member's read position forward."""
        r = read_request
        done = await self._unary(
            r.request_id,
            self._service.mark_read(ReadCall(r.chat, r.user, r.send_time, r.acting_user)),
        )
        return ReadResponse(chat=done.chat, user=done.user, read_until=done.read_until)

    async def group(self, group_request: GroupRequest) -> GroupReply:
        """A group call: create, add, remove, members; list (a user's groups, as the
        reply's owner and members: the unary mode goes with the next regrouping)."""
        r = group_request
        call = GroupCall(r.op, r.chat, r.user, r.member, r.acting_user)
        group = await self._unary(r.request_id, self._service.group(call))
        if isinstance(group, UserGroupList):
            return GroupReply(chat="", owner=group.user, members=group.groups)
        return GroupReply(chat=group.chat, owner=group.owner, members=group.members)

    async def batch(self, batch_request: BatchRequest) -> BatchReply:
        """Answer many sends and pulls at once, each with its public JSON body."""
        r = batch_request
        try:
            reply = await self._answer(BatchRequestMessage(r.calls, r.id, r.request_ids))
        except IMError as exc:
            raise _to_status(exc) from None
        return BatchReply(index=reply.index, bodies=reply.bodies)

    def __mapping__(self) -> dict[str, Handler]:
        mapping = super().__mapping__()
        mapping[BATCH_STREAM] = Handler(
            self._batch_stream, Cardinality.STREAM_STREAM, BatchRequestMessage, BatchReplyMessage
        )
        return mapping

    async def _batch_stream(self, stream: Stream[BatchRequestMessage, BatchReplyMessage]) -> None:
        """Answer each batch of the stream as soon as it is done, tagged with its id.

        Served on grpclib's stream itself (not the generated generator method): each batch
        starts at once, in the step that read it, and writes its own reply. Its messages are
        coded by im_common.batch_messages, not betterproto (50-60 us a message)."""
        writing = asyncio.Lock()  # one reply at a time: its frames must not interleave
        tasks: dict[int, asyncio.Task[None]] = {}  # by batch id

        async def answer(request: BatchRequestMessage) -> None:
            try:
                reply = await self._answer(request)
            except Exception as exc:  # the gateway fails the batch's calls, not waits for them
                if not isinstance(exc, IMError):
                    log.exception("batch failed")
                reply = _failed_batch(request, exc)
            reply.id = request.id
            async with writing:
                await stream.send_message(reply)

        try:
            async for request in stream:
                if not request.calls:  # the gateway's client went away: stop that batch
                    running = tasks.get(request.id)
                    if running is not None:
                        running.cancel()
                    continue
                task = start_now(answer(request))
                if not task.done():
                    tasks[request.id] = task
                    task.add_done_callback(functools.partial(_forget, tasks, request.id))
            if tasks:
                await asyncio.wait(set(tasks.values()))
        finally:
            for task in list(tasks.values()):
                task.cancel()

    async def _long_poll(self, call: PullCall) -> list[Result]:
        try:
            return [await self._service.pull_wait(call, call.wait_ms)]
        except IMError as exc:
            return [exc]

    async def _answer(self, request: BatchRequestMessage) -> BatchReplyMessage:
        calls = decode_calls(request.calls)
        async with self._in_flight.track():
            match calls:
                case [PullCall(wait_ms=wait_ms) as call] if wait_ms > 0:
                    # a long poll travels alone, so that its wait holds no other call
                    results = await self._long_poll(call)
                case _:
                    results = await self._service.run(calls)
        self._failures.record(results, request.request_ids)
        index, bodies = encode_results(results)
        return BatchReplyMessage(index, bodies)
