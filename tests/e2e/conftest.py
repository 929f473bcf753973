"""The end-to-end stack: redis-server, two im-rpc and two im-http processes on loopback.

There is one gateway per IM_RPC_MODE (stream, batch, unary), each calling both im-rpc.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis

from devtools.procs import Process, http_service, rpc_service
from http_svc.config import RPC_MODES
from tests.conftest import E2E_DB, redis_url

pytestmark = pytest.mark.e2e
_chat_ids = itertools.count()


@dataclass
class Stack:
    """The running processes of one stack."""

    redis: Process
    rpcs: list[Process]
    gateways: list[Process]

    def url(self, i: int = 0) -> str:
        """Base URL of gateway `i`."""
        return f"http://127.0.0.1:{self.gateways[i].port}"


@pytest.fixture(scope="session")
def stack(redis_proc: Process, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two im-rpc instances, a gateway per IM_RPC_MODE calling both, one Redis database."""
    workdir = tmp_path_factory.mktemp("e2e")
    rpcs = [rpc_service(workdir, redis_url(redis_proc, E2E_DB)).start() for _ in range(2)]
    ports = [r.port for r in rpcs]
    gateways = [http_service(workdir, ports, IM_RPC_MODE=mode).start() for mode in RPC_MODES]
    yield Stack(redis_proc, rpcs, gateways)
    for proc in gateways + rpcs:
        proc.stop()


@pytest.fixture(params=range(len(RPC_MODES)), ids=list(RPC_MODES))
async def client(stack: Stack, request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of each gateway in turn: one per IM_RPC_MODE."""
    async with httpx.AsyncClient(base_url=stack.url(request.param), timeout=10) as c:
        yield c


@pytest.fixture
async def e2e_redis(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    """A client of the stack's Redis database, to check what was (not) stored."""
    client = aioredis.Redis.from_url(redis_url(stack.redis, E2E_DB), decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def chat() -> tuple[str, str, str]:
    """A fresh chat for this test: (canonical name, first member, second member)."""
    n = next(_chat_ids)
    first, second = f"ann{n}", f"bob{n}"
    return f"{first}:{second}", first, second
