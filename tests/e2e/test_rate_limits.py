"""Optional rate limits (off by default): per sender in the gateway, per address in nginx."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.procs import nginx_server, start_trio
from devtools.rawhttp import Connection

pytestmark = pytest.mark.e2e
MESSAGE = "too many sends from this sender; retry later"


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """A gateway limiting each sender to 5/s (bursts of 5), one without limits, and an
    nginx limiting each address to 10 requests/s (bursts of 20) in front of the latter."""
    workdir: Path = tmp_path_factory.mktemp("limits")
    limits = [{"IM_HTTP_SENDER_RATE": "5", "IM_HTTP_SENDER_BURST": "5"}, {}]
    trio = start_trio(workdir, gateways=limits)
    limited, free = trio.gateways
    nginx = nginx_server(workdir, [free.port], rate_limit="10r/s").start()
    yield {"limited": limited.port, "free": free.port, "nginx": nginx.port}
    nginx.stop()
    trio.stop()


async def sends(port: int, sender: str, n: int) -> list[tuple[int, str | None, object]]:
    conn = await Connection.open(port)
    out = []
    for i in range(n):
        body = {"chat": f"{sender}:z", "sender": sender, "text": f"{i}"}
        r = await conn.post_json("/api/send", body)
        out.append((r.status, r.headers.get("retry-after"), r.json()))
    await conn.close()
    return out


async def test_the_gateway_limits_each_sender_when_asked(ports: dict[str, int]) -> None:
    first = await sends(ports["limited"], "alice", 8)
    assert [s for s, _, _ in first] == [200] * 5 + [429] * 3
    refused = {(h, str(body)) for s, h, body in first if s == 429}
    assert refused == {("1", str({"error": "rate_limited", "message": MESSAGE}))}
    assert [s for s, _, _ in await sends(ports["limited"], "bob", 5)] == [200] * 5
    await asyncio.sleep(0.5)  # 5/s: two or three tokens back
    assert (await sends(ports["limited"], "alice", 1))[0][0] == 200
    unlimited = await sends(ports["free"], "alice", 30)  # off by default
    assert {s for s, _, _ in unlimited} == {200}


async def test_nginx_limits_each_address_when_asked(ports: dict[str, int]) -> None:
    conn = await Connection.open(ports["nginx"])
    answers = [await conn.get("/api/pull?chat=a:b") for _ in range(60)]
    await conn.close()
    statuses = Counter(a.status for a in answers)
    assert statuses[200] >= 20  # the burst
    assert statuses[429] > 0
    assert set(statuses) == {200, 429}
    limited = next(a for a in answers if a.status == 429)
    assert limited.headers["retry-after"] == "1"
    assert limited.json() == {
        "error": "rate_limited",
        "message": "too many requests from this address; retry later",
    }
