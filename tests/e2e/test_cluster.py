"""The elastic topology with real processes: etcd, several im-rpc, gateways, nginx.

Instances come and go while traffic flows; nothing acknowledged may be lost or
stored twice, and requests must not fail (or, for a SIGKILL, hardly ever: 5xx only).
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from devtools.nginx import reload
from devtools.procs import Process, etcd_server, http_service, nginx_server, rpc_service
from rpc_svc.store.keys import retry_keys_key
from tests.conftest import redis_url
from tests.e2e.load import LoadResult, send_load

pytestmark = pytest.mark.e2e
Report = Callable[[str], None]
CLUSTER_DB = 2


class Cluster:
    """Processes of one test: etcd, im-rpc instances and gateways discovering them there."""

    def __init__(self, workdir: Path, redis: Process) -> None:
        self.workdir = workdir
        self.redis_url = redis_url(redis, CLUSTER_DB)
        self.etcd = etcd_server(workdir).start()
        self.etcd_url = f"http://127.0.0.1:{self.etcd.port}"
        self.rpcs: list[Process] = []
        self.gateways: list[Process] = []
        self.nginx: Process | None = None

    def add_rpc(self) -> Process:
        """Start one more im-rpc; return once it has registered in etcd (2 s lease)."""
        proc = rpc_service(
            self.workdir, self.redis_url, IM_ETCD_URL=self.etcd_url, IM_ETCD_LEASE_TTL_S="2"
        ).start()
        self.rpcs.append(proc)
        for _ in range(100):
            if "registered" in proc.log.read_text():
                return proc
            time.sleep(0.05)
        raise RuntimeError(f"im-rpc did not register in etcd:\n{proc.log_tail()}")

    def add_gateway(self) -> Process:
        """Start one more im-http that finds im-rpc through etcd."""
        proc = http_service(self.workdir, [], IM_ETCD_URL=self.etcd_url).start()
        self.gateways.append(proc)
        return proc

    def add_nginx(self) -> str:
        """Start nginx in front of the gateways; its base URL."""
        self.nginx = nginx_server(self.workdir, [g.port for g in self.gateways]).start()
        return f"http://127.0.0.1:{self.nginx.port}"

    def url(self, i: int = 0) -> str:
        """Base URL of gateway `i`."""
        return f"http://127.0.0.1:{self.gateways[i].port}"

    def stop(self) -> None:
        """Stop everything still running."""
        for proc in [self.nginx, *self.gateways, *self.rpcs, self.etcd]:
            if proc is not None:
                proc.stop(signal.SIGKILL if proc is self.etcd else signal.SIGTERM)


@pytest.fixture
async def cluster(redis_proc: Process, tmp_path: Path) -> AsyncIterator[Cluster]:
    """A fresh etcd and an empty Redis database; the test adds the instances it needs."""
    client = aioredis.Redis.from_url(redis_url(redis_proc, CLUSTER_DB))
    await client.flushdb()
    await client.aclose()
    c = Cluster(tmp_path, redis_proc)
    yield c
    c.stop()


async def metrics_text(gateway_url: str) -> str:
    """The gateway's /metrics page."""
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"{gateway_url}/metrics")).text


async def instance_calls(gateway_url: str) -> dict[str, float]:
    """The gateway's live im-rpc instances and the calls each has taken (from /metrics)."""
    text = await metrics_text(gateway_url)
    calls = {}
    for line in text.splitlines():
        if line.startswith("im_rpc_instance_calls_total{"):
            addr = line.split('addr="', 1)[1].split('"', 1)[0]
            calls[addr] = float(line.rsplit(" ", 1)[1])
    return calls


async def metric_total(gateway_url: str, name: str) -> float:
    """The sum of a counter's samples over its labels, from the gateway's /metrics."""
    text = await metrics_text(gateway_url)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def addr(proc: Process) -> str:
    """The address an im-rpc process registers (loopback)."""
    return f"127.0.0.1:{proc.port}"


async def test_new_rpc_instance_gets_calls_within_3s(cluster: Cluster, report: Report) -> None:
    cluster.add_rpc()
    cluster.add_gateway()
    late = await asyncio.to_thread(cluster.add_rpc)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=cluster.url(), timeout=5) as http:
        for n in range(300):  # bounded: 3 s of requests at most
            r = await http.get("/api/pull", params={"chat": f"a:b{n}"})
            assert r.status_code == 200
            if (await instance_calls(cluster.url())).get(addr(late), 0) > 0:
                break
            if time.monotonic() - started > 3:
                break
    waited = time.monotonic() - started
    report(f"new im-rpc used after {waited * 1000:.0f} ms")
    assert (await instance_calls(cluster.url())).get(addr(late), 0) > 0
    assert waited < 3


async def test_sends_through_nginx_carry_its_request_id_as_retry_key(cluster: Cluster) -> None:
    cluster.add_rpc()
    cluster.add_gateway()
    base = cluster.add_nginx()
    async with httpx.AsyncClient(timeout=5) as http:
        for url in (cluster.url(), base):  # the gateway alone (one instance: no key), nginx
            body = {"chat": "a:b", "sender": "a", "text": url}
            assert (await http.post(f"{url}/api/send", json=body)).status_code == 200
    redis = aioredis.Redis.from_url(cluster.redis_url, decode_responses=True)
    try:
        keys = await redis.zrange(retry_keys_key("a:b"), 0, -1)
    finally:
        await redis.aclose()
    assert len(keys) == 1
    assert re.fullmatch(r"0:[0-9a-f]{32}", str(keys[0]))  # role 0, nginx's $request_id


async def test_a_gateway_added_to_nginx_by_reload_gets_traffic(cluster: Cluster) -> None:
    cluster.add_rpc()
    cluster.add_gateway()
    base = cluster.add_nginx()
    assert cluster.nginx is not None
    added = await asyncio.to_thread(cluster.add_gateway)
    directory = Path(cluster.nginx.argv[cluster.nginx.argv.index("-p") + 1])
    gateways = [f"127.0.0.1:{g.port}" for g in cluster.gateways]
    await asyncio.to_thread(reload, directory, cluster.nginx.port, gateways, 65_536)
    await asyncio.sleep(0.5)  # old workers finish, new ones take over
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        for n in range(40):
            r = await http.get("/api/pull", params={"chat": f"r:{n}"})
            assert r.status_code == 200
    text = await metrics_text(f"http://127.0.0.1:{added.port}")
    assert 'route="/api/pull"' in text


async def test_sigterm_rpc_leaves_before_exiting_and_no_request_fails(
    cluster: Cluster, report: Report
) -> None:
    leaving = cluster.add_rpc()
    cluster.add_rpc()
    cluster.add_gateway()
    load = asyncio.create_task(send_load(cluster.url(), clients=10, seconds=5, tag="term"))
    await asyncio.sleep(1.5)
    assert (await instance_calls(cluster.url())).get(addr(leaving), 0) > 0
    leaving.send_signal(signal.SIGTERM)
    for _ in range(100):  # until the gateway stops calling it: 5 s at most
        if addr(leaving) not in await instance_calls(cluster.url()):
            break
        await asyncio.sleep(0.05)
    still_running = leaving.running
    result: LoadResult = await load
    report(result.line())
    assert addr(leaving) not in await instance_calls(cluster.url())
    assert still_running, "the instance exited before gateways stopped calling it"
    assert await asyncio.to_thread(leaving.stop) == 0
    assert "deregistered" in leaving.log.read_text()
    assert result.failed == 0
    assert result.requests > 100
    audit = await result.audit(cluster.url())
    report(audit.line())
    assert audit.ok, audit.line()


async def test_sigkill_of_an_rpc_and_a_gateway_under_load_through_nginx(
    cluster: Cluster, report: Report
) -> None:
    for _ in range(3):
        cluster.add_rpc()
    for _ in range(2):
        cluster.add_gateway()
    base = cluster.add_nginx()
    load = asyncio.create_task(send_load(base, clients=20, seconds=10, tag="kill"))
    await asyncio.sleep(3)
    cluster.rpcs[0].send_signal(signal.SIGKILL)
    await asyncio.sleep(3)
    cluster.gateways[0].send_signal(signal.SIGKILL)
    result = await load
    report(result.line())
    retries = await metric_total(cluster.url(1), "im_rpc_retries_total")
    report(f"calls retried on another im-rpc by the surviving gateway: {retries:.0f}")
    assert retries > 0, "the killed instance's calls were not retried elsewhere"
    assert result.requests > 500
    assert set(result.statuses) <= {200, 500, 502, 503, 504}, "only 5xx answers, no hangs"
    assert result.failed / result.requests < 0.01
    audit = await result.audit(base)
    report(audit.line())
    assert audit.ok, audit.line()


async def test_etcd_restart_during_traffic_fails_no_request(
    cluster: Cluster, report: Report
) -> None:
    cluster.add_rpc()
    cluster.add_rpc()
    cluster.add_gateway()
    load = asyncio.create_task(send_load(cluster.url(), clients=10, seconds=6, tag="etcd"))
    await asyncio.sleep(1.5)
    await asyncio.to_thread(cluster.etcd.stop)
    await asyncio.sleep(2)
    await asyncio.to_thread(cluster.etcd.start)
    result = await load
    report(result.line())
    assert result.failed == 0
    assert result.requests > 100
    # discovery works again after the restart: an instance started now is found
    late = await asyncio.to_thread(cluster.add_rpc)
    for _ in range(60):
        if addr(late) in await instance_calls(cluster.url()):
            break
        await asyncio.sleep(0.1)
    assert addr(late) in await instance_calls(cluster.url())
    audit = await result.audit(cluster.url())
    report(audit.line())
    assert audit.ok, audit.line()
