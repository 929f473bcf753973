"""im-rpc's own metrics (IM_RPC_METRICS_PORT), scraped from a real im-rpc behind a gateway:
each figure checked against what it counts, in states whose answers differ."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from devtools.procs import HOST, Trio, free_port, start_trio
from rpc_svc.store.keys import feed_key
from tests.e2e.scrapes import Samples, samples, until
from tests.e2e.test_faults import _hold_redis

pytestmark = pytest.mark.e2e

WAIT = {"wait_ms": 20000}


@pytest.fixture
async def trio(workdir: Path) -> AsyncIterator[Trio]:
    metrics = str(free_port())
    trio = start_trio(
        workdir,
        rpc_settings={
            "IM_RPC_METRICS_PORT": metrics,
            "IM_RPC_MAX_WAITING": "30",
            "IM_REDIS_TIMEOUT_MS": "10000",  # (past a pause of the first test)
        },
        gateways=[{"IM_RPC_TIMEOUT_MS": "10000"}],
    )
    yield trio
    trio.stop(signal.SIGKILL)


async def _scrape(trio: Trio) -> Samples:
    assert trio.rpc.env is not None
    port = trio.rpc.env["IM_RPC_METRICS_PORT"]
    async with httpx.AsyncClient(timeout=5) as c:
        answer = await c.get(f"http://{HOST}:{port}/metrics")
    assert answer.status_code == 200
    return samples(answer.text)


def _ours(rows: Samples) -> Samples:
    return {k: v for k, v in rows.items() if k.startswith("im_rpc_")}


async def _until(trio: Trio, name: str, value: float) -> Samples:
    return await until(lambda: _scrape(trio), name, value)


async def _token(c: httpx.AsyncClient, user: str) -> str:
    answer = await c.get("/api/sync", params={"user": user})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["next"])


async def test_waits_channels_and_batches_in_flight_are_counted_until_they_end(
    trio: Trio,
) -> None:
    assert _ours(await _scrape(trio)) == {
        "im_rpc_batches_in_flight": 0,
        "im_rpc_long_polls_waiting": 0,
        "im_rpc_long_polls_waiting_max": 30,
        "im_rpc_wakeup_channels": 0,
        "im_rpc_sync_answers_kept": 0,
        'im_rpc_sync_reads_skipped_total{at="start"}': 0,
        'im_rpc_sync_reads_skipped_total{at="end"}': 0,
    }
    async with httpx.AsyncClient(base_url=trio.url(), timeout=30) as c:
        tokens = [await _token(c, f"w{i}") for i in range(3)]
        sent = await c.post("/api/send", data={"chat": "p:r", "sender": "p", "text": "x"})
        cursor = sent.json()["send_time"] + 1
        polls = httpx.AsyncClient(base_url=trio.url(), timeout=30)
        waits = [
            asyncio.create_task(
                polls.get("/api/sync", params={"user": f"w{i}", "since": t, **WAIT})
            )
            for i, t in enumerate(tokens)
        ]
        waits.append(
            asyncio.create_task(
                polls.get("/api/pull", params={"chat": "p:r", "cursor": cursor, **WAIT})
            )
        )
        rows = await _until(trio, "im_rpc_long_polls_waiting", 4)
        assert (rows["im_rpc_batches_in_flight"], rows["im_rpc_wakeup_channels"]) == (4, 4)
        await _hold_redis(trio.redis, 2000)
        held = asyncio.create_task(c.get("/api/pull", params={"chat": "p:r"}))  # (no wait)
        rows = await _until(trio, "im_rpc_batches_in_flight", 5)
        assert rows["im_rpc_long_polls_waiting"] == 4
        assert (await held).status_code == 200
        await c.post("/api/send", data={"chat": "w0:z", "sender": "z", "text": "wake"})
        woken = await asyncio.wait_for(waits[0], 5)
        assert [e["message"]["text"] for e in woken.json()["events"]] == ["wake"]
        rows = await _until(trio, "im_rpc_long_polls_waiting", 3)
        assert rows["im_rpc_batches_in_flight"] == 3
        for w in waits:
            w.cancel()
        await polls.aclose()
        rows = await _until(trio, "im_rpc_long_polls_waiting", 0)
        assert rows["im_rpc_batches_in_flight"] == 0


def _quiet(rows: Samples) -> tuple[float, float, float]:
    """Sync reads skipped at a wait's start, at its end, and the answers kept."""
    skipped = "im_rpc_sync_reads_skipped_total"
    return (
        rows[f'{skipped}{{at="start"}}'],
        rows[f'{skipped}{{at="end"}}'],
        rows["im_rpc_sync_answers_kept"],
    )


async def test_a_quiet_syncs_next_wait_counts_the_reads_it_saved(trio: Trio) -> None:
    """A wait that times out gives its read's page again at its end, and keeps it; the next
    wait from it needs no read at its start, and gives it again at its end."""
    async with httpx.AsyncClient(base_url=trio.url(), timeout=30) as c:
        token = await _token(c, "q")
        first = await c.get("/api/sync", params={"user": "q", "since": token, "wait_ms": 300})
        assert _quiet(await _scrape(trio)) == (0, 1, 1)
        second = await c.get(
            "/api/sync", params={"user": "q", "since": first.json()["next"], "wait_ms": 200}
        )
        assert second.json()["events"] == []
    assert _quiet(await _scrape(trio)) == (1, 2, 1)


async def test_only_sync_resets_of_lost_writes_count_as_failed_calls(trio: Trio) -> None:
    """A token too old is the client's (not counted); one naming records the store lost is
    the store's failure: counted, by its code."""
    redis = aioredis.Redis(port=trio.redis.port)
    try:
        async with httpx.AsyncClient(base_url=trio.url(), timeout=30) as c:
            old = await _token(c, "g")
            await redis.delete(feed_key("g"))  # (dropped after a long idle time)
            gone = await c.get("/api/sync", params={"user": "g", "since": old})
            token = await _token(c, "l")
            await c.post("/api/send", data={"chat": "l:y", "sender": "y", "text": "hi"})
            read = (await c.get("/api/sync", params={"user": "l", "since": token})).json()
            await redis.ltrim(feed_key("l"), 0, -2)  # the store lost that record
            lost = await c.get("/api/sync", params={"user": "l", "since": read["next"]})
    finally:
        await redis.aclose()
    assert [(a.status_code, a.json()["error"]) for a in (gone, lost)] == [(410, "sync_reset")] * 2
    failed = {k: v for k, v in (await _scrape(trio)).items() if "failed_calls" in k}
    assert failed == {'im_rpc_failed_calls_total{code="sync_reset"}': 1}


async def test_a_stopped_im_rpc_closes_its_metrics_port(trio: Trio) -> None:
    await _scrape(trio)
    assert trio.rpc.proc is not None
    trio.rpc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(trio.rpc.proc.wait, 10) == 0
    assert "im-rpc stopped" in trio.rpc.log_tail()
    with pytest.raises(httpx.ConnectError):
        await _scrape(trio)
