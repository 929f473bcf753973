"""One long-lived BatchStream call per channel: batches go out on it, replies come back by id.

A stream that fails (im-rpc gone, connection reset, stream ended) fails every batch
waiting on it with UNAVAILABLE; the next batch opens a new stream.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

from grpclib.const import Status

from http_svc.errors import RPC_ERRORS, RpcFailure, rpc_failure
from improto import BatchReply, BatchRequest, ImServiceStub


class BatchStream:
    """Sends BatchRequests on one open stream of `stub`, each answered by its reply's id."""

    def __init__(self, stub: ImServiceStub) -> None:
        self._stub = stub
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[BatchReply]] = {}
        self._outbox: asyncio.Queue[BatchRequest | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def call(self, calls: bytes, deadline_s: float, request_ids: str = "") -> BatchReply:
        """Send one batch and wait for its reply; TimeoutError after `deadline_s` seconds."""
        if self._reader is None or self._reader.done():
            self._outbox = asyncio.Queue()
            self._reader = asyncio.create_task(self._read(self._outbox))
        batch_id = next(self._ids)
        future: asyncio.Future[BatchReply] = asyncio.get_running_loop().create_future()
        self._waiters[batch_id] = future
        self._outbox.put_nowait(BatchRequest(calls=calls, id=batch_id, request_ids=request_ids))
        try:
            return await asyncio.wait_for(future, deadline_s)
        finally:
            self._waiters.pop(batch_id, None)

    def close(self) -> None:
        """End the stream; batches still waiting fail with UNAVAILABLE."""
        self._outbox.put_nowait(None)
        if self._reader is not None:
            self._reader.cancel()

    @staticmethod
    async def _requests(outbox: asyncio.Queue[BatchRequest | None]) -> AsyncIterator[BatchRequest]:
        while (request := await outbox.get()) is not None:
            yield request

    async def _read(self, outbox: asyncio.Queue[BatchRequest | None]) -> None:
        failure = RpcFailure(
            Status.UNAVAILABLE, "rpc_unavailable: the batch stream ended", connection=True
        )
        try:
            async for reply in self._stub.batch_stream(self._requests(outbox)):
                future = self._waiters.get(reply.id)
                if future is not None and not future.done():
                    future.set_result(reply)
        except RPC_ERRORS as exc:
            failure = rpc_failure(exc)
        finally:
            outbox.put_nowait(None)  # stops the request iterator if the replies ended first
            for future in list(self._waiters.values()):
                if not future.done():
                    future.set_exception(failure)
