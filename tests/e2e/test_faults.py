"""Dependencies failing and services stopping: fast 503s, recovery, graceful drains."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from devtools.procs import Process, free_port, http_service, start_trio
from tests.e2e.scrapes import Samples, samples, until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

MSG = {"chat": "fault:test", "sender": "fault", "text": "hello"}


@pytest.fixture
def trio(workdir: Path) -> Iterator[tuple[Process, Process, Process]]:
    """A private redis-server, im-rpc and im-http that a test may break."""
    trio = start_trio(workdir)
    yield trio.redis, trio.rpc, trio.gateways[0]
    trio.stop(signal.SIGKILL)


async def _timed_send(c: httpx.AsyncClient, url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    r = await c.post(f"{url}/api/send", json=MSG)
    return r, time.monotonic() - started


async def _until_ok(
    c: httpx.AsyncClient, url: str, path: str = "/api/send", seconds: float = 5.0
) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        r = await (
            c.post(f"{url}{path}", json=MSG) if path == "/api/send" else c.get(f"{url}{path}")
        )
        if r.status_code == 200 or time.monotonic() > deadline:
            return r
        await asyncio.sleep(0.1)


async def test_rpc_down_is_a_fast_503_and_recovers_by_itself(
    trio: tuple[Process, Process, Process],
) -> None:
    _, rpc, http = trio
    url = f"http://127.0.0.1:{http.port}"
    async with httpx.AsyncClient(timeout=10) as c:
        assert (await c.post(f"{url}/api/send", json=MSG)).status_code == 200
        rpc.stop()
        r, took = await _timed_send(c, url)
        assert (r.status_code, r.json()["error"]) == (503, "rpc_unavailable")
        assert took < 1.0
        assert (await c.get(f"{url}/readyz")).status_code == 503
        rpc.start()
        assert (await _until_ok(c, url)).status_code == 200
        assert (await _until_ok(c, url, "/readyz")).status_code == 200


async def test_a_gateway_with_no_rpc_at_all_answers_503_fast(workdir: Path) -> None:
    http = http_service(workdir, [free_port()]).start()
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            r, took = await _timed_send(c, f"http://127.0.0.1:{http.port}")
        assert (r.status_code, r.json()["error"], took < 1.0) == (503, "rpc_unavailable", True)
    finally:
        http.stop()


async def test_redis_down_is_a_fast_503_and_recovers_by_itself(
    trio: tuple[Process, Process, Process],
) -> None:
    redis, _, http = trio
    url = f"http://127.0.0.1:{http.port}"
    async with httpx.AsyncClient(timeout=10) as c:
        assert (await c.post(f"{url}/api/send", json=MSG)).status_code == 200
        redis.stop()
        for _ in range(3):
            r, took = await _timed_send(c, url)
            assert (r.status_code, r.json()["error"]) == (503, "store_unavailable")
            assert took < 1.0
        pull = await c.get(f"{url}/api/pull", params={"chat": MSG["chat"]})
        assert pull.status_code == 503
        await asyncio.sleep(1.1)  # the health check's cached answer expires
        assert (await c.get(f"{url}/readyz")).status_code == 503
        redis.start()
        assert (await _until_ok(c, url)).status_code == 200


async def _hold_redis(redis: Process, ms: int) -> None:
    client = aioredis.Redis(port=redis.port)
    await client.execute_command("CLIENT", "PAUSE", ms, "ALL")  # type: ignore[no-untyped-call]
    await client.aclose()


async def test_the_gateways_metrics_show_its_calls_in_flight_and_long_polls_waiting(
    workdir: Path,
) -> None:
    """Calls held up by a paused Redis count as in flight, and long polls (syncs and pulls)
    as waiting, each beside its bound, until they are answered or their clients leave."""
    trio = start_trio(
        workdir,
        rpc_settings={"IM_REDIS_TIMEOUT_MS": "10000"},  # (past the pause below)
        gateways=[
            {
                "IM_HTTP_MAX_IN_FLIGHT": "50",
                "IM_HTTP_MAX_WAITING": "40",
                "IM_RPC_TIMEOUT_MS": "10000",
            }
        ],
    )
    url = trio.url()

    async def gauges(c: httpx.AsyncClient) -> Samples:
        """The gateway's gauges without labels."""
        found = samples((await c.get(f"{url}/metrics")).text)
        return {k: v for k, v in found.items() if k.startswith("im_http_") and "{" not in k}

    try:
        async with httpx.AsyncClient(timeout=30) as c:
            sent = (await c.post(f"{url}/api/send", json=MSG)).json()
            tokens = [
                (await c.get(f"{url}/api/sync", params={"user": f"gauge{i}"})).json()["next"]
                for i in range(3)
            ]
            assert await gauges(c) == {
                "im_http_calls_in_flight": 0,
                "im_http_calls_in_flight_max": 50,
                "im_http_long_polls_waiting": 0,
                "im_http_long_polls_waiting_max": 40,
            }
            polls = httpx.AsyncClient(base_url=url, timeout=30)
            waits = [
                asyncio.create_task(
                    polls.get(
                        "/api/sync", params={"user": f"gauge{i}", "since": token, "wait_ms": 20000}
                    )
                )
                for i, token in enumerate(tokens)
            ] + [
                asyncio.create_task(
                    polls.get(
                        "/api/pull",
                        params={
                            "chat": MSG["chat"],
                            "cursor": sent["send_time"] + 1,
                            "wait_ms": 20000,
                        },
                    )
                )
                for _ in range(2)
            ]
            await until(lambda: gauges(c), "im_http_long_polls_waiting", 5)
            await _hold_redis(trio.redis, 2000)
            other = {"chat": "gauge:other", "sender": "gauge"}
            sends = [
                asyncio.create_task(c.post(f"{url}/api/send", json={**other, "text": f"m{i}"}))
                for i in range(4)
            ]
            during = await until(lambda: gauges(c), "im_http_calls_in_flight", 4)
            answers = await asyncio.gather(*sends)
            after = await gauges(c)
            assert [a.status_code for a in answers] == [200] * 4
            assert (during["im_http_calls_in_flight"], during["im_http_long_polls_waiting"]) == (
                4,
                5,
            )
            assert (after["im_http_calls_in_flight"], after["im_http_long_polls_waiting"]) == (0, 5)
            assert not [w for w in waits if w.done()]
            for w in waits:
                w.cancel()
            await polls.aclose()
            await until(lambda: gauges(c), "im_http_long_polls_waiting", 0)
    finally:
        trio.stop(signal.SIGKILL)


async def test_a_slow_redis_times_out_with_504_and_nothing_piles_up(
    trio: tuple[Process, Process, Process], report: Callable[[str], None]
) -> None:
    redis, _, http = trio
    url = f"http://127.0.0.1:{http.port}"
    async with httpx.AsyncClient(timeout=10) as c:
        assert (await c.post(f"{url}/api/send", json=MSG)).status_code == 200
        await _hold_redis(redis, 2500)  # Redis answers nothing for 2.5 s
        started = time.monotonic()
        answers = await asyncio.gather(*(_timed_send(c, url) for _ in range(50)))
        codes = {(r.status_code, r.json()["error"]) for r, _ in answers}
        slowest = max(took for _, took in answers)
        report(f"50 sends to a paused Redis: {codes}, slowest answer {slowest * 1000:.0f} ms")
        assert codes == {(504, "store_timeout")}  # IM_REDIS_TIMEOUT_MS = 1000
        assert slowest < 2.0
        # nothing queued behind the pause: once Redis answers, so does the service, at once
        r = await _until_ok(c, url, seconds=5)
        assert r.status_code == 200
        report(f"first 200 {(time.monotonic() - started) * 1000:.0f} ms after the pause began")


@pytest.mark.parametrize("stopping", ["im-rpc", "im-http"])
async def test_sigterm_lets_the_requests_in_flight_finish(
    trio: tuple[Process, Process, Process], stopping: str
) -> None:
    redis, rpc, http = trio
    url = f"http://127.0.0.1:{http.port}"
    target = rpc if stopping == "im-rpc" else http
    async with httpx.AsyncClient(timeout=10) as c:
        assert (await c.post(f"{url}/api/send", json=MSG)).status_code == 200
        await _hold_redis(redis, 800)
        in_flight = asyncio.create_task(c.post(f"{url}/api/send", json=MSG))
        await asyncio.sleep(0.3)
        target.send_signal(signal.SIGTERM)
        r = await in_flight
        assert r.status_code == 200, r.text
    assert target.proc is not None
    assert await asyncio.to_thread(target.proc.wait, 10) == 0
    if stopping == "im-rpc":
        assert "im-rpc stopped" in target.log_tail()


async def test_an_rpc_that_stalls_is_the_gateways_own_504_at_its_deadline(workdir: Path) -> None:
    trio = start_trio(workdir, gateways=[{"IM_RPC_TIMEOUT_MS": "1000"}])
    url = trio.url()
    try:
        async with httpx.AsyncClient(timeout=10) as c:
            assert (await c.post(f"{url}/api/send", json=MSG)).status_code == 200
            trio.rpc.send_signal(signal.SIGSTOP)  # alive, connected, silent
            try:
                answers = []
                for path in ("/api/send", "/api/pull"):
                    started = time.monotonic()
                    r = await (
                        c.post(f"{url}{path}", json=MSG)
                        if path == "/api/send"
                        else c.get(f"{url}{path}", params={"chat": MSG["chat"]})
                    )
                    answers.append((r.status_code, r.json()["error"], time.monotonic() - started))
            finally:
                trio.rpc.send_signal(signal.SIGCONT)
            for status, error, took in answers:
                assert (status, error) == (504, "rpc_timeout")
                assert 0.9 < took < 1.8  # IM_RPC_TIMEOUT_MS, not a hang or nginx's 40 s
            r = await _until_ok(c, url)
            assert r.status_code == 200
    finally:
        trio.stop(signal.SIGKILL)
