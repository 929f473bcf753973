"""Slow and idle clients, oversized requests: at the gateway and at nginx in front of it.

A client trickling its headers byte by byte is dropped after the request timeout and
slows no one else; 2,000 idle keep-alive connections do not stop service; heads and
bodies over the limits are refused."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator

import pytest

from devtools.procs import nginx_server, start_trio
from devtools.rawhttp import Connection
from im_common.fd_limit import raise_fd_limit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
IDLE = 2000


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """A gateway (2 s request timeout) and an nginx (2 s client timeouts) in front of it."""
    raise_fd_limit(0, "the test's connections")  # the services inherit it
    workdir = tmp_path_factory.mktemp("slow")
    trio = start_trio(workdir, gateways=[{"IM_HTTP_REQUEST_TIMEOUT_S": "2"}])
    http = trio.gateways[0]
    nginx = nginx_server(workdir, [http.port], client_timeout="2s").start()
    yield {"gateway": http.port, "nginx": nginx.port}
    nginx.stop()
    trio.stop()


async def normal_latencies(port: int, seconds: float) -> list[float]:
    """Pulls on fresh connections, one every 50 ms for `seconds`: their latencies (s)."""
    took = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        conn = await Connection.open(port)
        r = await conn.get("/api/pull?chat=a:b")
        await conn.close()
        assert r.status == 200
        took.append(time.monotonic() - started)
        await asyncio.sleep(0.05)
    return took


@pytest.mark.parametrize("target", ["gateway", "nginx"])
async def test_a_slowloris_client_is_dropped_and_blocks_no_one(
    targets: dict[str, int], target: str, report: Callable[[str], None]
) -> None:
    port = targets[target]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = b"".join(b"X-Pad-%d: v\r\n" % i for i in range(250))
    head = b"POST /api/send HTTP/1.1\r\nHost: x\r\n" + lines  # never finished

    async def trickle() -> float:
        started = time.monotonic()
        try:
            for byte in head:  # one byte every 20 ms: the head would take 60 s
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.02)
                if reader.at_eof():
                    break
            await asyncio.wait_for(reader.read(), 10)  # whatever it answers, then the close
        except ConnectionError:
            pass
        return time.monotonic() - started

    dropped_after, others = await asyncio.gather(trickle(), normal_latencies(port, 3))
    writer.close()
    report(
        f"{target}: slowloris dropped after {dropped_after:.1f} s; meanwhile {len(others)} "
        f"pulls, median {statistics.median(others) * 1000:.1f} ms, max {max(others) * 1000:.1f} ms"
    )
    assert 1.5 < dropped_after < 6
    assert max(others) < 0.5


@pytest.mark.parametrize("target", ["gateway", "nginx"])
async def test_2000_idle_keepalive_connections_do_not_stop_service(
    targets: dict[str, int], target: str, report: Callable[[str], None]
) -> None:
    port = targets[target]
    idle: list[Connection] = []
    try:
        for _ in range(IDLE // 100):  # open them 100 at a time, each after one request
            batch = await asyncio.gather(*(Connection.open(port) for _ in range(100)))
            answers = await asyncio.gather(*(c.get("/ping") for c in batch))
            assert {a.status for a in answers} == {200}
            idle += batch
        others = await normal_latencies(port, 1)
        again = await asyncio.gather(*(c.get("/ping") for c in idle[:: IDLE // 20]))
    finally:
        await asyncio.gather(*(c.close() for c in idle), return_exceptions=True)
    report(
        f"{target}: with {len(idle)} idle keep-alive connections, {len(others)} pulls, "
        f"median {statistics.median(others) * 1000:.1f} ms, max {max(others) * 1000:.1f} ms"
    )
    assert len(idle) == IDLE
    assert max(others) < 0.5
    assert {a.status for a in again} == {200}  # the idle ones still work


@pytest.mark.parametrize("target", ["gateway", "nginx"])
async def test_heads_and_bodies_over_the_limits_are_refused(
    targets: dict[str, int], target: str
) -> None:
    port = targets[target]
    conn = await Connection.open(port)
    body = {"chat": "a:b", "sender": "a", "text": "x" * 70_000}
    big_body = await conn.post_json("/api/send", body)
    await conn.close()
    assert big_body.status == 413
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 16_384 + b"\r\n\r\n")
    status_line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status_line.split()[1] in (b"400", b"413", b"431")
