"""Registration (im-rpc) and discovery (gateway) against a real etcd."""

from __future__ import annotations

import asyncio
import gc
import itertools
import urllib.request
from collections.abc import AsyncIterator, Callable

import aetcd
import pytest

from devtools.procs import Process
from http_svc.discovery import Discovery
from im_common.etcd import ETCD_ERRORS, etcd_client
from rpc_svc.registry import Registration

_prefixes = itertools.count()


@pytest.fixture
def prefix() -> str:
    """A prefix of this test's own in the shared etcd."""
    return f"/test/{next(_prefixes)}/"


@pytest.fixture
async def etcd(etcd_proc: Process) -> AsyncIterator[aetcd.Client]:
    client = etcd_client(f"http://127.0.0.1:{etcd_proc.port}", timeout_s=2.0)
    yield client
    await client.close()


async def keys(etcd: aetcd.Client, prefix: str) -> dict[str, str]:
    return {kv.key.decode(): kv.value.decode() for kv in await etcd.get_prefix(prefix.encode())}


async def eventually(check: Callable[[], object], seconds: float = 5.0) -> None:
    """Wait (bounded) until `check()` is truthy."""
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_an_instance_registers_and_deregisters(etcd: aetcd.Client, prefix: str) -> None:
    reg = Registration(etcd, prefix, "127.0.0.1:7001", ttl_s=2)
    reg.start()
    await asyncio.wait_for(reg.registered.wait(), 5)
    assert await keys(etcd, prefix) == {f"{prefix}127.0.0.1:7001": "127.0.0.1:7001"}
    await asyncio.sleep(2.5)  # longer than the lease: kept alive
    assert f"{prefix}127.0.0.1:7001" in await keys(etcd, prefix)
    await reg.deregister()
    assert await keys(etcd, prefix) == {}


async def test_a_dead_instance_is_forgotten_when_its_lease_expires(
    etcd: aetcd.Client, prefix: str
) -> None:
    lease = await etcd.lease(2)  # what a registration leaves behind when its process dies
    await etcd.put(f"{prefix}127.0.0.1:7002".encode(), b"127.0.0.1:7002", lease=lease)
    assert await keys(etcd, prefix)
    await asyncio.sleep(3.2)
    assert await keys(etcd, prefix) == {}


async def test_a_lost_lease_is_replaced(etcd: aetcd.Client, prefix: str) -> None:
    reg = Registration(etcd, prefix, "127.0.0.1:7003", ttl_s=3)
    reg.start()
    await asyncio.wait_for(reg.registered.wait(), 5)
    (kv,) = await etcd.get_prefix(prefix.encode())
    await etcd.revoke_lease(kv.lease)  # as if etcd had lost it
    assert await keys(etcd, prefix) == {}
    await asyncio.sleep(1.5)  # one refresh period (ttl / 3) and a bit
    assert await keys(etcd, prefix) == {f"{prefix}127.0.0.1:7003": "127.0.0.1:7003"}
    await reg.deregister()


async def keep_alives_started(port: int) -> int:
    """How many LeaseKeepAlive calls etcd has begun (its own /metrics)."""
    url = f"http://127.0.0.1:{port}/metrics"
    with await asyncio.to_thread(urllib.request.urlopen, url, timeout=5) as answer:
        text = answer.read().decode()
    (line,) = [
        m
        for m in text.splitlines()
        if m.startswith("grpc_server_started_total{") and "LeaseKeepAlive" in m
    ]
    return int(float(line.rsplit(" ", 1)[1]))


async def test_keep_alives_leave_no_call_for_the_event_loop_to_close(
    etcd: aetcd.Client, etcd_proc: Process, prefix: str
) -> None:
    """A keep-alive's call is garbage once it is answered: one collection frees it. (aetcd's
    Lease.refresh returned from inside the call's reply iterator and left it unfinished;
    the collector then hands each such iterator to the event loop to close, which keeps the
    call alive past that collection and into the collector's older generations: under
    im-rpc's settings, IM_GC_THRESHOLD, they piled up for many minutes, the soak's im-rpc
    growing 0.4-0.7 MB a minute.)"""
    reg = Registration(etcd, prefix, "127.0.0.1:7004", ttl_s=3)  # a keep-alive every second
    reg.start()
    await asyncio.wait_for(reg.registered.wait(), 5)
    started = await keep_alives_started(etcd_proc.port)
    gc.collect()
    gc.disable()  # (the calls' garbage waits for the one collection below)
    try:
        await asyncio.sleep(4.5)
        await reg.deregister()  # (no keep-alive is left in flight, or just done)
        await asyncio.sleep(0.2)
        gc.collect()
        left = [o for o in gc.get_objects() if type(o).__name__ == "StreamStreamCall"]
        answered = [call for call in left if call.done()]
    finally:
        gc.enable()
    assert await keep_alives_started(etcd_proc.port) - started >= 3
    assert answered == []


async def test_discovery_follows_the_prefix(etcd: aetcd.Client, prefix: str) -> None:
    seen: list[list[str]] = []
    await etcd.put(f"{prefix}a".encode(), b"10.0.0.1:1")
    discovery = Discovery(etcd, prefix, seen.append)
    await discovery.start(wait_s=5)
    assert seen[-1] == ["10.0.0.1:1"]
    await etcd.put(f"{prefix}b".encode(), b"10.0.0.2:1")
    await eventually(lambda: seen[-1] == ["10.0.0.1:1", "10.0.0.2:1"])
    await etcd.delete(f"{prefix}a".encode())
    await eventually(lambda: seen[-1] == ["10.0.0.2:1"])
    await etcd.put(f"{prefix}other/x".encode(), b"ignored:1")  # still under the prefix
    await eventually(lambda: "ignored:1" in seen[-1])
    await discovery.close()


async def test_discovery_keeps_the_last_set_while_etcd_is_down_then_catches_up(
    etcd_proc: Process, etcd: aetcd.Client, prefix: str
) -> None:
    seen: list[list[str]] = []
    await etcd.put(f"{prefix}a".encode(), b"10.0.0.1:1")
    watcher = etcd_client(f"http://127.0.0.1:{etcd_proc.port}", timeout_s=2.0)
    discovery = Discovery(watcher, prefix, seen.append, retry_s=0.2)
    await discovery.start(wait_s=5)
    try:
        await asyncio.to_thread(etcd_proc.stop)
        await asyncio.sleep(1)
        assert seen[-1] == ["10.0.0.1:1"]  # nothing dropped while etcd is away
        await asyncio.to_thread(etcd_proc.start)
        for _ in range(50):  # this test's own client reconnects too (grpc backoff <= 1 s)
            try:
                await etcd.put(f"{prefix}b".encode(), b"10.0.0.2:1")
                break
            except ETCD_ERRORS:
                await asyncio.sleep(0.1)
        await eventually(lambda: seen[-1] == ["10.0.0.1:1", "10.0.0.2:1"], seconds=10)
    finally:
        await discovery.close()
        await watcher.close()
