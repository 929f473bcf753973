"""The gateway's client of im-rpc: a pool of grpclib channels, a deadline on every call.

Sends and pulls are coalesced: every call made in the same event-loop turn goes out
in one batch as soon as the loop gets to it (no timer, no added wait), and each
caller gets back its answer's public JSON body. How batches travel is the mode:
"stream" (one long-lived BatchStream per channel), "batch" (a unary Batch RPC each);
"unary" does not batch at all (a Send or Pull RPC per request). Every failure comes
out as RpcFailure with a gRPC status: a refused or broken connection is UNAVAILABLE,
a passed deadline DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from http_svc.batch_stream import BatchStream
from http_svc.errors import RPC_ERRORS, RpcFailure, rpc_failure
from improto import BatchReply, BatchRequest, ImServiceStub, PullRequest, SendRequest

T = TypeVar("T")

SERVICE_NAME = "improto.IMService"

Observer = Callable[[str, str, float], None]
SizeObserver = Callable[[int], None]


class RpcClient:
    """Calls IMService over `channels` HTTP/2 connections per address, round robin."""

    def __init__(
        self,
        addrs: Sequence[tuple[str, int]],
        channels: int,
        timeout_s: float,
        *,
        mode: str = "stream",
        batch_max: int = 128,
        observe: Observer | None = None,
        observe_batch: SizeObserver | None = None,
    ) -> None:
        self._channels = [Channel(host, port) for host, port in addrs for _ in range(channels)]
        self._stubs = [ImServiceStub(ch) for ch in self._channels]
        self._health = [HealthStub(ch) for ch in self._channels]
        self._next = itertools.cycle(range(len(self._channels)))
        self._timeout = timeout_s
        self._observe = observe
        self._streams = [BatchStream(stub) for stub in self._stubs] if mode == "stream" else []
        self._batcher = _Batcher(self._batch, batch_max, observe_batch) if mode != "unary" else None

    def close(self) -> None:
        """Close every channel."""
        for stream in self._streams:
            stream.close()
        for channel in self._channels:
            channel.close()

    async def send(self, chat: str, text: str, sender: str, client_msg_id: str) -> bytes:
        """Store a message through im-rpc; the JSON body of the answer."""
        if self._batcher is not None:
            return await self._batcher.submit(["send", chat, sender, text, client_msg_id])
        request = SendRequest(chat=chat, text=text, sender=sender, client_msg_id=client_msg_id)
        stub = self._stubs[next(self._next)]
        sent = await self._call("send", stub.send(request, timeout=self._timeout))
        return orjson.dumps({"chat": sent.chat, "send_time": sent.send_time})

    async def pull(self, chat: str, cursor: int, limit: int, reverse: bool) -> bytes:
        """Read one page through im-rpc; the JSON body of the answer."""
        if self._batcher is not None:
            return await self._batcher.submit(["pull", chat, cursor, limit, reverse])
        request = PullRequest(chat=chat, cursor=cursor, limit=limit, reverse=reverse)
        stub = self._stubs[next(self._next)]
        page = await self._call("pull", stub.pull(request, timeout=self._timeout))
        messages = [
            {"chat": m.chat, "text": m.text, "sender": m.sender, "send_time": m.send_time}
            for m in page.messages
        ]
        body = {"messages": messages, "has_more": page.has_more, "next_cursor": page.next_cursor}
        return orjson.dumps(body)

    async def ready(self) -> bool:
        """True when an im-rpc instance reports IMService (and so its store) as serving."""
        stub = self._health[next(self._next)]
        reply = await self._call(
            "health", stub.Check(HealthCheckRequest(service=SERVICE_NAME), timeout=self._timeout)
        )
        return bool(reply.status == HealthCheckResponse.SERVING)

    async def _batch(self, calls: bytes) -> BatchReply:
        i = next(self._next)
        if self._streams:
            return await self._call("batch_stream", self._streams[i].call(calls, self._timeout))
        request = BatchRequest(calls=calls)
        return await self._call("batch", self._stubs[i].batch(request, timeout=self._timeout))

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


class _Batcher:
    """Gathers the calls of one loop turn and sends them as Batch RPCs of `limit` at most."""

    def __init__(
        self,
        send: Callable[[bytes], Awaitable[BatchReply]],
        limit: int,
        observe: SizeObserver | None,
    ) -> None:
        self._send = send
        self._limit = limit
        self._observe = observe
        self._pending: list[tuple[list[Any], asyncio.Future[bytes]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, call: list[Any]) -> asyncio.Future[bytes]:
        """Queue `call`; the future gets its answer's body or an RpcFailure."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((call, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for start in range(0, len(pending), self._limit):
            task = asyncio.create_task(self._run(pending[start : start + self._limit]))
            self._tasks.add(task)  # keep a reference until it finishes
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[list[Any], asyncio.Future[bytes]]]) -> None:
        if self._observe is not None:
            self._observe(len(batch))
        try:
            reply = await self._send(orjson.dumps([call for call, _ in batch]))
            index = orjson.loads(reply.index)
            if len(index) != len(batch):
                raise RpcFailure(Status.INTERNAL, "upstream_error: batch reply of the wrong size")
        except RpcFailure as failure:
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        body = memoryview(reply.bodies)
        offset = 0
        for (_, future), (status, length) in zip(batch, index, strict=True):
            answer = bytes(body[offset : offset + length])
            offset += length
            if future.done():  # the caller went away
                continue
            if status == 0:
                future.set_result(answer)
            else:
                future.set_exception(RpcFailure(Status(status), answer.decode()))
