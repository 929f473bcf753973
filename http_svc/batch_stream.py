"""One long-lived BatchStream call per channel: batches go out on it, replies come back by id.

A batch is written to the stream by the coroutine that sends it, with no queue or task in
between: started with `start_now`, it is on the socket before the loop turn goes on. A
reader task per stream opens it and hands each reply to the batch waiting for its id.
A stream that fails (im-rpc gone, connection reset, stream ended) fails every batch
waiting on it with UNAVAILABLE; the next batch opens a new stream.
"""

from __future__ import annotations

import asyncio
import itertools

from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status

from http_svc.errors import RPC_ERRORS, RpcFailure, rpc_failure
from im_common.batch_messages import BatchReplyMessage, BatchRequestMessage
from im_common.rpc_names import BATCH_STREAM

_Stream = Stream[BatchRequestMessage, BatchReplyMessage]


class BatchStream:
    """Sends BatchRequests on one open stream of `channel`, each answered by its reply's id
    (both coded by im_common.batch_messages)."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[BatchReplyMessage]] = {}
        self._writing = asyncio.Lock()  # one message at a time: its frames must not interleave
        self._opened: asyncio.Future[_Stream] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._cancels: set[asyncio.Task[None]] = set()  # abandoned batches' cancel messages

    async def call(
        self, calls: bytes, deadline_s: float, request_ids: str = "", abandon: bool = False
    ) -> BatchReplyMessage:
        """Send one batch and wait for its reply; TimeoutError after `deadline_s` seconds.
        `abandon`: when the caller goes away (its client disconnected) before the reply,
        tell im-rpc to stop the batch (for long polls: they only read, and hold a wait)."""
        async with asyncio.timeout(deadline_s):
            stream = await self._stream()
            batch_id = next(self._ids)
            future: asyncio.Future[BatchReplyMessage] = asyncio.get_running_loop().create_future()
            self._waiters[batch_id] = future
            try:
                async with self._writing:
                    try:
                        await stream.send_message(BatchRequestMessage(calls, batch_id, request_ids))
                    except asyncio.CancelledError:  # cut short (a stalled write, a deadline):
                        self.close()  # its message may be half sent, so the stream is done
                        raise
                try:
                    return await future
                except asyncio.CancelledError:  # (cancelling the task cancelled the future too)
                    if abandon and (future.cancelled() or not future.done()):
                        self._abandon(stream, batch_id)
                    raise
            except RPC_ERRORS as exc:
                raise rpc_failure(exc) from None
            finally:
                self._waiters.pop(batch_id, None)

    def _abandon(self, stream: _Stream, batch_id: int) -> None:
        """Ask im-rpc to stop batch `batch_id`: a request with no calls (see protos/im.proto)."""
        task = asyncio.get_running_loop().create_task(self._send_cancel(stream, batch_id))
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def _send_cancel(self, stream: _Stream, batch_id: int) -> None:
        opened = self._opened
        if (
            opened is None
            or not opened.done()
            or opened.exception()
            or opened.result() is not stream
        ):
            return  # that stream has ended: im-rpc dropped its batches with it
        try:
            async with self._writing:
                await stream.send_message(BatchRequestMessage(b"", batch_id))
        except RPC_ERRORS:
            pass  # the stream is failing: the reader fails its batches

    def close(self) -> None:
        """End the stream; batches still waiting fail with UNAVAILABLE."""
        if self._reader is not None:
            self._reader.cancel()

    async def _stream(self) -> _Stream:
        opened = self._opened
        if opened is None:  # the first batch, or the last stream has ended
            opened = self._opened = asyncio.get_running_loop().create_future()
            self._reader = asyncio.create_task(self._read(opened))
        if opened.done():
            return opened.result()
        return await asyncio.shield(opened)  # a caller's deadline must not cancel it for all

    async def _read(self, opened: asyncio.Future[_Stream]) -> None:
        failure = RpcFailure(
            Status.UNAVAILABLE, "rpc_unavailable: the batch stream ended", connection=True
        )
        try:
            request = self._channel.request(
                BATCH_STREAM, Cardinality.STREAM_STREAM, BatchRequestMessage, BatchReplyMessage
            )
            async with request as stream:
                await stream.send_request()
                opened.set_result(stream)
                while (reply := await stream.recv_message()) is not None:
                    future = self._waiters.get(reply.id)
                    if future is not None and not future.done():
                        future.set_result(reply)
        except RPC_ERRORS as exc:
            failure = rpc_failure(exc)
        finally:
            if self._opened is opened:
                self._opened = None
            if not opened.done():
                opened.set_exception(failure)
                opened.exception()  # nobody may be waiting for it: no "never retrieved"
            for future in list(self._waiters.values()):
                if not future.done():
                    future.set_exception(failure)
