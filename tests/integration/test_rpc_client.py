"""The gateway's RpcClient against a real im-rpc server (in process) and a dead address."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from grpclib.const import Status

from devtools.procs import free_port
from http_svc.config import RPC_MODES
from http_svc.errors import RpcFailure
from http_svc.rpc_client import RpcClient
from rpc_svc.config import Settings
from rpc_svc.healthcheck import serving
from rpc_svc.server import build_server
from rpc_svc.servicer import InFlight
from rpc_svc.store import RedisStore


@pytest.fixture
async def live(store: RedisStore) -> AsyncIterator[str]:
    """The address of a real im-rpc server on the test store."""
    port = free_port()
    server = build_server(Settings(), store, InFlight())
    await server.start("127.0.0.1", port)
    yield f"127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize("mode", RPC_MODES)
async def test_calls_to_a_dead_instance_are_retried_on_a_live_one(live: str, mode: str) -> None:
    retried: list[str] = []
    dead = f"127.0.0.1:{free_port()}"
    client = RpcClient([dead, live], 1, 2.0, mode=mode, observe_retry=retried.append)
    try:
        for i in range(6):
            sent = orjson.loads(await client.send("a:b", f"m{i}", "a", ""))
            assert sent["chat"] == "a:b"
        page = orjson.loads(await client.pull("a:b", 0, 100, False))
        assert [m["text"] for m in page["messages"]] == [f"m{i}" for i in range(6)]
        assert await client.ready()
    finally:
        client.close()
    assert retried  # the dead one was tried (then skipped while marked down)


async def test_a_send_retried_with_its_key_is_stored_once(live: str) -> None:
    client = RpcClient([live], 1, 2.0)
    try:
        first = await client.send("a:b", "once", "a", "", retry_key="k-1")
        again = await client.send("a:b", "once", "a", "", retry_key="k-1")
        page = orjson.loads(await client.pull("a:b", 0, 100, False))
    finally:
        client.close()
    assert first == again
    assert [m["text"] for m in page["messages"]] == ["once"]


async def test_every_send_gets_a_key_of_its_own() -> None:
    client = RpcClient([], 1, 1.0)
    keys = {client.retry_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(0 < len(k) <= 64 for k in keys)
    client.close()


async def test_without_any_live_instance_calls_fail_unavailable_fast() -> None:
    nobody = RpcClient([], 1, 1.0)
    with pytest.raises(RpcFailure, match="no im-rpc instance") as info:
        await nobody.pull("a:b", 0, 10, False)
    assert info.value.status is Status.UNAVAILABLE
    assert not await nobody.ready()
    dead = RpcClient([f"127.0.0.1:{free_port()}"], 1, 1.0)
    try:
        with pytest.raises(RpcFailure) as info:
            await dead.send("a:b", "x", "a", "")
        assert info.value.status is Status.UNAVAILABLE
    finally:
        dead.close()


async def test_the_container_healthcheck_asks_the_health_service(live: str) -> None:
    host, _, port = live.rpartition(":")
    assert await serving(host, int(port))
    assert not await serving("127.0.0.1", free_port(), timeout_s=1)
