"""The gateway's client of im-rpc: a pool of grpclib channels, a deadline on every call.

Every failure comes out as RpcFailure with a gRPC status: a refused or broken
connection is UNAVAILABLE, a passed deadline DEADLINE_EXCEEDED.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from grpclib.exceptions import ProtocolError, StreamTerminatedError
from grpclib.health.v1.health_grpc import HealthStub
from grpclib.health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from http_svc.errors import RpcFailure
from improto import ImServiceStub, PullRequest, PullResponse, SendRequest, SendResponse

T = TypeVar("T")

SERVICE_NAME = "improto.IMService"

Observer = Callable[[str, str, float], None]


class RpcClient:
    """Calls IMService over `channels` HTTP/2 connections per address, round robin."""

    def __init__(
        self,
        addrs: Sequence[tuple[str, int]],
        channels: int,
        timeout_s: float,
        observe: Observer | None = None,
    ) -> None:
        self._channels = [Channel(host, port) for host, port in addrs for _ in range(channels)]
        self._stubs = [ImServiceStub(ch) for ch in self._channels]
        self._health = [HealthStub(ch) for ch in self._channels]
        self._next = itertools.cycle(range(len(self._channels)))
        self._timeout = timeout_s
        self._observe = observe

    def close(self) -> None:
        """Close every channel."""
        for channel in self._channels:
            channel.close()

    async def send(self, chat: str, text: str, sender: str, client_msg_id: str) -> SendResponse:
        """Store a message through im-rpc."""
        stub = self._stubs[next(self._next)]
        request = SendRequest(chat=chat, text=text, sender=sender, client_msg_id=client_msg_id)
        return await self._call("send", stub.send(request, timeout=self._timeout))

    async def pull(self, chat: str, cursor: int, limit: int, reverse: bool) -> PullResponse:
        """Read one page through im-rpc."""
        stub = self._stubs[next(self._next)]
        request = PullRequest(chat=chat, cursor=cursor, limit=limit, reverse=reverse)
        return await self._call("pull", stub.pull(request, timeout=self._timeout))

    async def ready(self) -> bool:
        """True when an im-rpc instance reports IMService (and so its store) as serving."""
        stub = self._health[next(self._next)]
        reply = await self._call(
            "health", stub.Check(HealthCheckRequest(service=SERVICE_NAME), timeout=self._timeout)
        )
        return bool(reply.status == HealthCheckResponse.SERVING)

    async def _call(self, method: str, call: Awaitable[T]) -> T:
        start = time.perf_counter()
        outcome = "OK"
        try:
            return await call
        except GRPCError as exc:
            outcome = exc.status.name
            raise RpcFailure(exc.status, exc.message or "") from None
        except TimeoutError:
            outcome = Status.DEADLINE_EXCEEDED.name
            raise RpcFailure(
                Status.DEADLINE_EXCEEDED,
                f"rpc_timeout: im-rpc did not answer within {self._timeout:g}s",
            ) from None
        except (OSError, StreamTerminatedError, ProtocolError) as exc:
            outcome = Status.UNAVAILABLE.name
            raise RpcFailure(
                Status.UNAVAILABLE, f"rpc_unavailable: im-rpc cannot be reached: {exc}"
            ) from None
        finally:
            if self._observe is not None:
                self._observe(method, outcome, time.perf_counter() - start)
