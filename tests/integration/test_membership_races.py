"""Membership under concurrency, on one Redis and on the cluster: adds and removes of the
same members racing each other and sends to the group never leave a member's side (its
groups, inbox row, read position) disagreeing with the group once the calls are answered;
on a cluster, a change cut between its steps is settled by the next change or read."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from im_common.calls import ChatsCall, GroupCall, SendCall
from rpc_svc.domain.errors import IMError, StoreError
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from rpc_svc.store.cluster_steps import settle
from rpc_svc.store.keys import inbox_key, reads_key, user_groups_key
from rpc_svc.store.ops import AddMember, GroupState, Op, RemoveMember
from tests.conftest import ON_EVERY_BACKEND

_ids = itertools.count()


async def _side(redis: aioredis.Redis, user: str, group: str) -> tuple[object, object, bool]:
    """(inbox position, read position, in the user's groups) of `user`'s side of `group`."""
    return (
        await redis.zscore(inbox_key(user), group),
        await redis.hget(reads_key(user), group),
        bool(await redis.sismember(user_groups_key(user), group)),
    )


async def _agrees(service: ChatService, redis: aioredis.Redis, group: str, user: str) -> None:
    members = await service.group(GroupCall("members", group))
    inbox = await service.chats(ChatsCall(user))
    listed = [c["chat"] for c in inbox.chats if c["chat"] == group]
    position, read, in_groups = await _side(redis, user, group)
    if user in members.members:  # type: ignore[union-attr]
        assert listed == [group], (user, "a member without the group in its inbox")
        assert position is not None, (user, "a member without its inbox row")
        assert in_groups, (user, "a member without the group among its groups")
    else:
        assert listed == [], (user, "a non-member with the group in its inbox")
        assert (position, read, in_groups) == (None, None, False), (user, "a side left over")


@ON_EVERY_BACKEND
@pytest.mark.parametrize("fanout", [100, 2], ids=["small", "big"])
async def test_adds_and_removes_racing_with_sends_leave_every_side_agreeing(
    store: RedisStore, redis_client: aioredis.Redis, fanout: int
) -> None:
    """30 rounds: the owner adds and removes two members concurrently, each three times
    (in a random order),
    while the members and the owner send to the group; after each round each member's side
    agrees with the group. With a fanout of 2 the group is big after the first adds."""
    service = ChatService(store, 4096, max_group_members=10, group_fanout_max=fanout)
    n = next(_ids)
    owner, v, w, x = (f"{name}{n}" for name in ("own", "vic", "wes", "xan"))
    group = f"#race{n}"
    await service.group(GroupCall("create", group, owner))
    await service.group(GroupCall("add", group, owner, x))  # a member that stays
    await service.send(SendCall(group, owner, "first"))
    rng = random.Random(n)
    for i in range(30):
        ops = [(op, m) for m in (v, w) for op in ("add", "remove") for _ in range(3)]
        calls: list[object] = [service.group(GroupCall(op, group, owner, m)) for op, m in ops]
        calls += [service.send(SendCall(group, s, f"r{i}")) for s in (owner, x)]
        rng.shuffle(calls)
        answers = await asyncio.gather(*calls, return_exceptions=True)  # type: ignore[call-overload]
        assert not [a for a in answers if isinstance(a, BaseException)], answers
        for user in (v, w, x):
            await _agrees(service, redis_client, group, user)


@ON_EVERY_BACKEND
async def test_a_change_cut_between_its_steps_is_settled_by_the_next(
    service: ChatService, store: RedisStore, redis_client: aioredis.Redis, backend: str
) -> None:
    """The group's step alone (as when im-rpc dies before the member's side on a cluster):
    an add leaves a member its inbox does not show yet, a remove a side the inbox does not
    show and drops; the next add (which changes nothing in the group) or read settles it.
    On one Redis the group's step writes the member's side itself: nothing to settle."""
    n = next(_ids)
    owner, v = f"own{n}", f"vic{n}"
    group = f"#cut{n}"
    await service.group(GroupCall("create", group, owner))
    await service.send(SendCall(group, owner, "first"))
    ((code, *_),) = await store.direct([AddMember(group, owner, v, 10)])  # the group's step
    assert code == 1
    on_one_redis = backend != "cluster"  # (there the group's step writes the side itself)
    assert (await _side(redis_client, v, group))[2] is on_one_redis
    await service.group(GroupCall("add", group, owner, v))  # again: settles the side
    await _agrees(service, redis_client, group, v)
    ((code, _, _, _),) = await store.direct(
        [RemoveMember(group, owner, v)]
    )  # the group's step only
    assert code == 1
    inbox = await service.chats(ChatsCall(v))  # shows nothing of it, and drops the row
    assert [c["chat"] for c in inbox.chats] == []
    assert await _side(redis_client, v, group) == (None, None, False)


@ON_EVERY_BACKEND
async def test_a_member_of_as_many_groups_as_it_may_be_joins_no_more(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """IM_USER_MAX_GROUPS: a user in 3 groups (the bound here) is refused a 4th, by create
    and by add, on every backend; leaving one makes room; refusals leave nothing behind."""
    service = ChatService(store, 4096, max_groups=3)
    n = next(_ids)
    v = f"vic{n}"
    groups = [f"#g{n}x{i}" for i in range(5)]
    owners = [v] + [f"own{n}x{i}" for i in range(1, 5)]  # one each: only v is counted here
    for g, owner in zip(groups, owners, strict=True):
        await service.group(GroupCall("create", g, owner))
    for g, owner in zip(groups[1:3], owners[1:3], strict=True):
        await service.group(GroupCall("add", g, owner, v))
    with pytest.raises(IMError) as refused:
        await service.group(GroupCall("add", groups[3], owners[3], v))
    assert (refused.value.code, refused.value.message) == (
        "too_many_groups",
        f"{v!r} is in as many groups as a user may be (IM_USER_MAX_GROUPS)",
    )
    with pytest.raises(IMError) as created:
        await service.group(GroupCall("create", f"#more{n}", v))
    assert created.value.code == "too_many_groups"
    with pytest.raises(IMError) as missing:  # the refused create made nothing
        await service.group(GroupCall("members", f"#more{n}"))
    assert missing.value.code == "unknown_group"
    listed = await service.group(GroupCall("list", "", v))
    assert listed.groups == sorted(groups[:3])  # type: ignore[union-attr]
    assert (await _side(redis_client, v, groups[3]))[2] is False
    await service.group(GroupCall("remove", groups[1], v, v))
    await service.group(GroupCall("add", groups[3], owners[3], v))
    listed = await service.group(GroupCall("list", "", v))
    assert listed.groups == sorted([groups[0], groups[2], groups[3]])  # type: ignore[union-attr]


class _ChangeAfterFirstRead:
    """The cluster store, with one real change run in full between the first GroupState read
    and what follows it: the worst moment for a concurrent change to land in `settle`."""

    def __init__(self, store: RedisStore, change: Callable[[], Awaitable[object]]) -> None:
        self._store = store
        self._change: Callable[[], Awaitable[object]] | None = change
        self.plan = store.plan

    async def direct(self, ops: Sequence[Op]) -> list[Any]:
        outcomes = await self._store.direct(ops)
        if any(isinstance(op, GroupState) for op in ops) and self._change is not None:
            change, self._change = self._change, None
            await change()
        return outcomes

    async def run_commands(self, commands: list[Any]) -> list[Any]:
        return await self._store.run_commands(commands)

    def as_error(self, exc: BaseException) -> StoreError:
        return self._store.as_error(exc)


@pytest.mark.parametrize("backend", ["cluster"], indirect=True)
async def test_settle_reads_the_group_again_after_writing_a_members_side(
    service: ChatService, store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """A remove that lands between settle's read of the group (member) and its write of the
    member's side: settle wrote a member's side, reads the group again, and puts it right."""
    n = next(_ids)
    owner, v = f"own{n}", f"vic{n}"
    group = f"#settle{n}"
    await service.group(GroupCall("create", group, owner))
    await service.send(SendCall(group, owner, "first"))
    await service.group(GroupCall("add", group, owner, v))

    async def remove() -> None:  # the whole change: the group's step, then its own settle
        await store.one(RemoveMember(group, owner, v))

    await settle(_ChangeAfterFirstRead(store, remove), v, group)
    assert await _side(redis_client, v, group) == (None, None, False)  # before any read heals
