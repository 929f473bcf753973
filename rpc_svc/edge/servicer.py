"""im-rpc's one RPC: BatchStream. Each batch that comes in on the stream is answered as
soon as it is done, tagged with its id; a long poll travels in a batch of its own, so that
its wait holds no other call. Domain errors become gRPC statuses (edge.wire) here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast

from grpclib.const import Cardinality, Handler, Status
from grpclib.server import Stream

from im_common.batch_messages import BatchReplyMessage, BatchRequestMessage
from im_common.calls import Call, PullCall, SyncCall
from im_common.rpc_names import BATCH_STREAM
from im_common.tasks import start_now
from rpc_svc.domain.errors import IMError, SyncLostWrites
from rpc_svc.edge.wire import Answer, decode_calls, encode_results, status_of

log = logging.getLogger(__name__)


class Answers(Protocol):
    """What answers the calls (rpc_svc.service.runner.ChatService)."""

    async def run(self, calls: Sequence[Call | IMError]) -> Sequence[Answer]:
        """Each call's answer, in order."""
        ...

    async def pull_wait(self, call: PullCall, wait_ms: int) -> Any:
        """A long poll's page."""
        ...

    async def sync_wait(self, call: SyncCall) -> Any:
        """A waiting sync's page."""
        ...


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
    """Logs calls that failed on the server's side (store down or slow, a bug, a sync token
    naming writes the store lost): at most one line per `every_s` seconds, with the request
    ids and how many failed meanwhile."""

    def __init__(self, every_s: float = 1.0) -> None:
        self._every_s = every_s
        self._next = 0.0
        self._failed = 0
        self.counts: dict[str, int] = {}  # every failure since the start, by error code

    def record(self, results: Sequence[object], request_ids: str) -> None:
        """Note the server-side failures among `results` (one per request id, in order)."""
        failed = [i for i, r in enumerate(results) if _server_side(r)]
        if not failed:
            return
        self._failed += len(failed)
        for i in failed:
            code = cast(IMError, results[i]).code
            self.counts[code] = self.counts.get(code, 0) + 1
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
    Status.OUT_OF_RANGE,  # a sync token older than what is kept
)


def _server_side(result: object) -> bool:
    if not isinstance(result, IMError):  # (most results: one check a call)
        return False
    # a lost-writes reset is answered as the client's, but is the store's failure
    return isinstance(result, SyncLostWrites) or status_of(result) not in _CLIENT_SIDE


def _forget(tasks: dict[int, asyncio.Task[None]], batch_id: int, _: object) -> None:
    tasks.pop(batch_id, None)


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


class IMServicer:
    """Serves BatchStream (grpclib's IServable: a __mapping__ of its one method)."""

    def __init__(
        self, service: Answers, in_flight: InFlight, failures: FailureLog | None = None
    ) -> None:
        self._service = service
        self._in_flight = in_flight
        self._failures = FailureLog() if failures is None else failures

    def __mapping__(self) -> dict[str, Handler]:
        return {
            BATCH_STREAM: Handler(
                self._batch_stream,
                Cardinality.STREAM_STREAM,
                BatchRequestMessage,
                BatchReplyMessage,
            )
        }

    async def _batch_stream(self, stream: Stream[BatchRequestMessage, BatchReplyMessage]) -> None:
        """Answer each batch of the stream as soon as it is done, tagged with its id.

        Served on grpclib's stream itself: each batch starts at once, in the step that read
        it, and writes its own reply. Its messages are coded by im_common.batch_messages, not
        betterproto (50-60 us a message). A batch with no calls stops the batch of its id
        (the gateway's client went away)."""
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

    async def _long_poll(self, call: PullCall | SyncCall) -> list[Answer]:
        try:
            if isinstance(call, SyncCall):
                return [await self._service.sync_wait(call)]
            return [await self._service.pull_wait(call, call.wait_ms)]
        except IMError as exc:
            return [exc]

    async def _answer(self, request: BatchRequestMessage) -> BatchReplyMessage:
        calls = decode_calls(request.calls)
        async with self._in_flight.track():
            match calls:
                case [PullCall(wait_ms=wait_ms) | SyncCall(wait_ms=wait_ms) as call] if wait_ms > 0:
                    # a long poll travels alone, so that its wait holds no other call
                    results = await self._long_poll(call)
                case _:
                    results = list(await self._service.run(calls))
        self._failures.record(results, request.request_ids)
        index, bodies = encode_results(results)
        return BatchReplyMessage(index, bodies)
