"""Sync on a Redis Cluster when the node of a member's feed dies between a send's two steps:
the message is stored in its chat's slot, the member's record cannot be written, so the
send fails (not acknowledged); once the replica took over, the client's retry with its
client_msg_id runs the step again and is acknowledged, and the member's sync shows the
message exactly once (docs/store.md, "Sync"). The same for a recall: its retry finds the
message recalled and runs the second step again, which the member's feed takes once. A
cluster of its own, killed for real."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from devtools.procs import Process
from devtools.redis_cluster import RedisClusterNodes, start_redis_cluster
from im_common.calls import RecallCall, SendCall, SyncCall
from rpc_svc.domain.errors import StoreError
from rpc_svc.server import open_store
from rpc_svc.service.changes import Windows, plan_recall
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from rpc_svc.store.commands import changes
from rpc_svc.store.commands.chats import commands
from rpc_svc.store.keys import feed_key, messages_key
from rpc_svc.store.ops import Append, Changed, Op, Posted

pytestmark = pytest.mark.slow
T = TypeVar("T")


@pytest.fixture
async def cluster(workdir: Path) -> AsyncIterator[RedisClusterNodes]:
    """3 masters with a replica each, failover after 1 s."""
    nodes = await asyncio.to_thread(start_redis_cluster, workdir / "cluster", node_timeout_ms=1000)
    yield nodes
    nodes.stop()


@dataclass
class Scene:
    """Alice and bob's chat on a store whose every write waits for a replica
    (IM_REDIS_WAIT_REPLICAS=1: the feed made by bob's token is on the replica that takes
    over), bob's feed on another master (`victim`) than the chat's, bob's sync token."""

    store: RedisStore
    service: ChatService
    alice: str
    bob: str
    chat: str
    victim: Process
    token: str


@asynccontextmanager
async def _scene(cluster: RedisClusterNodes) -> AsyncIterator[Scene]:
    store = open_store(
        cluster.url, max_connections=32, timeout_s=1.0, idempotency_ttl_s=86_400,
        cluster=True, wait_replicas=1, wait_timeout_ms=1000,
    )  # fmt: skip
    service = ChatService(store, 4096)
    try:
        for n in itertools.count():
            alice, bob = f"alice{n}", f"bob{n}"
            chat = f"{alice}:{bob}"
            victim = cluster.node_of(feed_key(bob))
            if victim.port != cluster.node_of(messages_key(chat)).port:
                break
        token = (await service.sync(SyncCall(bob))).next
        yield Scene(store, service, alice, bob, chat, victim, token)
    finally:
        await store.close()


async def _cut_before_the_second_step(
    cluster: RedisClusterNodes, scene: Scene, op: Op, first: object
) -> None:
    """Kill bob's node, run `op`'s second step (its first gave `first`): not acknowledged;
    then bob's node's replica takes over, and the node comes back as a replica."""
    scene.victim.stop(signal.SIGKILL)
    results: list[object] = [first]
    await scene.store.after([op], results)  # the members' step: bob's node is gone
    assert isinstance(results[0], StoreError)
    await asyncio.sleep(3)  # its replica takes over (node timeout 1 s)
    await asyncio.to_thread(scene.victim.start)  # back as the promoted replica's replica
    await asyncio.to_thread(cluster.wait_ok)


async def _retried(call: Callable[[], Awaitable[T]]) -> T:
    """What the client's retries get once one is answered (within 30 s)."""
    for _ in range(60):
        try:
            return await call()
        except StoreError:
            await asyncio.sleep(0.5)
    raise AssertionError("no retry was answered")


async def test_a_send_cut_between_its_steps_is_acknowledged_by_its_retry_and_synced_once(
    cluster: RedisClusterNodes,
) -> None:
    async with _scene(cluster) as scene:
        op = Append(scene.chat, 0, "once", client_msg_id="k1")
        (first,) = await scene.store.run_commands(commands(op, scene.store.plan))
        posted = Posted(int(first[0]), "p", (), int(first[1]))  # the chat's step
        await _cut_before_the_second_step(cluster, scene, op, posted)
        retry = SendCall(scene.chat, scene.alice, "once", client_msg_id="k1")
        sent = await _retried(lambda: scene.service.send(retry))
        assert sent.send_time == posted.send_time  # the message stored before, not another
        page = await scene.service.sync(SyncCall(scene.bob, scene.token))
        got = [(e["message"]["text"], e["message"]["send_time"]) for e in page.events]
        assert got == [("once", posted.send_time)]


async def test_a_recall_cut_between_its_steps_reaches_the_sync_once_by_its_retry(
    cluster: RedisClusterNodes,
) -> None:
    async with _scene(cluster) as scene:
        sent = (await scene.service.send(SendCall(scene.chat, scene.alice, "oops"))).send_time
        recall = RecallCall(scene.chat, scene.alice, sent)
        op = plan_recall(recall, Windows(0, 0)).op
        replies = await scene.store.run_commands(changes.commands(op, scene.store.plan))
        stored = changes.outcome(op, replies)  # the chat's step
        assert isinstance(stored, Changed)
        assert not stored.again
        await _cut_before_the_second_step(cluster, scene, op, stored)
        assert (await _retried(lambda: scene.service.recall(recall))).recalled
        await scene.service.recall(recall)  # and once more
        page = await scene.service.sync(SyncCall(scene.bob, scene.token))
        got = [(e["type"], e.get("send_time") or e["message"]["send_time"]) for e in page.events]
        assert got == [("message", sent), ("recall", sent)]
        assert page.events[0]["message"]["recalled"] is True
