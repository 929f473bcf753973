"""Fixtures shared by every test layer: one real redis-server for the session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from devtools.procs import Process, redis_server
from rpc_svc.service import ChatService
from rpc_svc.store import RedisStore

STORE_DB = 0  # integration tests; FLUSHDB before each
E2E_DB = 1  # the end-to-end stack


@pytest.fixture(scope="session")
def redis_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A real redis-server on a free port, for the whole session."""
    proc = redis_server(tmp_path_factory.mktemp("redis")).start()
    yield proc
    proc.stop()


def redis_url(proc: Process, db: int = STORE_DB) -> str:
    """The URL of database `db` of a redis-server process."""
    return f"redis://127.0.0.1:{proc.port}/{db}"


@pytest.fixture
async def redis_client(redis_proc: Process) -> AsyncIterator[aioredis.Redis]:
    """A client of the store database, emptied before the test."""
    client = aioredis.Redis.from_url(redis_url(redis_proc), decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


def make_store(proc: Process, ttl_s: int = 86_400, db: int = STORE_DB) -> RedisStore:
    """A RedisStore on `proc`, as im-rpc builds it."""
    return RedisStore.from_url(
        redis_url(proc, db), max_connections=32, timeout_s=1.0, idempotency_ttl_s=ttl_s
    )


@pytest.fixture
async def store(redis_proc: Process, redis_client: aioredis.Redis) -> AsyncIterator[RedisStore]:
    """A store on an empty database."""
    s = make_store(redis_proc)
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
