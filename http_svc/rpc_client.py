"""The gateway's client of im-rpc: a pool of grpclib channels, a deadline on every call.

Every call travels in a batch on one long-lived BatchStream per channel (rpc_svc.edge):
the calls of one event-loop turn together (http_svc.batcher), a long poll in a batch of
its own. Each caller gets back its answer's public JSON body. Every failure comes out as
RpcFailure with a gRPC status: a refused or broken connection is UNAVAILABLE, a passed
deadline DEADLINE_EXCEEDED. Which instance serves a call is the InstancePool's choice; an
unavailable one costs a retry on another, not an error.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec
from grpclib.const import Status
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from http_svc.batcher import Batcher, SizeObserver, split
from http_svc.errors import RPC_ERRORS, RpcFailure, rpc_failure
from http_svc.instances import Instance, InstancePool
from im_common.batch_messages import BatchReplyMessage
from im_common.calls import Call, EditCall, GroupCall, PullCall, SendCall, SyncCall, encode
from im_common.logs import request_id
from im_common.rpc_names import SERVICE

T = TypeVar("T")

Observer = Callable[[str, str, float], None]
RetryObserver = Callable[[str], None]


class RpcClient:
    """Calls im-rpc on the instances of an InstancePool, `channels` connections each.

    A call that fails with UNAVAILABLE (connection refused or reset, instance going
    away) is retried once on another instance within the same deadline. For sends that
    is safe only with an idempotency key: the client's, nginx's retry key, or one made
    here whenever there is another instance to retry on. A batch holding a send without
    any key (there was a single instance when it was made), or a group's creation, is not
    retried.
    """

    def __init__(
        self,
        addrs: Sequence[str],
        channels: int,
        timeout_s: float,
        *,
        batch_max: int = 32,
        max_in_flight: int = 1 << 30,
        max_waiting: int = 1 << 30,
        observe: Observer | None = None,
        observe_batch: SizeObserver | None = None,
        observe_retry: RetryObserver | None = None,
    ) -> None:
        self.pool = InstancePool(channels)
        self.pool.set_addrs(addrs)
        self._timeout = timeout_s
        self._in_flight = _Bound(max_in_flight, "calls to im-rpc in flight")
        self._waiting = _Bound(max_waiting, "long polls waiting")
        self._observe = observe
        self._observe_retry = observe_retry
        self._batcher = Batcher(self._batch, batch_max, observe_batch)
        # Keys for sends without client_msg_id: unique per process start, cheap to make.
        self._key_prefix = secrets.token_hex(6)
        self._key_seq = itertools.count(1)

    @property
    def in_flight(self) -> tuple[int, int]:
        """Calls to im-rpc under way now (long polls aside), and their bound."""
        return self._in_flight.count, self._in_flight.limit

    @property
    def waiting(self) -> tuple[int, int]:
        """Long polls (pulls and syncs with wait_ms) waiting now, and their bound."""
        return self._waiting.count, self._waiting.limit

    def set_addrs(self, addrs: Sequence[str]) -> None:
        """Call the instances at `addrs` from now on (discovery calls this)."""
        self.pool.set_addrs(addrs)

    def close(self) -> None:
        """Close every channel."""
        self.pool.close()

    def retry_key(self) -> str:
        """A new idempotency key for a send whose client gave none."""
        return f"g{self._key_prefix}{next(self._key_seq)}"

    async def call(self, call: Call) -> bytes:
        """The answer of one call through im-rpc (batched): its public JSON body. A send
        without a key gets one when there is another instance to retry on."""
        keyless = type(call) is SendCall and not (call.client_msg_id or call.retry_key)
        if keyless and self.pool.size > 1:
            call = msgspec.structs.replace(call, retry_key=self.retry_key())
        self._in_flight.take()
        try:
            return await self._batcher.submit(call, _may_retry(call))
        finally:
            self._in_flight.give()

    async def wait(self, call: PullCall | SyncCall) -> bytes:
        """A long poll (a forward pull, or a sync with a token) that im-rpc holds up to
        `call.wait_ms` while its answer would be empty: a batch of its own on the batch
        stream (in a shared batch it would hold the others; an RPC of its own would take an
        HTTP/2 stream, of which a connection has 100). Not counted against max_in_flight (it
        waits, it does not load), but against max_waiting."""
        self._waiting.take()
        timeout = call.wait_ms / 1000 + self._timeout
        rid = request_id.get()
        calls = encode([call])
        try:
            reply = await self._on_any(
                "wait",
                lambda i, c, t: i.streams[c].call(calls, t, rid, abandon=True),
                timeout_s=timeout,
            )
        finally:
            self._waiting.give()
        (answer,) = split(reply, 1)
        if isinstance(answer, RpcFailure):
            raise answer
        return answer

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
        return await self._on_any(
            "batch_stream",
            lambda i, c, t: i.streams[c].call(calls, t, request_ids),
            retry=retry,
        )

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


def _may_retry(call: Call) -> bool:
    """Whether `call` may run again on another instance: any but a send without a key (it
    could be stored twice), an edit (a second one is another edit) and a group's creation
    (a second one answers 409)."""
    if type(call) is SendCall:
        return bool(call.client_msg_id or call.retry_key)
    if type(call) is EditCall:
        return False
    return not (type(call) is GroupCall and call.op == "create")


class _Bound:
    """How many calls of a kind are under way; past `limit` a new one is shed at once
    (RESOURCE_EXHAUSTED -> 503 overloaded): beyond it, waiting only adds latency."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self._what = what
        self.count = 0

    def take(self) -> None:
        """Count one more call, or raise RpcFailure when `limit` are under way."""
        if self.count >= self.limit:
            raise RpcFailure(
                Status.RESOURCE_EXHAUSTED, f"overloaded: {self.count} {self._what}; retry later"
            )
        self.count += 1

    def give(self) -> None:
        """One call is over."""
        self.count -= 1
