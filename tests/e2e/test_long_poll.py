"""Long polling end to end: 1,000 waiting pulls on 100 chats, each woken by its own chat's
message, with the wake-up latency measured and Redis connections counted."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from devtools.procs import Process, http_service, rpc_service, start_trio
from devtools.rawhttp import Connection
from devtools.redis_cluster import start_redis_cluster
from im_common.fd_limit import raise_fd_limit

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
POLLS, CHATS, POOL = 1000, 100, 16


@pytest.fixture(params=["redis", "cluster"])
def stack(workdir: Path, request: pytest.FixtureRequest) -> Iterator[tuple[list[Process], int]]:
    """One gateway and one im-rpc (a pool of POOL connections per Redis) on one redis-server,
    or on a Redis Cluster of its own (3 masters, a replica each): the Redis processes, the
    gateway's port."""
    raise_fd_limit(0, "the test's connections")  # the services inherit it
    pool = {"IM_REDIS_MAX_CONNECTIONS": str(POOL)}
    one_host = {"IM_HTTP_MAX_WAITING_PER_USER": str(POLLS)}  # every poll comes from here
    if request.param == "redis":
        trio = start_trio(workdir, rpc_settings=pool, gateways=[one_host])
        yield [trio.redis], trio.gateways[0].port
        trio.stop()
        return
    cluster = start_redis_cluster(workdir / "cluster")
    rpc = rpc_service(workdir, cluster.url, None, IM_REDIS_CLUSTER="1", **pool).start()
    gateway = http_service(workdir, [rpc.port], None, **one_host).start()
    yield cluster.masters(), gateway.port
    for proc in (gateway, rpc):
        proc.stop()
    cluster.stop()


async def test_a_thousand_long_polls_each_woken_by_its_own_chat(
    stack: tuple[list[Process], int], report: Callable[[str], None]
) -> None:
    servers, port = stack
    conns = await asyncio.gather(*(Connection.open(port) for _ in range(POLLS)))
    returned: dict[int, float] = {}

    async def poll(i: int) -> tuple[int, object]:
        answer = await conns[i].get(f"/api/pull?chat=lp{i % CHATS}:x&wait_ms=15000")
        returned[i] = time.monotonic()
        return answer.status, answer.json()

    polls = [asyncio.create_task(poll(i)) for i in range(POLLS)]
    await asyncio.sleep(2)  # every poll is waiting now
    assert not any(p.done() for p in polls)
    admins = [aioredis.Redis(port=server.port) for server in servers]
    # a cluster master also lists its replica's link (flag S): that is Redis's, not im-rpc's
    clients = [
        sum("S" not in client["flags"] for client in await admin.client_list()) for admin in admins
    ]
    sender = await Connection.open(port)
    sent_at: dict[int, float] = {}
    for chat in range(CHATS):
        sent_at[chat] = time.monotonic()
        r = await sender.post_json(
            "/api/send", {"chat": f"lp{chat}:x", "sender": "x", "text": f"for {chat}"}
        )
        assert r.status == 200
    answers = await asyncio.wait_for(asyncio.gather(*polls), 10)
    for admin in admins:
        await admin.aclose()
    await asyncio.gather(sender.close(), *(c.close() for c in conns))
    for i, (status, body) in enumerate(answers):
        assert status == 200
        assert [m["text"] for m in body["messages"]] == [f"for {i % CHATS}"]  # type: ignore[index]
    latency = sorted(returned[i] - sent_at[i % CHATS] for i in range(POLLS))
    p50, p99 = statistics.median(latency), latency[int(len(latency) * 0.99)]
    report(
        f"{POLLS} long polls on {CHATS} chats: woken {p50 * 1000:.1f} ms (p50), "
        f"{p99 * 1000:.1f} ms (p99) after their chat's send was acknowledged; Redis had "
        f"{'+'.join(map(str, clients))} client connections while they all waited"
    )
    # the waiters hold no connection: per Redis at most the pool, one subscription, this test's
    # (replica links not counted)
    assert max(clients) <= POOL + 2
    assert p99 < 2.0
    assert p50 < 0.15  # woken: polls that read again every 0.5 s would answer 0.25 s late (p50)
