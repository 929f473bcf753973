"""The inbox over the real store: every acknowledged send shows in both members' inboxes,
paging returns each chat once (most recently active first), unread counts follow reads."""

from __future__ import annotations

import itertools
from typing import cast

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from im_common.calls import ChatsCall, GroupCall, PullCall, ReadCall, SendCall
from rpc_svc.domain.errors import InvalidArgument, StoreError
from rpc_svc.domain.values import InboxChat
from rpc_svc.service.runner import ChatService
from rpc_svc.store.keys import inbox_key, messages_key, short_key
from tests.conftest import ON_EVERY_BACKEND, key_count
from tests.integration.test_paging_properties import PROPERTY_SETTINGS

pytestmark = ON_EVERY_BACKEND
_runs = itertools.count()


async def _inbox(service: ChatService, user: str, limit: int) -> list[InboxChat]:
    """Every chat of `user`, by paging with `limit`."""
    seen: list[InboxChat] = []
    cursor = 0
    for _ in range(1000):
        page = await service.chats(ChatsCall(user, cursor, limit))
        assert len(page.chats) <= limit
        seen.extend(page.chats)
        if not page.has_more:
            assert page.next_cursor == 0
            return seen
        cursor = page.next_cursor
    raise AssertionError("paging did not end")


async def test_a_send_shows_in_both_inboxes_with_unread_for_the_other_only(
    service: ChatService,
) -> None:
    sent = await service.send(SendCall("bob:ann", "bob", "hi ann"))
    (for_ann,) = (await service.chats(ChatsCall("ann"))).chats
    (for_bob,) = (await service.chats(ChatsCall("bob"))).chats
    message = {"chat": "ann:bob", "text": "hi ann", "sender": "bob", "send_time": sent.send_time}
    assert for_ann == {"chat": "ann:bob", "last_message": message, "unread": 1}
    assert for_bob == {"chat": "ann:bob", "last_message": message, "unread": 0}
    assert (await service.chats(ChatsCall("cid"))).chats == []


async def test_names_with_braces_and_percent_find_their_keys(service: ChatService) -> None:
    # the inbox script derives a chat's and a group's keys from the names in the inbox: an
    # escape missed there reads another key (or none), so the last message would be missing
    await service.group(GroupCall("create", "#g{1}%", "a{b}"))
    await service.group(GroupCall("add", "#g{1}%", "a{b}", "c%7Bd"))
    pair = await service.send(SendCall("a{b}:c%7Bd", "c%7Bd", "to a"))
    group = await service.send(SendCall("#g{1}%", "c%7Bd", "to all"))
    shown = {c["chat"]: c for c in (await service.chats(ChatsCall("a{b}"))).chats}
    assert shown["#g{1}%"]["last_message"]["send_time"] == group.send_time
    assert shown["a{b}:c%7Bd"]["last_message"]["send_time"] == pair.send_time
    assert (shown["#g{1}%"]["unread"], shown["a{b}:c%7Bd"]["unread"]) == (1, 1)


async def test_reads_only_move_forward_and_stop_at_what_is_stored(service: ChatService) -> None:
    times = [(await service.send(SendCall("ann:bob", "bob", f"m{i}"))).send_time for i in range(4)]
    await service.send(SendCall("ann:bob", "ann", "mine"))  # never unread to ann

    async def unread() -> int:
        return (await service.chats(ChatsCall("ann"))).chats[0]["unread"]

    assert await unread() == 4
    nothing = await service.mark_read(ReadCall("ann:bob", "ann", 0))  # before every message
    assert nothing.read_until == 0
    assert await unread() == 4
    done = await service.mark_read(ReadCall("bob:ann", "ann", times[1]))
    assert (done.chat, done.user, done.read_until) == ("ann:bob", "ann", times[1])
    assert await unread() == 2
    back = await service.mark_read(ReadCall("ann:bob", "ann", times[0]))  # older: no change
    assert back.read_until == times[1]
    assert await unread() == 2
    between = await service.mark_read(ReadCall("ann:bob", "ann", times[2] + 1))
    assert between.read_until == times[2]  # the last message at or before the time named
    beyond = await service.mark_read(ReadCall("ann:bob", "ann", 2**63 - 1))
    assert beyond.read_until > times[3]
    assert await unread() == 0
    later = await service.send(SendCall("ann:bob", "bob", "new"))
    assert later.send_time > beyond.read_until
    assert await unread() == 1
    assert (await service.chats(ChatsCall("bob"))).chats[0]["unread"] == 1  # ann wrote 1


async def test_a_repeated_send_counts_once(service: ChatService) -> None:
    for _ in range(3):
        await service.send(SendCall("ann:bob", "bob", "once", client_msg_id="k1"))
    assert (await service.chats(ChatsCall("ann"))).chats[0]["unread"] == 1


async def test_a_self_chat_is_listed_once_and_never_unread(service: ChatService) -> None:
    await service.send(SendCall("me:me", "me", "note to self"))
    (only,) = (await service.chats(ChatsCall("me"))).chats
    assert only["chat"] == "me:me"
    assert only["unread"] == 0


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (ReadCall("ann:bob", "cid", 1), "user_not_in_chat"),
        (ReadCall("ann", "ann", 1), "invalid_chat"),
        (ReadCall("ann:bob", "ann", -1), "invalid_send_time"),
        (ChatsCall("a:b"), "invalid_user"),
        (ChatsCall(""), "invalid_user"),
        (ChatsCall("ann", -1), "invalid_cursor"),
        (ChatsCall("ann", 0, 1001), "invalid_limit"),
    ],
)
async def test_bad_inbox_calls_are_refused(
    service: ChatService, redis_client: aioredis.Redis, call: ChatsCall | ReadCall, code: str
) -> None:
    (result,) = await service.run([call])
    assert isinstance(result, InvalidArgument)
    assert result.code == code
    assert await key_count(redis_client) == 0


async def test_chats_active_in_the_same_microsecond_are_each_paged_once(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    chats = [f"ann:b{i}" for i in range(5)]
    sent = {c: (await service.send(SendCall(c, "ann", "x"))).send_time for c in chats}
    await service.send(SendCall("ann:older", "ann", "x"))
    same = max(sent.values()) + 1_000_000
    for chat in chats:  # the inbox step of a send as a cluster runs it, all at one time
        await redis_client.zadd(inbox_key("ann"), {chat: same}, gt=True)
        await redis_client.zadd(inbox_key("ann"), {chat: same}, gt=True)  # a retry
        await redis_client.zadd(inbox_key("ann"), {chat: sent[chat]}, gt=True)  # late, older
    await redis_client.zadd(inbox_key("ann"), {"ann:older": same - 1}, gt=True)
    positions = await redis_client.zrange(inbox_key("ann"), 0, -1, withscores=True)
    assert (
        sorted(int(p) for _, p in cast(list[tuple[str, float]], positions))
        == [same - 1] + [same] * 5
    )
    for limit in (1, 2, 3, 5):
        listed = [c["chat"] for c in await _inbox(service, "ann", limit)]
        assert listed[-1] == "ann:older"
        listed = listed[:-1]
        assert sorted(listed) == chats
        assert len(listed) == 5


@PROPERTY_SETTINGS
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["send", "read"]),
            st.integers(0, 3),  # who
            st.integers(0, 3),  # with whom
            st.integers(0, 6),  # which of the chat's messages a read names
        ),
        max_size=30,
    ),
    limit=st.integers(1, 5),
)
async def test_the_inbox_matches_a_model_of_sends_and_reads(
    service: ChatService, steps: list[tuple[str, int, int, int]], limit: int
) -> None:
    run = next(_runs)
    users = [f"u{run}x{i}" for i in range(4)]
    last: dict[str, tuple[int, str, str]] = {}  # chat -> (send_time, sender, text)
    times: dict[str, list[tuple[int, str]]] = {}  # chat -> [(send_time, sender)]
    read: dict[tuple[str, str], int] = {}  # (user, chat) -> read_until
    for n, (kind, who, other, pick) in enumerate(steps):
        user, peer = users[who], users[other]
        chat = ":".join(sorted((user, peer)))
        if kind == "send":
            sent = await service.send(SendCall(chat, user, f"t{n}"))
            last[chat] = (sent.send_time, user, f"t{n}")
            times.setdefault(chat, []).append((sent.send_time, user))
        elif chat in times:
            at = times[chat][min(pick, len(times[chat]) - 1)][0]
            done = await service.mark_read(ReadCall(chat, user, at))
            read[user, chat] = max(read.get((user, chat), 0), at)
            assert done.read_until == read[user, chat]
    for user in users:
        mine = [c for c in last if user in c.split(":")]
        expected = sorted(mine, key=lambda c: last[c][0], reverse=True)
        listed = await _inbox(service, user, limit)
        assert [c["chat"] for c in listed] == expected
        for item in listed:
            chat = item["chat"]
            send_time, sender, text = last[chat]
            assert item["last_message"] == {
                "chat": chat, "text": text, "sender": sender, "send_time": send_time
            }  # fmt: skip
            position = read.get((user, chat), 0)
            assert item["unread"] == sum(1 for t, s in times[chat] if t > position and s != user)


async def test_texts_keep_their_colons(service: ChatService) -> None:
    # an entry's value is "<role><count>:<count>:<text>": a text's own colons and digits
    # must not shift where its counts end
    texts = ("12:34:hi", ":", "0:0:")
    for text in texts:
        await service.send(SendCall("ann:bob", "bob", text))
    page = await service.pull(PullCall("ann:bob", 0, 10))
    assert [m["text"] for m in page.messages] == list(texts)
    assert [m["sender"] for m in page.messages] == ["bob"] * 3
    (chat,) = (await service.chats(ChatsCall("ann"))).chats
    assert (chat["unread"], chat["last_message"]["text"]) == (3, "0:0:")
    await service.send(SendCall("ann:bob", "ann", "new from ann"))
    await service.mark_read(ReadCall("ann:bob", "ann", page.messages[0]["send_time"]))
    (for_ann,) = (await service.chats(ChatsCall("ann"))).chats
    (for_bob,) = (await service.chats(ChatsCall("bob"))).chats
    assert (for_ann["unread"], for_bob["unread"]) == (2, 1)


async def test_reads_of_chats_without_messages_store_nothing(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    for i in range(50):  # chats nobody wrote to: a client may name any
        done = await service.mark_read(ReadCall(f"ann:ghost{i}", "ann", 2**62))
        assert done.read_until == 0
    assert await key_count(redis_client) == 0
    sent = await service.send(SendCall("ann:bob", "bob", "hi"))
    keys = await key_count(redis_client)
    early = await service.mark_read(ReadCall("ann:bob", "ann", sent.send_time - 1))
    assert early.read_until == 0  # before the first message: nothing read, nothing kept
    assert await key_count(redis_client) == keys
    read = await service.mark_read(ReadCall("ann:bob", "ann", sent.send_time))
    assert read.read_until == sent.send_time
    assert await key_count(redis_client) == keys + 1  # ann's read positions
    again = await service.mark_read(ReadCall("ann:bob", "ann", 0))
    assert again.read_until == sent.send_time  # never back


async def test_a_store_failure_reading_the_last_messages_is_the_answer(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    await service.send(SendCall("ann:bob", "bob", "hi"))
    for key in (short_key("ann:bob"), messages_key("ann:bob")):  # the list, or the stream
        await redis_client.delete(key)
        await redis_client.set(key, "not a list, not a stream")  # LINDEX/XREVRANGE: WRONGTYPE
    with pytest.raises(StoreError, match="refused the command"):
        await service.chats(ChatsCall("ann"))
