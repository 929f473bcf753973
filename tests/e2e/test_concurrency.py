"""Many senders on one chat through two gateways and two im-rpc: nothing lost or merged."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

SENDERS = 50
EACH = 10


async def _sender(c: httpx.AsyncClient, base: str, chat: str, who: str) -> list[int]:
    times = []
    for _ in range(EACH):
        r = await c.post(f"{base}/api/send", json={"chat": chat, "sender": who, "text": "same"})
        assert r.status_code == 200, r.text
        times.append(r.json()["send_time"])
    return times


async def test_fifty_concurrent_senders_lose_and_merge_nothing(stack: Stack) -> None:
    chat = "crowd:room"
    limits = httpx.Limits(max_connections=SENDERS)
    async with httpx.AsyncClient(timeout=30, limits=limits) as c:
        acked = await asyncio.gather(
            *(_sender(c, stack.url(i % 2), chat, ("crowd", "room")[i % 2]) for i in range(SENDERS))
        )
        stored: list[dict[str, Any]] = []
        cursor = 0
        for _ in range(SENDERS * EACH):
            page = (
                await c.get(
                    f"{stack.url(1)}/api/pull", params={"chat": chat, "cursor": cursor, "limit": 97}
                )
            ).json()
            stored.extend(page["messages"])
            if not page["has_more"]:
                break
            cursor = page["next_cursor"]
    times = [m["send_time"] for m in stored]
    assert len(stored) == SENDERS * EACH
    assert all(a < b for a, b in itertools.pairwise(times))
    assert sorted(t for ts in acked for t in ts) == times
    assert {m["text"] for m in stored} == {"same"}
    for ts in acked:  # each sender's own messages keep the order it sent them in
        assert ts == sorted(ts)


async def test_concurrent_requests_share_batch_rpcs(stack: Stack) -> None:
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=40)) as c:

        async def pulls() -> None:
            for _ in range(5):
                r = await c.get(f"{stack.url(0)}/api/pull", params={"chat": "batch:test"})
                assert r.status_code == 200

        await asyncio.gather(*(pulls() for _ in range(40)))
        metrics = (await c.get(f"{stack.url(0)}/metrics")).text
    count = float(metrics.split("im_rpc_batch_calls_count ")[1].split()[0])
    total = float(metrics.split("im_rpc_batch_calls_sum ")[1].split()[0])
    assert total >= 200
    assert count < total  # some Batch RPCs carried more than one call
