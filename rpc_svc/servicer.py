"""gRPC transport of the chat service: proto messages <-> domain calls.

Domain errors become gRPC statuses here and nowhere else; the status message is
"<machine_code>: <message>" so the gateway can answer with the same code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from grpclib import GRPCError
from grpclib.const import Status

from im_common.logs import request_id
from improto import (
    BatchReply,
    BatchRequest,
    ImServiceBase,
    Message,
    PullRequest,
    PullResponse,
    SendRequest,
    SendResponse,
)
from rpc_svc.errors import IMError
from rpc_svc.service import ChatService, PullCall, Result, SendCall
from rpc_svc.wire import decode_calls, encode_results, status_message, status_of

log = logging.getLogger(__name__)


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


def _server_side(result: object) -> bool:
    return isinstance(result, IMError) and status_of(result) is not Status.INVALID_ARGUMENT


def _to_status(exc: IMError) -> GRPCError:
    return GRPCError(status_of(exc), status_message(exc))


class IMServicer(ImServiceBase):
    """Serves IMService: Send and Pull."""

    def __init__(self, service: ChatService, in_flight: InFlight) -> None:
        self._service = service
        self._in_flight = in_flight
        self._failures = FailureLog()

    async def send(self, send_request: SendRequest) -> SendResponse:
        """Store a message."""
        call = SendCall(
            send_request.chat,
            send_request.sender,
            send_request.text,
            send_request.client_msg_id,
            send_request.retry_key,
        )
        request_id.set(send_request.request_id)
        async with self._in_flight.track():
            try:
                sent = await self._service.send(call)
            except IMError as exc:
                self._failures.record([exc], send_request.request_id)
                raise _to_status(exc) from None
        return SendResponse(chat=sent.chat, send_time=sent.send_time)

    async def pull(self, pull_request: PullRequest) -> PullResponse:
        """Read one page of a chat."""
        call = PullCall(
            pull_request.chat, pull_request.cursor, pull_request.limit, pull_request.reverse
        )
        request_id.set(pull_request.request_id)
        async with self._in_flight.track():
            try:
                page = await self._service.pull_wait(call, pull_request.wait_ms)
            except IMError as exc:
                self._failures.record([exc], pull_request.request_id)
                raise _to_status(exc) from None
        return PullResponse(
            messages=[
                Message(
                    chat=m["chat"], text=m["text"], sender=m["sender"], send_time=m["send_time"]
                )
                for m in page.messages
            ],
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )

    async def batch(self, batch_request: BatchRequest) -> BatchReply:
        """Answer many sends and pulls at once, each with its public JSON body."""
        try:
            return await self._answer(batch_request)
        except IMError as exc:
            raise _to_status(exc) from None

    async def batch_stream(
        self, batch_request_iterator: AsyncIterator[BatchRequest]
    ) -> AsyncIterator[BatchReply]:
        """Answer each batch of the stream as soon as it is done, tagged with its id."""
        replies: asyncio.Queue[BatchReply | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()

        async def answer(request: BatchRequest) -> None:
            try:
                reply = await self._answer(request)
            except Exception as exc:  # the gateway fails the batch's calls, not waits for them
                if not isinstance(exc, IMError):
                    log.exception("batch failed")
                reply = BatchReply(index=b"[]")
            reply.id = request.id
            replies.put_nowait(reply)

        async def read() -> None:
            try:
                async for request in batch_request_iterator:
                    task = asyncio.create_task(answer(request))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.wait(set(tasks))
            finally:
                replies.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (reply := await replies.get()) is not None:
                yield reply
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()

    async def _long_poll(self, call: PullCall) -> list[Result]:
        try:
            return [await self._service.pull_wait(call, call.wait_ms)]
        except IMError as exc:
            return [exc]

    async def _answer(self, request: BatchRequest) -> BatchReply:
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
        return BatchReply(index=index, bodies=bodies)
