"""Fixtures shared by every test layer: one real redis-server for the session, and a real
Redis Cluster (3 masters, a replica each) for the tests that run on both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from devtools.procs import Process, etcd_server, redis_server
from devtools.redis_cluster import RedisClusterNodes, start_redis_cluster
from rpc_svc.server import open_store
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore

STORE_DB = 0  # integration tests; FLUSHDB before each
_FIGURES: list[str] = []  # measured by tests, printed at the end of the run
E2E_DB = 1  # the end-to-end stack
# a test (or module) marked so runs on one redis-server and again on the Redis Cluster
# "streams": one Redis whose chats are streams from the first message (short forms off, as
# IM_SHORT_CHAT_MESSAGES=0 runs, and as chats stored before short forms existed are).
ON_EVERY_BACKEND = pytest.mark.parametrize(
    "backend", ["redis", "cluster", "streams"], indirect=True
)
# Tests keep a chat's first messages in a hash only this long (im-rpc: 32), so that
# chats of a few messages already move into their stream.
SHORT_CHAT_MESSAGES = 4


@pytest.fixture(scope="session")
def etcd_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A real single-member etcd on a free port, for the whole session."""
    proc = etcd_server(tmp_path_factory.mktemp("etcd")).start()
    yield proc
    proc.stop()


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a measured figure (error rate, latency): printed in the run's summary."""
    return lambda line: _FIGURES.append(f"{request.node.name}: {line}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files with the most tests marked slow first, each file's tests kept together and
    in order: the parallel workers (tox.ini: a file each at a time) start the long files at
    once, and none is left running alone at the end."""
    slow: dict[Path, int] = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    items.sort(key=lambda item: -slow[item.path])  # (stable: the order within a file kept)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A parallel worker hands its figures to the run that prints the summary."""
    handed = getattr(session.config, "workeroutput", None)
    if handed is not None:
        handed["figures"] = list(_FIGURES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """The figures of a parallel worker that finished (pytest-xdist's hook)."""
    _FIGURES.extend(getattr(node, "workeroutput", {}).get("figures", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the tests measured (every worker's)."""
    if _FIGURES:
        terminalreporter.section("figures measured by the tests")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A real redis-server on a free port, for the whole session."""
    proc = redis_server(tmp_path_factory.mktemp("redis")).start()
    yield proc
    proc.stop()


def redis_url(proc: Process, db: int = STORE_DB) -> str:
    """The URL of database `db` of a redis-server process."""
    return f"redis://127.0.0.1:{proc.port}/{db}"


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """A real Redis Cluster on free ports: 3 masters with a replica each, for the session."""
    cluster = start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The store a test runs on: "redis" (one server), or where ON_EVERY_BACKEND also
    "cluster" and "streams" (one server, chats in streams only)."""
    return str(getattr(request, "param", "redis"))


@pytest.fixture
async def redis_client(
    backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[aioredis.Redis]:
    """A client of the store's Redis (database STORE_DB, or the cluster), emptied first."""
    if backend == "cluster":
        cluster: RedisClusterNodes = request.getfixturevalue("redis_cluster")
        cluster.flush()
        client: aioredis.Redis = aioredis.RedisCluster.from_url(  # type: ignore[assignment]
            cluster.url, decode_responses=True
        )
    else:
        proc: Process = request.getfixturevalue("redis_proc")
        client = aioredis.Redis.from_url(redis_url(proc), decode_responses=True)
        await client.flushdb()
    yield client
    await client.aclose()


async def key_count(client: aioredis.Redis) -> int:
    """How many keys the store holds: on a cluster, summed over every master (a bare
    DBSIZE asks one node of a cluster, which sees a third of the keys)."""
    if isinstance(client, aioredis.RedisCluster):
        return int(await client.dbsize(target_nodes=aioredis.RedisCluster.PRIMARIES))
    return int(await client.dbsize())


def make_store(
    proc: Process,
    ttl_s: int = 86_400,
    db: int = STORE_DB,
    retry_ttl_s: int = 60,
    short: int = SHORT_CHAT_MESSAGES,
) -> RedisStore:
    """A RedisStore on `proc`, as im-rpc builds it (`short`: IM_SHORT_CHAT_MESSAGES)."""
    return open_store(
        redis_url(proc, db),
        max_connections=32,
        timeout_s=1.0,
        idempotency_ttl_s=ttl_s,
        retry_key_ttl_s=retry_ttl_s,
        short_chat_messages=short,
    )


def make_cluster_store(
    cluster: RedisClusterNodes,
    ttl_s: int = 86_400,
    max_connections: int = 32,
    short: int = SHORT_CHAT_MESSAGES,
) -> RedisStore:
    """A RedisStore on a Redis Cluster, as im-rpc builds it with IM_REDIS_CLUSTER=1
    (`short`: IM_SHORT_CHAT_MESSAGES)."""
    return open_store(
        cluster.url,
        max_connections=max_connections,
        timeout_s=1.0,
        idempotency_ttl_s=ttl_s,
        cluster=True,
        short_chat_messages=short,
    )


@pytest.fixture
async def store(
    backend: str, redis_client: aioredis.Redis, request: pytest.FixtureRequest
) -> AsyncIterator[RedisStore]:
    """A store on an empty database (or an empty cluster)."""
    if backend == "cluster":
        s = make_cluster_store(request.getfixturevalue("redis_cluster"))
    else:
        short = 0 if backend == "streams" else SHORT_CHAT_MESSAGES
        s = make_store(request.getfixturevalue("redis_proc"), short=short)
    yield s
    await s.close()


@pytest.fixture
def service(store: RedisStore) -> ChatService:
    """The chat service on an empty store, with the default text limit."""
    return ChatService(store, max_text_bytes=4096)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A temp dir for the logs and data of processes a test starts."""
    return tmp_path
