"""The end-to-end stacks, one per real topology: redis-server, two im-rpc and two gateways
calling both; the same on a Redis Cluster (two im-rpc with IM_REDIS_CLUSTER=1); and a
gateway and im-rpc in the test's own process (what mutation testing can see). A test taking
`client` runs against each of the three.
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
    """Two im-rpc instances and two gateways calling both, one Redis database."""
    workdir = tmp_path_factory.mktemp("e2e")
    rpcs = [rpc_service(workdir, redis_url(redis_proc, E2E_DB)).start() for _ in range(2)]
    gateways = [http_service(workdir, [r.port for r in rpcs]).start() for _ in range(2)]
    yield Stack(redis_proc, rpcs, gateways)
    for proc in gateways + rpcs:
        proc.stop()


@pytest.fixture(scope="session")
def cluster_stack(
    redis_cluster: RedisClusterNodes, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Two im-rpc on the Redis Cluster and one gateway calling both."""
    workdir = tmp_path_factory.mktemp("e2e-cluster")
    rpcs = [rpc_service(workdir, redis_cluster.url, IM_REDIS_CLUSTER="1").start() for _ in range(2)]
    gateways = [http_service(workdir, [r.port for r in rpcs]).start()]
    yield Stack(redis_cluster.nodes[0], rpcs, gateways, redis_cluster)
    for proc in gateways + rpcs:
        proc.stop()


@pytest.fixture(params=["redis", "cluster", "in_process"])
def api_stack(request: pytest.FixtureRequest) -> tuple[Stack, bool]:
    """A stack, and whether its gateway and im-rpc run in this process: on one Redis, on
    the Redis Cluster, and in process on the session's Redis."""
    if request.param == "cluster":
        return request.getfixturevalue("cluster_stack"), False
    if request.param == "in_process":  # only the session's Redis: no processes to start
        return Stack(request.getfixturevalue("redis_proc"), [], []), True
    return request.getfixturevalue("stack"), False


@pytest.fixture
async def client(api_stack: tuple[Stack, bool]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of each stack's gateway in turn: on one Redis, on the cluster, and in
    this process (tests/in_process.py: what mutation testing sees)."""
    stack, in_process = api_stack
    if in_process:
        async with (
            in_process_stack(redis_url(stack.redis, E2E_DB)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as c,
        ):
            yield c
        return
    async with httpx.AsyncClient(base_url=stack.url(), timeout=10) as c:
        yield c


@pytest.fixture
async def e2e_redis(api_stack: tuple[Stack, bool]) -> AsyncIterator[aioredis.Redis]:
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
