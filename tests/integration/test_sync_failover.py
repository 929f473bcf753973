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
from collections.abc import AsyncIterator
from pathlib import Path

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
from rpc_svc.store.ops import Append, Changed, Posted

pytestmark = pytest.mark.slow


@pytest.fixture
async def cluster(workdir: Path) -> AsyncIterator[RedisClusterNodes]:
    """3 masters with a replica each, failover after 1 s."""
    nodes = await asyncio.to_thread(start_redis_cluster, workdir / "cluster", node_timeout_ms=1000)
    yield nodes
    nodes.stop()


def _store(cluster: RedisClusterNodes) -> RedisStore:
    # every write waits for a replica (IM_REDIS_WAIT_REPLICAS=1): the feed made by the
    # token is on the replica that takes over
    return open_store(
        cluster.url, max_connections=32, timeout_s=1.0, idempotency_ttl_s=86_400,
        cluster=True, wait_replicas=1, wait_timeout_ms=1000,
    )  # fmt: skip


def _apart(cluster: RedisClusterNodes) -> tuple[str, str, str]:
    """Alice, bob and their chat, bob's feed on another master than the chat's."""
    for n in itertools.count():
        alice, bob = f"alice{n}", f"bob{n}"
        chat = f"{alice}:{bob}"
        if cluster.node_of(feed_key(bob)).port != cluster.node_of(messages_key(chat)).port:
            return alice, bob, chat
    raise AssertionError


async def _fail_over(cluster: RedisClusterNodes, victim: Process) -> None:
    """Once `victim` was killed: its replica takes over, it comes back as a replica."""
    await asyncio.sleep(3)  # its replica takes over (node timeout 1 s)
    await asyncio.to_thread(victim.start)  # back as the promoted replica's replica
    await asyncio.to_thread(cluster.wait_ok)


async def test_a_send_cut_between_its_steps_is_acknowledged_by_its_retry_and_synced_once(
    cluster: RedisClusterNodes,
) -> None:
    store = _store(cluster)
    service = ChatService(store, 4096)
    try:
        alice, bob, chat = _apart(cluster)
        victim = cluster.node_of(feed_key(bob))
        token = (await service.sync(SyncCall(bob))).next
        op = Append(chat, 0, "once", client_msg_id="k1")
        (first,) = await store.run_commands(commands(op, store.plan))  # the chat's step
        posted = Posted(int(first[0]), "p", (), int(first[1]))
        victim.stop(signal.SIGKILL)
        results: list[object] = [posted]
        await store.after([op], results)  # the members' step: bob's node is gone
        assert isinstance(results[0], StoreError)  # the send is not acknowledged
        await _fail_over(cluster, victim)
        for _ in range(60):  # the client retries with its key
            try:
                sent = await service.send(SendCall(chat, alice, "once", client_msg_id="k1"))
                break
            except StoreError:
                await asyncio.sleep(0.5)
        assert sent.send_time == posted.send_time  # the message stored before, not another
        page = await service.sync(SyncCall(bob, token))
        got = [(e["message"]["text"], e["message"]["send_time"]) for e in page.events]
        assert got == [("once", posted.send_time)]
    finally:
        await store.close()


async def test_a_recall_cut_between_its_steps_reaches_the_sync_once_by_its_retry(
    cluster: RedisClusterNodes,
) -> None:
    store = _store(cluster)
    service = ChatService(store, 4096)
    try:
        alice, bob, chat = _apart(cluster)
        victim = cluster.node_of(feed_key(bob))
        token = (await service.sync(SyncCall(bob))).next
        sent = (await service.send(SendCall(chat, alice, "oops"))).send_time
        op = plan_recall(RecallCall(chat, alice, sent), Windows(0, 0)).op
        stored = changes.outcome(op, await store.run_commands(changes.commands(op, store.plan)))
        assert isinstance(stored, Changed)  # the chat's step
        assert not stored.again
        victim.stop(signal.SIGKILL)
        results: list[object] = [stored]
        await store.after([op], results)  # the members' step: bob's node is gone
        assert isinstance(results[0], StoreError)  # the recall is not acknowledged
        await _fail_over(cluster, victim)
        for _ in range(60):  # the client retries
            try:
                assert (await service.recall(RecallCall(chat, alice, sent))).recalled
                break
            except StoreError:
                await asyncio.sleep(0.5)
        await service.recall(RecallCall(chat, alice, sent))  # and once more
        page = await service.sync(SyncCall(bob, token))
        got = [(e["type"], e.get("send_time") or e["message"]["send_time"]) for e in page.events]
        assert got == [("message", sent), ("recall", sent)]
        assert page.events[0]["message"]["recalled"] is True
    finally:
        await store.close()
