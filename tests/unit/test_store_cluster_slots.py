"""A cluster store's pipelines take turns, and a turn is waited for only so long."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio.cluster import RedisCluster

from rpc_svc.domain.errors import StoreUnavailable
from rpc_svc.store.cluster import ClusterTopology


def _topology(max_connections: int, wait_s: float) -> ClusterTopology:
    # no command is sent: the client connects on first use
    return ClusterTopology(RedisCluster.from_url("redis://127.0.0.1:1"), max_connections, wait_s)


async def test_a_pipeline_past_the_limit_waits_for_one_to_end() -> None:
    topology = _topology(max_connections=3, wait_s=5.0)  # 2 pipelines, 1 connection spare
    order: list[str] = []
    release = asyncio.Event()

    async def pipeline(name: str) -> None:
        async with topology.pipeline_slot():
            order.append(f"{name} in")
            await release.wait()
            order.append(f"{name} out")

    tasks = [asyncio.create_task(pipeline(name)) for name in "abc"]
    await asyncio.sleep(0.05)
    assert order == ["a in", "b in"]  # c waits
    release.set()
    await asyncio.gather(*tasks)
    assert order.index("c in") > order.index("a out")


async def test_a_turn_not_given_within_the_wait_is_store_unavailable() -> None:
    topology = _topology(max_connections=1, wait_s=0.2)
    async with topology.pipeline_slot():
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="no connection to redis came free within"):
            async with topology.pipeline_slot():
                pass
        assert 0.15 < time.monotonic() - started < 2.0
    async with topology.pipeline_slot():  # the turn that timed out took nothing
        pass
