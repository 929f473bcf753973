"""The end-to-end stacks: redis-server, two im-rpc and a gateway per IM_RPC_MODE (stream,
batch, unary), each calling both im-rpc; the same on a Redis Cluster (two im-rpc with
IM_REDIS_CLUSTER=1, one gateway); and per IM_RPC_MODE a gateway and im-rpc in the test's
own process. A test taking `client` runs against each of the seven.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis.asyncio as aioredis

from devtools.procs import Process, http_service, rpc_service
from devtools.redis_cluster import RedisClusterNodes
from http_svc.config import RPC_MODES
from tests.conftest import E2E_DB, redis_url
from tests.in_process import in_process_stack

pytestmark = pytest.mark.e2e
_chat_ids = itertools.count()


@dataclass
class Stack:
    """The running processes of one stack."""

    redis: Process
    rpcs: list[Process]
    gateways: list[Process]
    cluster: RedisClusterNodes | None = None

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


@pytest.fixture(scope="session")
def cluster_stack(
    redis_cluster: RedisClusterNodes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Two im-rpc on the Redis Cluster and one gateway (stream mode) calling both."""
    workdir = tmp_path_factory.mktemp("e2e-cluster")
    rpcs = [rpc_service(workdir, redis_cluster.url, IM_REDIS_CLUSTER="1").start() for _ in range(2)]
    gateways = [http_service(workdir, [r.port for r in rpcs]).start()]
    yield Stack(redis_cluster.nodes[0], rpcs, gateways, redis_cluster)
    for proc in gateways + rpcs:
        proc.stop()


IN_PROCESS = [f"in_process_{mode}" for mode in RPC_MODES]


@pytest.fixture(params=[*RPC_MODES, "cluster", *IN_PROCESS])
def api_stack(request: pytest.FixtureRequest) -> tuple[Stack, int | str]:
    """A stack and the gateway to call: each IM_RPC_MODE's, the cluster stack's, then per
    IM_RPC_MODE a gateway and im-rpc in the test's own process on the session's Redis (the
    IM_RPC_MODE instead of the gateway's index)."""
    if request.param == "cluster":
        return request.getfixturevalue("cluster_stack"), 0
    if request.param in IN_PROCESS:  # only the session's Redis: no processes to start
        mode = request.param.removeprefix("in_process_")
        return Stack(request.getfixturevalue("redis_proc"), [], []), mode
    return request.getfixturevalue("stack"), RPC_MODES.index(request.param)


@pytest.fixture
async def client(api_stack: tuple[Stack, int | str]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of each gateway in turn: one per IM_RPC_MODE, one on the cluster, and
    one per IM_RPC_MODE in this process (tests/in_process.py: what mutation testing sees)."""
    stack, gateway = api_stack
    if isinstance(gateway, str):
        async with (
            in_process_stack(redis_url(stack.redis, E2E_DB), {"rpc_mode": gateway}) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as c,
        ):
            yield c
        return
    async with httpx.AsyncClient(base_url=stack.url(gateway), timeout=10) as c:
        yield c


@pytest.fixture
async def e2e_redis(api_stack: tuple[Stack, int | str]) -> AsyncIterator[aioredis.Redis]:
    """A client of the Redis database (or cluster) behind `client`, to check what was
    (not) stored."""
    stack, _ = api_stack
    if stack.cluster is not None:
        client: aioredis.Redis = aioredis.RedisCluster.from_url(  # type: ignore[assignment]
            stack.cluster.url, decode_responses=True
        )
    else:
        client = aioredis.Redis.from_url(redis_url(stack.redis, E2E_DB), decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def chat() -> tuple[str, str, str]:
    """A fresh chat for this test: (canonical name, first member, second member)."""
    n = next(_chat_ids)
    first, second = f"ann{n}", f"bob{n}"
    return f"{first}:{second}", first, second
