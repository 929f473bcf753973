"""The inbox and big groups, on one Redis and on the cluster: a big group's message moves it
in its members' inboxes at their next read (never before, never for anyone else), whatever
else changed meanwhile; a group row of a user who is not its member is never shown, and is
dropped; a user's groups are listed with messages or not."""

from __future__ import annotations

import itertools

import pytest
import redis.asyncio as aioredis

from im_common.calls import ChatsCall, GroupCall, SendCall
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from rpc_svc.store.keys import BIG_KEYS, inbox_key, user_groups_key
from tests.conftest import ON_EVERY_BACKEND

pytestmark = ON_EVERY_BACKEND
_ids = itertools.count()


async def _big(service: ChatService, owner: str, members: list[str]) -> str:
    group = f"#big{next(_ids)}"
    await service.group(GroupCall("create", group, owner))
    for member in members:
        await service.group(GroupCall("add", group, owner, member))
    return group


async def _listed(service: ChatService, user: str) -> list[str]:
    return [c["chat"] for c in (await service.chats(ChatsCall(user, 0, 100))).chats]


async def test_a_users_inbox_catches_up_with_its_big_groups_whatever_else_changed(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """A user in 2 big groups (fanout 1: big at the second member) while 5 other big groups
    have messages: first more changed than the user is in (the read then looks at the user's
    own groups), then fewer (it looks at those that changed). Its inbox lists its 2 groups,
    newest first, and none of the others, after each message."""
    service = ChatService(store, 4096, group_fanout_max=1)
    n = next(_ids)
    user, owner, other = f"u{n}", f"o{n}", f"x{n}"
    mine = [await _big(service, owner, [user]) for _ in range(2)]
    theirs = [await _big(service, owner, [other]) for _ in range(5)]
    assert await _listed(service, user) == []  # no message yet: nothing to show
    for group in [*theirs, mine[0], *theirs, mine[1]]:
        await service.send(SendCall(group, owner, "news"))
    assert await _listed(service, user) == [mine[1], mine[0]]
    await service.send(SendCall(mine[0], owner, "again"))
    await service.send(SendCall(theirs[0], owner, "more"))  # newer than the user's groups
    page = await service.chats(ChatsCall(user, 0, 2))  # (2 changed: no more than its groups)
    assert ([c["chat"] for c in page.chats], page.has_more) == ([mine[0], mine[1]], False)
    assert set(await redis_client.zrange(inbox_key(user), 0, -1)) == set(mine)
    assert await _listed(service, other) == [theirs[0], *theirs[:0:-1]]


async def test_a_group_row_of_a_non_member_is_not_shown_and_is_dropped(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    """A row (and a place among its groups) that an earlier version, or a change cut short on
    a cluster, left for a user who is not a member: the inbox shows the user's other chats
    and not that group, counts it for paging, and drops it; the groups list leaves it out."""
    n = next(_ids)
    user, owner = f"u{n}", f"o{n}"
    group, chat = f"#gone{n}", f"{owner}:{user}"
    await service.group(GroupCall("create", group, owner))
    sent = await service.send(SendCall(group, owner, "not for you"))
    await service.send(SendCall(chat, owner, "hi"))
    await redis_client.zadd(inbox_key(user), {group: sent.send_time + 10**6})  # a stale row
    await redis_client.sadd(user_groups_key(user), group)
    first = await service.chats(ChatsCall(user, 0, 1))
    assert first.chats == []  # the stale row took the page's one place, shown as nothing
    assert first.has_more
    assert await redis_client.zscore(inbox_key(user), group) is None  # dropped by that read
    rest = await service.chats(ChatsCall(user, first.next_cursor, 1))
    assert [c["chat"] for c in rest.chats] == [chat]
    assert await _listed(service, user) == [chat]


async def test_a_group_a_user_is_not_in_is_not_listed_and_is_dropped(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    """A place among a user's groups for a group it is not a member of (left by an earlier
    version, or a join cut short on a cluster): GET /api/groups leaves it out and drops it."""
    n = next(_ids)
    user, owner = f"u{n}", f"o{n}"
    group, mine = f"#gone{n}", f"#mine{n}"
    await service.group(GroupCall("create", group, owner))
    await service.group(GroupCall("create", mine, user))
    await redis_client.sadd(user_groups_key(user), group)
    listed = await service.group(GroupCall("list", "", user))
    assert listed.groups == [mine]  # type: ignore[union-attr]
    assert await redis_client.smembers(user_groups_key(user)) == {mine}


@pytest.mark.parametrize("fanout", [100, 1], ids=["small", "big"])
async def test_a_retried_group_send_does_its_second_step_again_on_a_cluster(
    store: RedisStore, redis_client: aioredis.Redis, backend: str, fanout: int
) -> None:
    """A group send whose second step was lost (on a cluster: the members' inbox rows of a
    small group, the activity note of a big one) is retried with the same key: nothing new
    is stored, and the members' inboxes show the message. (On one Redis the send's script
    does both at once: nothing can be lost between them.)"""
    if backend != "cluster":
        pytest.skip("one Redis writes the members' side in the send's own script")
    service = ChatService(store, 4096, group_fanout_max=fanout)
    n = next(_ids)
    owner, member = f"o{n}", f"m{n}"
    group = await _big(service, owner, [member])
    first = await service.send(SendCall(group, owner, "once", client_msg_id="k"))
    await redis_client.zrem(inbox_key(member), group)  # as if the second step was lost
    await redis_client.delete(*BIG_KEYS)
    assert await _listed(service, member) == []
    again = await service.send(SendCall(group, owner, "once", client_msg_id="k"))
    assert again == first
    assert await _listed(service, member) == [group]
