"""Gathers the calls made in one event-loop turn into batches for im-rpc.

There is no timer: a batch is whatever is ready when the loop gets to it, or, once `limit`
calls wait, a full batch that goes out at once, written to the socket by the handler that
filled it (im_common.tasks.start_now), so that im-rpc works on it while the gateway still
reads the turn's other requests. Each caller gets back its call's answer: the public JSON
body, or an RpcFailure with the call's gRPC status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import msgspec
import orjson
from grpclib.const import Status

from http_svc.errors import RpcFailure
from im_common.batch_messages import BatchReplyMessage
from im_common.calls import Call, encode
from im_common.logs import request_id
from im_common.tasks import start_now

SizeObserver = Callable[[int], None]
_ENCODE_ERRORS = (msgspec.EncodeError, UnicodeEncodeError)


def split(reply: BatchReplyMessage, calls: int) -> list[bytes | RpcFailure]:
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


_Pending = tuple[Call, asyncio.Future[bytes], bool, str]


def _fail(batch: list[_Pending], failure: RpcFailure) -> None:
    for _, future, _, _ in batch:
        if not future.done():
            future.set_exception(failure)


def _encode(batch: list[_Pending]) -> tuple[bytes, list[_Pending]]:
    """The batch's calls as one JSON array, and the calls in it. A call that cannot be
    encoded (a str with lone surrogates that slipped past the parameter checks) fails
    alone with INVALID_ARGUMENT: one client's bad bytes never fail the others' calls."""
    try:
        return encode([call for call, _, _, _ in batch]), batch
    except _ENCODE_ERRORS:
        pass
    kept: list[_Pending] = []
    for pending in batch:
        try:
            encode([pending[0]])
        except _ENCODE_ERRORS:
            bad = RpcFailure(Status.INVALID_ARGUMENT, "invalid_utf8: a parameter is not UTF-8")
            _fail([pending], bad)  # (its caller may be gone: the future already done)
        else:
            kept.append(pending)
    return encode([call for call, _, _, _ in kept]), kept


class Batcher:
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

    def submit(self, call: Call, retry: bool = True) -> asyncio.Future[bytes]:
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
            answers = split(reply, len(batch))
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
