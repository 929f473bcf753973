"""The store's group operations (rpc_svc/store_groups.py and their Lua scripts) on a real
Redis: membership changes and their refusals, sends with counts, reads with membership
checks, and read positions with the counts that make unread counts exact."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from rpc_svc.domain.refusals import (
    GROUP_FULL,
    NOT_A_MEMBER,
    NOT_THE_OWNER,
    OWNER_LEAVES,
    UNKNOWN_GROUP,
)
from rpc_svc.domain.values import NO_READ, Group, ReadMark
from rpc_svc.store.base import RedisStore
from rpc_svc.store.keys import group_big_key
from rpc_svc.store.ops import (
    AddMember,
    CreateGroup,
    GroupAppend,
    GroupInfo,
    GroupMark,
    GroupMarked,
    GroupRead,
    GroupTips,
    RemoveMember,
)
from tests.conftest import ON_EVERY_BACKEND

G = "#team"


async def _send(store: RedisStore, sender: str, text: str = "hi", key: str = "") -> int:
    """The send time, or the refusal code."""
    outcome = await store.one(GroupAppend(G, sender, text, key))
    return outcome if isinstance(outcome, int) else int(outcome[0])


async def test_membership_changes_and_their_refusals(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    assert await store.one(CreateGroup(G, "ann")) == 1
    assert await store.one(CreateGroup(G, "bob")) == 0
    assert await store.one(GroupInfo(G)) == Group(G, "ann", ["ann"])
    assert await store.one(GroupInfo("#none")) == UNKNOWN_GROUP
    code, group, _, _, turned = await store.one(AddMember(G, "ann", "cid", 3, 2))
    assert (code, group, turned) == (1, Group(G, "ann", ["ann", "cid"]), False)
    assert await redis_client.exists(group_big_key(G)) == 0
    code, group, _, _, turned = await store.one(AddMember(G, "cid", "bob", 3, 2))
    assert (code, group, turned) == (1, Group(G, "ann", ["ann", "bob", "cid"]), True)
    assert await redis_client.exists(group_big_key(G)) == 1  # more than a small group's 2
    again = await store.one(AddMember(G, "ann", "bob", 3, 2))  # nothing changes: big already
    assert (again[0], again[4]) == (0, False)
    assert (await store.one(AddMember(G, "ann", "dan", 3)))[0] == GROUP_FULL
    assert (await store.one(AddMember(G, "eve", "dan", 9)))[0] == NOT_A_MEMBER
    assert (await store.one(AddMember("#none", "ann", "dan", 9)))[0] == UNKNOWN_GROUP
    assert (await store.one(AddMember("#none", "ann", "dan", 9, acting=True)))[0] == NOT_A_MEMBER
    assert (await store.one(RemoveMember(G, "bob", "cid")))[0] == NOT_THE_OWNER
    assert (await store.one(RemoveMember(G, "ann", "ann")))[0] == OWNER_LEAVES
    assert (await store.one(RemoveMember(G, "ann", "zed")))[0] == 0
    assert (await store.one(RemoveMember("#none", "ann", "zed")))[0] == UNKNOWN_GROUP
    assert (await store.one(RemoveMember("#none", "ann", "zed", True)))[0] == NOT_A_MEMBER
    assert await store.one(RemoveMember(G, "bob", "bob")) == (
        1,
        Group(G, "ann", ["ann", "cid"]),
        0,
        0,
    )
    assert await store.one(RemoveMember(G, "ann", "cid")) == (1, Group(G, "ann", ["ann"]), 0, 0)
    assert await store.one(GroupInfo(G, "cid")) == NOT_A_MEMBER


@ON_EVERY_BACKEND
async def test_of_adds_at_once_past_a_small_groups_size_one_turns_the_group_big(
    store: RedisStore,
) -> None:
    """A group turns big once: of three adds at once, each past a small group's 2 members,
    exactly one says it turned it (and so wakes the members' waiting syncs once)."""
    await store.one(CreateGroup(G, "ann"))
    await store.one(AddMember(G, "ann", "bob", 10, 2))
    added = await asyncio.gather(
        *(store.one(AddMember(G, "ann", member, 10, 2)) for member in ("cid", "dan", "eve"))
    )
    assert [outcome[0] for outcome in added] == [1, 1, 1]
    assert sorted(outcome[4] for outcome in added) == [False, False, True]


async def test_sends_count_messages_and_only_members_send(store: RedisStore) -> None:
    await store.one(CreateGroup(G, "ann"))
    await store.one(AddMember(G, "ann", "bob", 10))
    times = [await _send(store, s, f"m{i}") for i, s in enumerate(["ann", "bob", "ann"])]
    assert times == sorted(set(times))
    assert await _send(store, "eve") == NOT_A_MEMBER
    assert await store.one(GroupAppend("#none", "ann", "x")) == UNKNOWN_GROUP
    assert await store.one(GroupAppend("#none", "ann", "x", acting=True)) == NOT_A_MEMBER
    assert await store.one(GroupAppend(G, "eve", "x", acting=True)) == NOT_A_MEMBER
    assert await _send(store, "bob", "again", key="k1") == await _send(
        store, "bob", "again", key="k1"
    )
    [(tip, ann_own)], [(_, bob_own)], [(_, eve_own)] = await store.execute(
        [GroupTips("ann", (G,)), GroupTips("bob", (G,)), GroupTips("eve", (G,))]
    )
    assert (tip.messages, tip.entry.sender, tip.entry.text) == (4, "bob", "again")
    assert (ann_own, bob_own, eve_own) == (2, 2, None)
    page = await store.one(GroupRead(G, "bob", 0, 10, False))
    assert [(e.sender, e.text) for e in page] == [
        ("ann", "m0"),
        ("bob", "m1"),
        ("ann", "m2"),
        ("bob", "again"),
    ]
    newest = await store.one(GroupRead(G, "", 0, 2, True))
    assert [e.text for e in newest] == ["again", "m2"]
    assert await store.one(GroupRead(G, "eve", 0, 10, False)) == NOT_A_MEMBER
    assert await store.one(GroupRead("#none", "", 0, 10, False)) == UNKNOWN_GROUP
    assert await store.one(GroupRead("#none", "ann", 0, 10, False)) == NOT_A_MEMBER


@pytest.mark.parametrize("own_sends_after", [0, 1, 3])
async def test_a_read_position_counts_messages_and_own_messages_up_to_it(
    store: RedisStore, own_sends_after: int
) -> None:
    await store.one(CreateGroup(G, "ann"))
    await store.one(AddMember(G, "ann", "bob", 10))
    assert (await store.one(GroupMark(G, "bob", 0))).mark == NO_READ
    first = await _send(store, "ann")
    mine = await _send(store, "bob")
    middle = await _send(store, "ann")
    for _ in range(own_sends_after):  # bob's own messages after the position he marks
        await _send(store, "bob")
        await _send(store, "ann")
    last = await _send(store, "ann")
    marked = await store.one(GroupMark(G, "bob", middle))
    assert marked == GroupMarked(ReadMark(middle, (3, 1)), last, 0)  # the newest: last
    assert (await store.one(GroupMark(G, "bob", mine))).mark == ReadMark(mine, (2, 1))
    assert (await store.one(GroupMark(G, "bob", mine - 1))).mark == ReadMark(first, (1, 0))
    assert await store.one(GroupMark(G, "eve", middle)) == NOT_A_MEMBER
    assert await store.one(GroupMark("#none", "eve", middle)) == UNKNOWN_GROUP
    assert await store.one(GroupMark("#none", "eve", middle, True)) == NOT_A_MEMBER
