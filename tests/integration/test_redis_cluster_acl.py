"""The store on a Redis Cluster as compose runs it: logged in as the user of
deploy/redis/im-user-cluster.acl (only the store's commands, keys and channels), with every
write acknowledged by a replica (IM_REDIS_WAIT_REPLICAS=1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis.exceptions as rexc

from devtools.redis_cluster import start_redis_cluster
from im_common.calls import ChatsCall, GroupCall, PullCall, ReadCall, SendCall
from rpc_svc.server import open_store
from rpc_svc.service.runner import ChatService

RULES = (Path(__file__).parents[2] / "deploy/redis/im-user-cluster.acl").read_text().split()
ADMIN, PASSWORD = "admin-secret", "im-secret"


@pytest.fixture
async def cluster_url(tmp_path: Path) -> AsyncIterator[str]:
    users = ["--user", "default", "on", f">{ADMIN}", "~*", "&*", "+@all"]
    users += ["--user", "im", "on", f">{PASSWORD}", *RULES]
    cluster = start_redis_cluster(tmp_path, *users, admin_password=ADMIN)
    yield f"redis://im:{PASSWORD}@127.0.0.1:{cluster.nodes[0].port}/0"
    cluster.stop()


async def test_the_store_works_as_the_cluster_acl_user_and_nothing_else_does(
    cluster_url: str,
) -> None:
    store = open_store(
        cluster_url,
        max_connections=8,
        timeout_s=1.0,
        idempotency_ttl_s=60,
        cluster=True,
        wait_replicas=1,
        wait_timeout_ms=2000,  # a replica's ack, not its speed, is under test (CI is shared)
    )
    store.wakeups.start()
    service = ChatService(store, 4096)
    try:
        assert await service.ready()
        await store.check_layout()  # (its SET, GET and EVALSHA are the user's to run)
        sent = await service.send(SendCall("ann:bob", "bob", "hi", client_msg_id="k"))
        assert (await service.send(SendCall("ann:bob", "bob", "hi", client_msg_id="k"))) == sent
        page = await service.pull(PullCall("ann:bob"))
        assert [m["text"] for m in page.messages] == ["hi"]
        (chat,) = (await service.chats(ChatsCall("ann"))).chats
        assert chat["unread"] == 1
        assert (await service.mark_read(ReadCall("ann:bob", "ann", sent.send_time))).read_until
        poll = asyncio.create_task(service.pull_wait(PullCall("x:y", sent.send_time), 5000))
        await asyncio.sleep(0.2)
        await service.send(SendCall("x:y", "x", "wake"))
        assert [m["text"] for m in (await asyncio.wait_for(poll, 2)).messages] == ["wake"]
        await service.group(GroupCall("create", "#g", "ann"))
        await service.group(GroupCall("add", "#g", "ann", "bob"))
        await service.send(SendCall("#g", "ann", "to the group"))
        assert [m["text"] for m in (await service.pull(PullCall("#g"))).messages] == [
            "to the group"
        ]
        inbox = (await service.chats(ChatsCall("bob"))).chats
        assert [(c["chat"], c["unread"]) for c in inbox] == [("#g", 1), ("ann:bob", 0)]
        await service.group(GroupCall("remove", "#g", "bob", "bob"))
    finally:
        await store.close()
    im = aioredis.RedisCluster.from_url(cluster_url)
    try:
        for command in (("FLUSHALL",), ("DEL", "im:x"), ("XADD", "not-ours", "*", "m", "x")):
            with pytest.raises(rexc.NoPermissionError):
                await im.execute_command(*command)
    finally:
        await im.aclose()
