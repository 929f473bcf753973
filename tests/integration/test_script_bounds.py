"""Every Lua script's worst input, on a real Redis: no script does work that grows with a
chat's history. Work is counted as the commands Redis runs inside the script (INFO
commandstats counts those too): each script is run on the same input at a small and at a
large history (or expired keys, or members), and must run no more commands at the large
one than its comment's bound allows."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from rpc_svc.domain.values import ReadMark
from rpc_svc.store.base import RedisStore
from rpc_svc.store.keys import idempotency_key
from rpc_svc.store.ops import (
    AddMember,
    Append,
    BigChanged,
    CreateGroup,
    GroupAppend,
    GroupInfo,
    GroupMark,
    GroupRead,
    GroupState,
    GroupTips,
    InboxRange,
    InboxRows,
    Latest,
    MarkRead,
    Read,
    RemoveMember,
    ReserveGroup,
    UserGroups,
    UserSide,
)
from tests.conftest import make_store

_ids = itertools.count()
SMALL, LARGE = 40, 4000  # history sizes (both past the short hash: streams)


@pytest.fixture
async def plain(redis_proc: Any, redis_client: aioredis.Redis) -> Any:
    """A store on the one test Redis, short hashes as im-rpc's default (32)."""
    store = make_store(redis_proc, short=32)
    yield store
    await store.close()


async def _ran(redis: aioredis.Redis, work: Callable[[], Awaitable[object]]) -> int:
    """Commands Redis ran for `work`, but the scripts themselves, their loading and INFO."""
    await work()  # once first: loads the script, and puts anything written once in place
    before = await redis.info("commandstats")
    await work()
    after = await redis.info("commandstats")
    skip = {"cmdstat_evalsha", "cmdstat_info", "cmdstat_script|load"}
    return sum(
        int(v["calls"]) - int(before.get(k, {"calls": 0})["calls"])
        for k, v in after.items()
        if k not in skip
    )


async def _group(store: RedisStore, messages: int) -> tuple[str, str, list[int]]:
    """A group (owner o, members m1, m2 of their own names), `messages` sent by o then one by
    m1: the group, m1's name, the send times."""
    n = next(_ids)
    g, o, m1, m2 = f"#b{n}", f"o{n}", f"m1x{n}", f"m2x{n}"
    ops: list[Any] = [CreateGroup(g, o), AddMember(g, o, m1, 10_000, 100)]
    ops += [AddMember(g, o, m2, 10_000, 100)]
    ops += [GroupAppend(g, o, f"t{i}") for i in range(messages)]
    ops.append(GroupAppend(g, m1, "mine"))
    times = []
    for i in range(0, len(ops), 1000):
        for outcome in await store.execute(ops[i : i + 1000]):
            if hasattr(outcome, "send_time"):
                times.append(outcome.send_time)
    return g, m1, times


def _group_cases(
    store: RedisStore, g: str, m1: str, times: list[int]
) -> dict[str, Callable[[], Awaitable[object]]]:
    """The worst input of each group script on group `g` (m1: a member who sent last)."""
    owner, m2 = f"o{g[2:]}", f"m2x{g[2:]}"
    return {
        "GROUP_MARK": lambda: store.one(GroupMark(g, m1, times[0])),
        "GROUP_READ": lambda: store.one(GroupRead(g, m1, times[0], 21, False)),
        "GROUP_SEND": lambda: store.one(GroupAppend(g, m2, "again", "same-key")),
        "GROUP_ADD": lambda: store.one(AddMember(g, owner, f"new{g}", 10_000, 100)),
        "GROUP_REMOVE": lambda: store.one(RemoveMember(g, owner, f"new{g}")),
        "GROUP_INFO": lambda: store.one(GroupInfo(g, m1)),
        "GROUP_TIPS": lambda: store.one(GroupTips(m1, (g,))),
        "INBOX_PAGE": lambda: store.one(InboxRows(m1, 0, 0, 10)),
        "GROUP_STATE": lambda: store.one(GroupState(g, m1)),
    }


async def _chat(store: RedisStore, messages: int) -> tuple[str, list[int]]:
    chat = f"a{next(_ids)}:b{next(_ids)}"
    times = []
    for i in range(0, messages, 1000):
        ops = [Append(chat, 0, f"t{j}") for j in range(i, min(messages, i + 1000))]
        times += await store.execute(ops)
    return chat, times


def _chat_cases(
    store: RedisStore, chat: str, times: list[int]
) -> dict[str, Callable[[], Awaitable[object]]]:
    """The worst input of each 1:1 script (and read) on `chat`."""
    user = chat.split(":")[1]
    mark = ReadMark(times[-1], (len(times), 0))
    return {
        "SEND": lambda: store.one(Append(chat, 1, "again", "same-key")),
        "READ": lambda: store.one(Read(chat, times[0], 21, False)),
        "LATEST": lambda: store.one(Latest(chat, times[0])),
        "MARK_READ": lambda: store.one(MarkRead(user, chat, mark)),
        "INBOX": lambda: store.one(InboxRange(user, 0, 0, 11)),
    }


async def test_group_scripts_run_no_more_commands_in_a_long_history(
    plain: RedisStore, redis_client: aioredis.Redis
) -> None:
    """The worst input of each group script: a mark far back from the member's own last
    message (GROUP_MARK), a full page (GROUP_READ), a send with a key (GROUP_SEND), a join,
    a leave, the members, tips and an inbox page (INBOX_PAGE) with a group in it."""
    ran: dict[str, list[int]] = {}
    for size in (SMALL, LARGE):
        for name, work in _group_cases(plain, *await _group(plain, size)).items():
            ran.setdefault(name, []).append(await _ran(redis_client, work))
    for name, (small, large) in ran.items():
        assert large <= small, (name, small, large)
    assert ran["GROUP_MARK"][1] <= 8, ran["GROUP_MARK"]  # one entry, one binary search step


async def test_a_mark_far_back_is_a_binary_search_of_the_members_own_messages(
    plain: RedisStore, redis_client: aioredis.Redis
) -> None:
    """GROUP_MARK's own count at a position before the member's last message: O(log) of the
    member's own messages (here 1,000 of them, 2,000 entries after the position), and
    exact."""
    g = f"#own{next(_ids)}"
    await plain.execute([CreateGroup(g, "o"), AddMember(g, "o", "m1", 10, 100)])
    first = (await plain.one(GroupAppend(g, "o", "first"))).send_time
    ops = [GroupAppend(g, s, "x") for _ in range(1000) for s in ("m1", "o")]
    await plain.execute(ops)
    ran = await _ran(redis_client, lambda: plain.one(GroupMark(g, "m1", first)))
    assert ran <= 2 + 3 + 11 + 3, ran  # HGET, the entry, STRLEN; log2(1000) + 1 GETRANGEs;
    # the newest entry and the change log's length
    assert (await plain.one(GroupMark(g, "m1", first))).mark == ReadMark(first, (1, 0))


async def test_chat_scripts_run_no_more_commands_in_a_long_history(
    plain: RedisStore, redis_client: aioredis.Redis
) -> None:
    """SEND with a key, the 1:1 reads, MARK_READ and the cluster's INBOX script."""
    ran: dict[str, list[int]] = {}
    for size in (SMALL, LARGE):
        for name, work in _chat_cases(plain, *await _chat(plain, size)).items():
            ran.setdefault(name, []).append(await _ran(redis_client, work))
    for name, (small, large) in ran.items():
        assert large <= small, (name, small, large)


async def test_a_send_drops_at_most_eight_expired_keys(
    plain: RedisStore, redis_client: aioredis.Redis
) -> None:
    """A chat with 3,000 idempotency keys, all expired: a send with a key removes 8 of them
    (not 3,000 in one script), and the set still shrinks with every such send."""
    chat = f"k{next(_ids)}:b"
    key = idempotency_key(chat)
    await redis_client.zadd(key, {f"0:old{i}": 1000 + i for i in range(3000)})
    await plain.one(Append(chat, 0, "hi", "new-key"))
    assert await redis_client.zcard(key) == 3000 - 8 + 1
    await plain.one(Append(chat, 0, "hi", "newer-key"))
    assert await redis_client.zcard(key) == 3000 - 16 + 2
    assert await redis_client.zscore(key, "0:old0") is None  # the oldest go first


async def test_member_scripts_are_bounded_by_the_users_groups_not_the_traffic(
    plain: RedisStore, redis_client: aioredis.Redis
) -> None:
    """USER_RESERVE, USER_SIDE and USER_GROUPS are O(1) or O(the user's groups); BIG_CHANGED
    lists at most the most it is given, and answers '*' beyond."""
    user = f"u{next(_ids)}"
    groups = [f"#m{next(_ids)}" for _ in range(5)]
    for g in groups:
        await plain.execute([CreateGroup(g, user)])
    assert await _ran(redis_client, lambda: plain.one(ReserveGroup(user, groups[0], 10))) <= 2
    truth = await plain.one(GroupState(groups[0], user))
    assert await _ran(redis_client, lambda: plain.one(UserSide(user, groups[0], truth))) <= 2
    assert await plain.one(UserGroups(user)) == sorted(groups)
    big = [f"#active{next(_ids)}" for _ in range(3)]
    for g in big:  # big at the second member, then a message: 3 big groups active
        await plain.execute([CreateGroup(g, user), AddMember(g, user, "x", 10, 1)])
        await plain.one(GroupAppend(g, user, "hi"))
    top, changed = await plain.one(BigChanged(0, 5))
    assert set(changed) == set(big)
    assert await plain.one(BigChanged(0, 2)) == (top, None)  # more than 2 changed: '*'
    assert await plain.one(BigChanged(top, 0)) == (top, {})  # nothing since top
