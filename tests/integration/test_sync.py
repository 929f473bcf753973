"""Sync against the real store, on one Redis and on the cluster: a user's feed from "now",
every change after it exactly once (messages of 1:1 chats, small and big groups, reads,
joins, leaves), pages and their tokens, the tokens' errors, and the long poll woken by each
kind of message."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from im_common.calls import EditCall, GroupCall, PullCall, ReadCall, RecallCall, SendCall, SyncCall
from rpc_svc.domain import tokens
from rpc_svc.domain.errors import (
    Forbidden,
    InvalidArgument,
    Overloaded,
    SyncLostWrites,
    SyncReset,
)
from rpc_svc.service.runner import ChatService
from rpc_svc.service.sync import POLL_S
from rpc_svc.store.base import RedisStore
from rpc_svc.store.keys import SYNC_SECRET_KEY, feed_key, messages_key, short_key
from tests.conftest import ON_EVERY_BACKEND

pytestmark = ON_EVERY_BACKEND
_ids = itertools.count()


def _names(*stems: str) -> list[str]:
    n = next(_ids)
    return [f"{stem}{n}" for stem in stems]


async def _now(service: ChatService, user: str) -> str:
    page = await service.sync(SyncCall(user))
    assert (page.events, page.has_more) == ([], False)
    return page.next


async def _follow(
    service: ChatService, user: str, since: str, limit: int = 0
) -> tuple[list[Any], str]:
    """Every event after `since`, page after page: (events, the last token)."""
    events: list[Any] = []
    for _ in range(1000):
        page = await service.sync(SyncCall(user, since, limit))
        events += page.events
        since = page.next
        if not page.has_more:
            return events, since
        assert len(page.events) == (limit or 100)  # a page is full while more wait
    raise AssertionError("has_more never ended")


def _short(events: list[Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e["type"] == "message":
            m = e["message"]
            out.append(("message", e["chat"], m["sender"], m["text"]))
        elif e["type"] == "read":
            out.append(("read", e["chat"], e["read_until"]))
        else:
            out.append((e["type"], e["chat"]))
    return out


async def test_a_1to1_chat_reaches_both_members_exactly_once_with_reads(
    service: ChatService,
) -> None:
    a, b = _names("a", "b")
    chat = f"{a}:{b}"
    early = await service.send(SendCall(chat, a, "before the token"))
    ta, tb = await _now(service, a), await _now(service, b)
    sent = [await service.send(SendCall(chat, s, f"m{i}")) for i, s in enumerate([a, b, a])]
    await service.send(SendCall(chat, a, "m0", client_msg_id="k"))
    await service.send(SendCall(chat, a, "m0", client_msg_id="k"))  # one message
    await service.mark_read(ReadCall(chat, b, sent[1].send_time))
    await service.mark_read(ReadCall(chat, b, sent[0].send_time))  # moves nothing: no event
    got_a, _ = await _follow(service, a, ta)
    got_b, _ = await _follow(service, b, tb)
    messages = [("message", chat, a, "m0"), ("message", chat, b, "m1"), ("message", chat, a, "m2")]
    messages.append(("message", chat, a, "m0"))
    assert _short(got_a) == messages
    assert _short(got_b) == [*messages, ("read", chat, sent[1].send_time)]
    assert early.send_time not in [e["message"]["send_time"] for e in got_a]
    assert [e["message"]["send_time"] for e in got_a[:3]] == [s.send_time for s in sent]


async def test_pages_of_any_size_give_every_event_once_in_order(service: ChatService) -> None:
    a, b, c = _names("a", "b", "c")
    token = await _now(service, a)
    expected = []
    for i in range(23):
        peer = b if i % 3 else c
        chat = ":".join(sorted([a, peer]))
        await service.send(SendCall(chat, peer, f"t{i}"))
        expected.append(("message", chat, peer, f"t{i}"))
    for limit in (1, 4, 23, 100):
        got, last = await _follow(service, a, token, limit)
        assert _short(got) == expected, limit
    again = await service.sync(SyncCall(a, last))
    assert (again.events, again.has_more) == ([], False)
    retried = await service.sync(SyncCall(a, token, 5))  # a token used again: the same page
    assert _short(retried.events) == expected[:5]


async def test_a_message_whose_chat_was_deleted_is_left_out_and_the_page_goes_on(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    a, b, c, g = _names("a", "b", "c", "#g")
    gone, kept = f"{a}:{b}", f"{a}:{c}"
    await service.group(GroupCall("create", g, a))
    token = await _now(service, a)
    await service.send(SendCall(kept, c, "before"))
    await service.send(SendCall(gone, b, "deleted"))
    await service.send(SendCall(g, a, "in the group"))
    await service.send(SendCall(kept, a, "after"))
    last = await service.send(SendCall(gone, b, "also deleted"))
    await service.mark_read(ReadCall(gone, a, last.send_time))
    await redis_client.delete(messages_key(gone), short_key(gone))  # (by an operator)
    page = await service.sync(SyncCall(a, token, 4))
    assert _short(page.events) == [
        ("message", kept, c, "before"),
        ("message", g, a, "in the group"),
        ("message", kept, a, "after"),
    ]  # 4 records: 3 events
    rest, _ = await _follow(service, a, page.next)
    assert _short(rest) == [("read", gone, last.send_time)]


async def test_groups_joined_left_and_what_a_member_sees_in_between(
    service: ChatService,
) -> None:
    owner, member = _names("o", "m")
    group = f"#g{next(_ids)}"
    t_owner, t_member = await _now(service, owner), await _now(service, member)
    await service.group(GroupCall("create", group, owner))
    await service.send(SendCall(group, owner, "alone"))
    await service.group(GroupCall("add", group, owner, member))
    await service.send(SendCall(group, member, "hello"))
    await service.group(GroupCall("remove", group, member, member))
    await service.send(SendCall(group, owner, "after it left"))
    got_owner, _ = await _follow(service, owner, t_owner)
    got_member, _ = await _follow(service, member, t_member)
    assert _short(got_owner) == [
        ("joined", group),
        ("message", group, owner, "alone"),
        ("message", group, member, "hello"),
        ("message", group, owner, "after it left"),
    ]
    assert _short(got_member) == [
        ("joined", group),
        ("message", group, member, "hello"),
        ("left", group),
    ]


async def test_a_big_groups_messages_reach_members_through_their_syncs(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    service = ChatService(store, 4096, group_fanout_max=1)
    owner, member, late = _names("o", "m", "l")
    group = f"#big{next(_ids)}"
    await service.group(GroupCall("create", group, owner))
    await service.group(GroupCall("add", group, owner, member))  # big from now on
    t_member, t_late = await _now(service, member), await _now(service, late)
    for i in range(7):
        await service.send(SendCall(group, owner, f"b{i}"))
    before = await redis_client.llen(feed_key(member))
    await service.group(GroupCall("add", group, owner, late))
    await service.send(SendCall(group, late, "me too"))
    assert await redis_client.llen(feed_key(member)) == before  # no write per member
    got, _ = await _follow(service, member, t_member, 3)
    assert _short(got) == [
        *[("message", group, owner, f"b{i}") for i in range(7)],
        ("message", group, late, "me too"),
    ]
    got_late, _ = await _follow(service, late, t_late, 2)
    assert _short(got_late) == [("joined", group), ("message", group, late, "me too")]


async def test_a_token_replayed_reads_each_range_to_its_own_end(store: RedisStore) -> None:
    """A big group's range record read again after later messages (a replayed token) gives
    its own messages, and the later range the rest: each message once."""
    service = ChatService(store, 4096, group_fanout_max=1)
    owner, member = _names("o", "m")
    group = f"#again{next(_ids)}"
    await service.group(GroupCall("create", group, owner))
    await service.group(GroupCall("add", group, owner, member))  # big from now on
    token = await _now(service, member)
    await service.send(SendCall(group, owner, "b0"))
    first, _ = await _follow(service, member, token)  # (a range up to b0 in the feed)
    assert _short(first) == [("message", group, owner, "b0")]
    for text in ("b1", "b2"):
        await service.send(SendCall(group, owner, text))
    again, _ = await _follow(service, member, token)
    assert _short(again) == [("message", group, owner, f"b{i}") for i in range(3)]


async def test_syncs_of_one_token_at_once_answer_alike_and_give_each_event_once(
    store: RedisStore,
) -> None:
    """A client's retry beside its first try, or two devices sharing a token: the same
    sync asked 8 times at once. First syncs at once make one feed; then syncs of one token
    whose big group has messages since the feed's last catch-up (on a cluster each sync's
    catch-up is its own second step, all after the same first) all answer the same page,
    and following from it gives every later event once: no catch-up appended twice."""
    service = ChatService(store, 4096, group_fanout_max=1)
    owner, a, b = _names("o", "a", "b")
    group = f"#twin{next(_ids)}"
    await service.group(GroupCall("create", group, owner))
    await service.group(GroupCall("add", group, owner, a))  # big from now on
    firsts = await asyncio.gather(*(service.sync(SyncCall(a)) for _ in range(8)))
    token = firsts[0].next  # (one feed, made once: each first sync's token is the same)
    assert {(repr(p.events), p.next, p.has_more) for p in firsts} == {("[]", token, False)}
    expected = []
    for i in range(3):
        await service.send(SendCall(group, owner, f"g{i}"))
        await service.send(SendCall(f"{a}:{b}", b, f"p{i}"))
        expected += [("message", group, owner, f"g{i}"), ("message", f"{a}:{b}", b, f"p{i}")]
    got, _ = await _follow(service, a, token, 100)
    assert sorted(_short(got)) == sorted(expected)
    await service.send(SendCall(group, owner, "g3"))  # (a catch-up each sync below races for)
    expected.append(("message", group, owner, "g3"))
    pages = await asyncio.gather(*(service.sync(SyncCall(a, token, 3)) for _ in range(8)))
    assert len({(repr(p.events), p.next, p.has_more) for p in pages}) == 1, pages
    rest, _ = await _follow(service, a, pages[0].next, 2)
    got = _short(pages[0].events) + _short(rest)
    assert sorted(got) == sorted(expected)  # (each once: a range appended twice repeats)
    for chat in (group, f"{a}:{b}"):  # (in order per chat)
        assert [e for e in got if e[1] == chat] == [e for e in expected if e[1] == chat]


async def test_waits_of_one_token_at_once_are_each_woken_by_one_message(
    store: RedisStore,
) -> None:
    """Four long polls of one token at once (the quiet answer its last wait left is the
    first one's alone; the others read): one message wakes all four, each answering it once,
    and the token each gives is the same."""
    await _listening(store)
    service = ChatService(store, 4096)
    a, b = _names("a", "b")
    token = await _now(service, a)
    _, page = await _seconds_to_wake(service, a, token, SendCall(f"{a}:{b}", b, "first"))
    waits = [
        asyncio.create_task(service.sync_wait(SyncCall(a, page.next, 0, 5000))) for _ in range(4)
    ]
    await _until_waiting(service, 4)
    await service.send(SendCall(f"{a}:{b}", b, "second"))
    pages = await asyncio.wait_for(asyncio.gather(*waits), 3)
    assert [_short(p.events) for p in pages] == [[("message", f"{a}:{b}", b, "second")]] * 4
    assert len({p.next for p in pages}) == 1


def _version(token: str) -> int:
    """The version a token was made in (its first byte)."""
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))[0]


async def test_a_service_making_version_1_tokens_syncs_every_event_once(
    store: RedisStore,
) -> None:
    """IM_SYNC_TOKEN_VERSION=1 (a rolling upgrade from an im-rpc that knows no other): every
    token it answers is of version 1, pages follow on from them, and a service of this
    release's default (2) goes on from them too."""
    old_style = ChatService(store, 4096, sync_token_version=1)
    a, b = _names("a", "b")
    token = await _now(old_style, a)
    texts = [f"v{i}" for i in range(5)]
    for text in texts:
        await old_style.send(SendCall(f"{a}:{b}", b, text))
    got, seen = [], [token]
    for _ in range(3):
        page = await old_style.sync(SyncCall(a, seen[-1], 2))
        got += [e["message"]["text"] for e in page.events]
        seen.append(page.next)
    assert got == texts
    assert [_version(t) for t in seen] == [1, 1, 1, 1]
    await old_style.send(SendCall(f"{a}:{b}", b, "later"))
    waited = await old_style.sync_wait(SyncCall(a, seen[-1], 0, 1000))  # (a long poll's read)
    default = ChatService(store, 4096)
    page = await default.sync(SyncCall(a, seen[-1]))
    for answer, version in ((waited, 1), (page, 2)):
        assert [e["message"]["text"] for e in answer.events] == ["later"]
        assert _version(answer.next) == version


async def test_tokens_of_others_forged_or_too_old_are_refused(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    service = ChatService(store, 4096)
    a, b = _names("a", "b")
    token = await _now(service, a)
    for bad in ("", "x", token[:-2], token + "A", "A" * 60):
        if bad:
            with pytest.raises(InvalidArgument) as refused:
                await service.sync(SyncCall(a, bad))
            assert refused.value.code == "invalid_since"
    with pytest.raises(InvalidArgument) as other:
        await service.sync(SyncCall(b, token))  # a's token, b's sync
    assert other.value.code == "invalid_since"
    with pytest.raises(Forbidden, match=r"^user must be the authenticated user$"):
        await service.sync(SyncCall(a, token, actor=b))
    assert (await service.sync(SyncCall(a, token, actor=a))).events == []  # its own: allowed
    key = bytes.fromhex(str(await redis_client.get(SYNC_SECRET_KEY)))
    ahead = tokens.encode(key, a, tokens.decode(key, a, token)._replace(position=3))
    with pytest.raises(SyncLostWrites) as never:  # (made here: a feed that lost its last records)
        await service.sync(SyncCall(a, ahead))
    assert never.value.code == "sync_reset"
    assert str(never.value).startswith("since: the store lost events this token had seen")
    await redis_client.delete(feed_key(a))  # the feed dropped (idle): never "from now"
    with pytest.raises(SyncReset) as reset:
        await service.sync(SyncCall(a, token))
    assert type(reset.value) is SyncReset  # (not lost writes: a token too old)
    assert reset.value.code == "sync_reset"
    assert str(reset.value).endswith("start again with a sync without since")
    fresh = await _now(service, a)  # a new feed, a new epoch: the old token stays refused
    with pytest.raises(SyncReset):
        await service.sync(SyncCall(a, token))
    assert (await service.sync(SyncCall(a, fresh))).events == []


async def _lose_newest_record(redis_client: aioredis.Redis, user: str) -> None:
    """Take the newest record off `user`'s feed, as a store that lost that write has it."""
    length = await redis_client.llen(feed_key(user))
    await redis_client.ltrim(feed_key(user), 0, -2)
    assert await redis_client.llen(feed_key(user)) == length - 1 > 0


async def test_a_token_whose_records_the_store_lost_answers_sync_reset_not_a_gap(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    """A store that lost its newest writes (a replica promoted without them, an append-only
    file cut short) may have fewer records than a token read, or others in their place: the
    token answers 410 (start again) rather than skipping what took the lost one's place. A
    token that had not read the lost record goes on."""
    a, b = _names("a", "b")
    chat = f"{a}:{b}"
    token = await _now(service, b)
    for text in ("m1", "m2"):
        await service.send(SendCall(chat, a, text))
    first = await service.sync(SyncCall(b, token, 1))
    seen, after = await _follow(service, b, first.next)
    assert _short(first.events + seen) == [("message", chat, a, "m1"), ("message", chat, a, "m2")]
    await _lose_newest_record(redis_client, b)  # m2's
    with pytest.raises(SyncLostWrites):  # past the feed's end
        await service.sync(SyncCall(b, after))
    await service.send(SendCall(chat, a, "m3"))  # a record where the lost one was
    with pytest.raises(SyncLostWrites):  # (without the check: no event, and m3 never seen)
        await service.sync(SyncCall(b, after))
    rest, _ = await _follow(service, b, first.next)  # read up to m1: it goes on
    assert _short(rest) == [("message", chat, a, "m3")]


async def test_a_range_read_in_part_whose_record_was_lost_and_replaced_answers_sync_reset(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    """A token in the middle of a big group's range checks that range's record, not the
    one before it: its place counts only in that record."""
    service, group, member, owner = await _group_of_two(store, 1)  # (big)
    token = await _now(service, member)
    for text in ("b0", "b1", "b2"):
        await service.send(SendCall(group, owner, text))
    part = await service.sync(SyncCall(member, token, 2))  # (the range read in part)
    assert (_short(part.events), part.has_more) == (
        [("message", group, owner, "b0"), ("message", group, owner, "b1")],
        True,
    )
    rest, _ = await _follow(service, member, part.next)  # as it should go on
    assert _short(rest) == [("message", group, owner, "b2")]
    await _lose_newest_record(redis_client, member)  # the range's
    await service.send(SendCall(group, owner, "b3"))
    with pytest.raises(SyncLostWrites):  # another range where the token read in part
        await service.sync(SyncCall(member, part.next))


async def test_a_token_older_than_what_is_kept_answers_sync_reset(
    redis_proc: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    from tests.conftest import make_cluster_store, make_store

    small = (
        make_cluster_store(request.getfixturevalue("redis_cluster"))
        if backend == "cluster"
        else make_store(redis_proc)
    )
    small.plan = small.plan._replace(sync_retain=5)
    service = ChatService(small, 4096)
    try:
        a, b = _names("a", "b")
        chat = f"{a}:{b}"
        old = await _now(service, a)
        await service.send(SendCall(chat, b, "first"))
        newer = (await service.sync(SyncCall(a, old))).next
        for i in range(80):  # past the records kept and the slack before a trim
            await service.send(SendCall(chat, b, f"n{i}"))
        with pytest.raises(SyncReset) as reset:
            await service.sync(SyncCall(a, newer))
        assert type(reset.value) is SyncReset  # (records gone, not lost: nothing logged)
        latest, _ = await _follow(service, a, await _now(service, a))
        assert latest == []
    finally:
        await small.close()


async def test_a_members_side_written_again_keeps_a_recall_before_the_later_message(
    store: RedisStore,
) -> None:
    """Found by the model on a cluster: a member added again (its side written again) after a
    recall and a message of a big group got the message in its feed before the recall."""
    service = ChatService(store, 4096, group_fanout_max=2)
    a, owner, c = _names("a", "o", "c")
    group = f"#again{next(_ids)}"
    token = await _now(service, a)
    await service.group(GroupCall("create", group, owner))
    first = await service.send(SendCall(group, owner, "before a"))
    await service.group(GroupCall("add", group, owner, a))
    await service.group(GroupCall("add", group, a, c))  # the third member: big
    await service.recall(RecallCall(group, owner, first.send_time))
    await service.send(SendCall(group, a, "after the recall"))
    await service.group(GroupCall("add", group, owner, a))  # a member already
    got, _ = await _follow(service, a, token, 1)
    assert _short(got) == [
        ("joined", group),
        ("recall", group),
        ("message", group, a, "after the recall"),
    ]


async def test_a_big_groups_catch_up_gives_a_change_between_the_messages_around_it(
    store: RedisStore,
) -> None:
    """A big group's messages and changes since a member's last sync, caught up at its next:
    each change after the messages the group accepted before it and before the later ones
    (on a cluster the backend reads the change log from the member's mark first)."""
    service = ChatService(store, 4096, group_fanout_max=1)
    a, owner = _names("a", "o")
    group = f"#order{next(_ids)}"
    await service.group(GroupCall("create", group, owner))
    await service.group(GroupCall("add", group, owner, a))  # big
    token = await _now(service, a)
    for round_ in range(2):  # the second: the member's change log mark moved by the first
        first = await service.send(SendCall(group, owner, f"m{round_}"))
        await service.edit(EditCall(group, owner, first.send_time, f"m{round_} edited"))
        await service.send(SendCall(group, owner, f"n{round_}"))
        got, token = await _follow(service, a, token)
        assert _short(got) == [
            ("message", group, owner, f"m{round_} edited"),
            ("edit", group),
            ("message", group, owner, f"n{round_}"),
        ]


async def test_a_member_added_after_a_recall_gets_nothing_of_it_recalled_again(
    store: RedisStore,
) -> None:
    """Found by the model on a cluster: a small group's recall done again (200, nothing
    changes) ran its second step again and gave a member added since a recall from before
    its joined event."""
    service = ChatService(store, 4096)
    owner, late = _names("o", "l")
    group = f"#late{next(_ids)}"
    token = await _now(service, late)
    await service.group(GroupCall("create", group, owner))
    sent = await service.send(SendCall(group, owner, "gone"))
    await service.recall(RecallCall(group, owner, sent.send_time))
    await service.group(GroupCall("add", group, owner, late))
    await service.recall(RecallCall(group, owner, sent.send_time))  # again: nothing changes
    got, _ = await _follow(service, late, token, 1)
    assert _short(got) == [("joined", group)]


async def test_two_recalls_at_once_reach_a_member_once_and_a_later_member_never(
    store: RedisStore,
) -> None:
    """Two recalls of one message at once (the change scripts and the done-marks on the same
    keys): the member gets one recall event, and a member added after them none, even when
    the message is recalled again."""
    service = ChatService(store, 4096)
    owner, member, late = _names("o", "m", "l")
    group = f"#twice{next(_ids)}"
    tokens = {u: await _now(service, u) for u in (member, late)}
    await service.group(GroupCall("create", group, owner))
    await service.group(GroupCall("add", group, owner, member))
    sent = await service.send(SendCall(group, owner, "gone"))
    await asyncio.gather(
        *(service.recall(RecallCall(group, who, sent.send_time)) for who in (owner, owner))
    )
    await service.group(GroupCall("add", group, owner, late))
    await service.recall(RecallCall(group, owner, sent.send_time))
    got, _ = await _follow(service, member, tokens[member], 2)
    assert _short(got) == [("joined", group), ("message", group, owner, ""), ("recall", group)]
    got_late, _ = await _follow(service, late, tokens[late], 2)
    assert _short(got_late) == [("joined", group)]


async def test_a_big_groups_catch_up_that_trims_the_feed_gives_the_page_after_the_trim(
    redis_proc: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    """A sync whose big-group catch-up appends the record that makes the feed trim reads its
    page where the records now are (a page read at the old offset would be empty)."""
    from tests.conftest import make_cluster_store, make_store

    small = (
        make_cluster_store(request.getfixturevalue("redis_cluster"))
        if backend == "cluster"
        else make_store(redis_proc)
    )
    small.plan = small.plan._replace(sync_retain=4)  # a trim past 4 + 64 records
    service = ChatService(small, 4096, group_fanout_max=1)
    try:
        a, b, owner = _names("a", "b", "o")
        group = f"#trim{next(_ids)}"
        await service.group(GroupCall("create", group, owner))
        await service.group(GroupCall("add", group, owner, a))  # big from now on
        token = await _now(service, a)
        for i in range(68):  # the most records a feed keeping 4 holds untrimmed
            await service.send(SendCall(f"{a}:{b}", b, f"n{i}"))
        got, token = await _follow(service, a, token, 30)
        assert len(got) == 68
        await service.send(SendCall(group, owner, "big"))
        page = await service.sync(SyncCall(a, token))
        assert _short(page.events) == [("message", group, owner, "big")]
        assert not page.has_more
    finally:
        await small.close()


async def _listening(store: RedisStore) -> None:
    """The store's wake-ups listening, as im-rpc's do."""
    store.wakeups.start()
    await asyncio.wait_for(store.wakeups.started.wait(), 5)


WOKEN_S = 0.2  # a wait is woken within this; one that read again every POLL_S (0.5 s) is not


async def _seconds_to_wake(
    service: ChatService, user: str, token: str, act: SendCall | RecallCall
) -> Any:
    """`user` waits from `token`; `act` (a send, a recall) is done once it waits: (seconds
    from it to the answer, the page)."""
    waiting = asyncio.create_task(service.sync_wait(SyncCall(user, token, 0, 5000)))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    sent = time.monotonic()
    await service.answer(act)
    page = await asyncio.wait_for(waiting, 6)
    return time.monotonic() - sent, page


@pytest.mark.parametrize("kind", ["pair", "small", "big"])
async def test_a_waiting_sync_is_woken_by_the_next_message(store: RedisStore, kind: str) -> None:
    """Six waits in a row, each answered within WOKEN_S of its message: a wait that read
    again every 0.5 s instead would pass all six about once in 250 runs."""
    await _listening(store)
    service = ChatService(store, 4096, group_fanout_max=1 if kind == "big" else 100)
    a, b, c = _names("a", "b", "c")
    chat = f"{a}:{b}"
    if kind != "pair":
        chat = f"#w{next(_ids)}"
        await service.group(GroupCall("create", chat, b))
        await service.group(GroupCall("add", chat, b, a))
        await service.group(GroupCall("add", chat, b, c))
    token = await _now(service, a)
    waits = []
    for i in range(6):
        seconds, page = await _seconds_to_wake(service, a, token, SendCall(chat, b, f"w{i}"))
        assert _short(page.events) == [("message", chat, b, f"w{i}")]
        waits.append(seconds)
        token = page.next
    assert max(waits) < WOKEN_S, waits
    quiet = await service.sync_wait(SyncCall(a, token, 0, 300))
    assert quiet.events == []


async def _group_of_two(store: RedisStore, fanout_max: int) -> tuple[ChatService, str, str, str]:
    """Wake-ups listening, a service whose groups turn big past `fanout_max` members, and a
    group of b (its owner) and a: (the service, the group, a, b)."""
    await _listening(store)
    service = ChatService(store, 4096, group_fanout_max=fanout_max)
    a, b = _names("a", "b")
    group = f"#g{next(_ids)}"
    await service.group(GroupCall("create", group, b))
    await service.group(GroupCall("add", group, b, a))
    return service, group, a, b


async def test_a_member_of_two_big_groups_is_woken_by_its_own_channel_and_by_each_group(
    store: RedisStore,
) -> None:
    """A wait watches the user's own channel and the two channels of every big group its
    read listed (three values each in the script's answer): a 1:1 message (announced on the
    user's channel only) wakes it, and so do a message (the group's channel) and a recall
    (its change log's channel) of either group."""
    service, group, a, b = await _group_of_two(store, 1)  # (big)
    other = f"#wb{next(_ids)}"
    await service.group(GroupCall("create", other, b))
    await service.group(GroupCall("add", other, b, a))
    token = await _now(service, a)
    seconds, page = await _seconds_to_wake(service, a, token, SendCall(f"{a}:{b}", b, "1:1"))
    assert (_short(page.events), seconds < WOKEN_S) == ([("message", f"{a}:{b}", b, "1:1")], True)
    token = page.next
    for chat in (other, group):
        seconds, page = await _seconds_to_wake(service, a, token, SendCall(chat, b, "hi"))
        assert (_short(page.events), seconds < WOKEN_S) == ([("message", chat, b, "hi")], True)
        sent_time = page.events[0]["message"]["send_time"]
        seconds, page = await _seconds_to_wake(
            service, a, page.next, RecallCall(chat, b, sent_time)
        )
        assert (_short(page.events), seconds < WOKEN_S) == ([("recall", chat)], True)
        token = page.next


async def test_a_wait_that_cannot_watch_reads_again_every_poll_interval(
    store: RedisStore,
) -> None:
    """Wake-ups not listening (as while im-rpc's subscription connection is lost): a waiting
    sync reads again every POLL_S, so a message is answered within about that, not at the
    end of wait_ms."""
    service = ChatService(store, 4096)
    a, b = _names("a", "b")
    token = await _now(service, a)
    seconds, page = await _seconds_to_wake(service, a, token, SendCall(f"{a}:{b}", b, "polled"))
    assert _short(page.events) == [("message", f"{a}:{b}", b, "polled")]
    assert seconds < POLL_S + 0.5


async def _until_waiting(service: ChatService, n: int) -> None:
    """Wait until `n` long polls wait in `service` (each has subscribed and read first)."""
    for _ in range(200):
        if service.waiting == n:
            return
        await asyncio.sleep(0.01)
    assert service.waiting == n


async def test_past_the_bound_a_waiting_sync_is_refused_and_each_wait_gives_its_slot_back(
    store: RedisStore,
) -> None:
    """Waiting syncs and long polls share IM_RPC_MAX_WAITING: at the bound a sync wait is
    refused at once; a wait answered or cancelled frees exactly its own slot."""
    await _listening(store)
    service = ChatService(store, 4096, max_waiting=3)
    a0, a1, a2, b = _names("a0", "a1", "a2", "b")
    taken = {u: await _now(service, u) for u in (a0, a1, a2)}
    waits: list[asyncio.Task[Any]] = [
        asyncio.create_task(service.sync_wait(SyncCall(u, taken[u], 0, 5000))) for u in (a0, a1)
    ]
    waits.append(asyncio.create_task(service.pull_wait(PullCall(f"{a0}:{b}"), 5000)))
    await _until_waiting(service, 3)
    started = time.monotonic()
    with pytest.raises(Overloaded, match=r"^3 long polls wait here already; retry later$"):
        await service.sync_wait(SyncCall(a2, taken[a2], 0, 5000))
    assert time.monotonic() - started < 0.5
    await service.send(SendCall(f"{a1}:{b}", b, "wake"))
    page = await asyncio.wait_for(waits[1], 2)
    assert _short(page.events) == [("message", f"{a1}:{b}", b, "wake")]
    assert service.waiting == 2
    waits[1] = asyncio.create_task(service.sync_wait(SyncCall(a2, taken[a2], 0, 5000)))
    await _until_waiting(service, 3)
    for task in waits:
        task.cancel()
    await asyncio.gather(*waits, return_exceptions=True)
    assert service.waiting == 0


async def test_a_sync_wait_without_a_token_answers_at_once_from_now(store: RedisStore) -> None:
    """A long poll's first sync (no since) waits for nothing: it answers a token at once."""
    await _listening(store)
    service = ChatService(store, 4096)
    a, b = _names("a", "b")
    started = time.monotonic()
    first = await asyncio.wait_for(service.sync_wait(SyncCall(a, "", 0, 5000)), 6)
    assert time.monotonic() - started < 0.5
    assert (first.events, first.has_more) == ([], False)
    await service.send(SendCall(f"{a}:{b}", b, "after"))
    page = await service.sync(SyncCall(a, first.next))
    assert _short(page.events) == [("message", f"{a}:{b}", b, "after")]


def _reads(service: ChatService, since: tuple[int, ...] = (0, 0, 0)) -> tuple[int, ...]:
    """The waiting syncs' reads since `since`: (trips to Redis, reads skipped at a wait's
    start, at its end)."""
    now = (service.sync_reads.trips, service.syncs.skipped_at_start, service.syncs.skipped_at_end)
    return tuple(n - s for n, s in zip(now, since, strict=True))


async def test_a_wait_with_nothing_to_answer_lasts_its_wait_ms_in_two_reads(
    store: RedisStore,
) -> None:
    """A wait from a token no answer kept, of a member of a big group: one read, one more
    once the group's channels are watched, and none when its time is up (nothing came on
    the channels watched since: the last read's answer stands); then the empty page (not
    before wait_ms, not much after), and the next wait from it reads nothing either."""
    service, _, a, _ = await _group_of_two(store, 1)  # (big)
    token = await _now(service, a)
    before, started = _reads(service), time.monotonic()
    page = await asyncio.wait_for(service.sync_wait(SyncCall(a, token, 0, 400)), 3)
    assert 0.39 < time.monotonic() - started < 1.5
    assert (page.events, page.has_more) == ([], False)
    assert _reads(service, since=before) == (2, 0, 1)
    before = _reads(service)
    again = await asyncio.wait_for(service.sync_wait(SyncCall(a, page.next, 0, 200)), 3)
    assert (again.events, again.next) == ([], page.next)
    assert _reads(service, since=before) == (0, 1, 1)


async def test_an_idle_users_waits_read_again_once_their_last_read_is_reread_s_old(
    store: RedisStore,
) -> None:
    """Answers given again without a read come from a read less than `reread_s` old: the
    first wait reads at its start and gives that page again at its end; the next skips its
    start, but at its end the read is older than `reread_s`, so it reads (and so renews the
    feed's lifetime now and then while its client syncs)."""
    await _listening(store)
    service = ChatService(store, 4096)
    service.syncs.reread_s = 1.0
    a, _ = _names("a", "b")
    token = await _now(service, a)
    before = _reads(service)
    first = await service.sync_wait(SyncCall(a, token, 0, 500))  # (its read: 0.5 s old)
    assert _reads(service, since=before) == (1, 0, 1)
    before = _reads(service)
    second = await service.sync_wait(SyncCall(a, first.next, 0, 1000))  # (ends 1.5 s after)
    assert (first.events, second.events, second.next) == ([], [], first.next)
    assert _reads(service, since=before) == (1, 1, 0)


async def test_the_answers_kept_for_next_waits_are_bounded_the_oldest_going_first(
    store: RedisStore,
) -> None:
    """At most IM_RPC_MAX_WAITING quiet answers are kept: past it the oldest goes, and its
    next wait reads again; the others' next waits still skip their read."""
    await _listening(store)
    service = ChatService(store, 4096, max_waiting=2)
    *users, z = _names("a", "b", "c", "z")
    answers = {}
    for u in users:
        token = await _now(service, u)
        _, page = await _seconds_to_wake(service, u, token, SendCall(f"{u}:{z}", z, "x"))
        answers[u] = page.next
    for u, reads in ((users[1], 0), (users[2], 0), (users[0], 1)):  # (each keeps its own)
        before = _reads(service)
        await service.sync_wait(SyncCall(u, answers[u], 0, 100))
        assert _reads(service, since=before) == (reads, 1 - reads, 1), u  # (end: nothing came)


async def test_answers_kept_for_next_waits_are_dropped_after_quiet_s(
    store: RedisStore,
) -> None:
    """A quiet answer whose next wait does not come within `quiet_s` (it went to another
    im-rpc, or never came) is dropped when a later answer is kept, instead of holding its
    subscriptions until IM_RPC_MAX_WAITING newer ones push it out: its wait reads again, the
    later answer's next wait still skips its read."""
    await _listening(store)
    service = ChatService(store, 4096)
    service.syncs.quiet_s = 0.3
    a, b, z = _names("a", "b", "z")
    answers = {}
    for u in (a, b):
        token = await _now(service, u)
        _, page = await _seconds_to_wake(service, u, token, SendCall(f"{u}:{z}", z, "x"))
        answers[u] = page.next
        await asyncio.sleep(0.4 if u == a else 0)
    assert service.syncs.quiet_kept == 1  # (b's: a's was kept 0.4 s before it)
    for u, reads in ((b, 0), (a, 1)):
        before = _reads(service)
        await service.sync_wait(SyncCall(u, answers[u], 0, 100))
        assert _reads(service, since=before) == (reads, 1 - reads, 1), u  # (end: nothing came)


async def _small_group_of_two(
    store: RedisStore,
) -> tuple[ChatService, str, tuple[str, str, str], str]:
    """A group of b and a, small (big past 2 members): (the service, the group, (a, b, c),
    a's token from now)."""
    service, group, a, b = await _group_of_two(store, 2)
    (c,) = _names("c")
    return service, group, (a, b, c), await _now(service, a)


async def test_a_waiting_sync_is_woken_by_a_group_that_became_big_while_it_waited(
    store: RedisStore,
) -> None:
    """A member's wait watches the big groups its read listed. A group that turns big after
    that (an add past IM_GROUP_FANOUT_MAX_MEMBERS) writes nothing to its members' feeds from
    then on: it wakes its members' waits when it turns big, so that its next message wakes
    them too instead of waiting out wait_ms."""
    service, group, (a, b, c), token = await _small_group_of_two(store)
    waiting = asyncio.create_task(service.sync_wait(SyncCall(a, token, 0, 5000)))
    await asyncio.sleep(0.05)
    await service.group(GroupCall("add", group, b, c))  # three: big for good
    await asyncio.sleep(0.05)
    assert not waiting.done()  # (the turn woke the wait: it read nothing, and waits again)
    sent = time.monotonic()
    await service.send(SendCall(group, b, "now big"))
    page = await asyncio.wait_for(waiting, 6)
    assert time.monotonic() - sent < WOKEN_S
    assert _short(page.events) == [("message", group, b, "now big")]
    # the announcement was answered: the next wait reads neither at its start nor its end
    before = _reads(service)
    quiet = await service.sync_wait(SyncCall(a, page.next, 0, 600))
    assert quiet.events == []
    assert _reads(service, since=before) == (0, 1, 1)


async def test_a_group_that_turns_big_between_two_waits_is_watched_by_the_second(
    store: RedisStore,
) -> None:
    """An answer kept for its token's next wait, then the group turns big before that wait:
    the announcement (no number) counts as a new subscription, so the next wait reads, lists
    the group as big and watches it."""
    service, group, (a, b, c), token = await _small_group_of_two(store)
    _, page = await _seconds_to_wake(service, a, token, SendCall(group, b, "small"))
    await service.group(GroupCall("add", group, b, c))  # big now, while a is between waits
    await asyncio.sleep(0.05)  # (its announcement heard)
    seconds, later = await _seconds_to_wake(service, a, page.next, SendCall(group, b, "big"))
    assert _short(later.events) == [("message", group, b, "big")]
    assert seconds < WOKEN_S


async def _answered_then_quiet(store: RedisStore) -> tuple[ChatService, str, str, str]:
    """A user whose wait was answered (a message of a 1:1 chat): (the service, the user, its
    chat, the answer's token)."""
    await _listening(store)
    service = ChatService(store, 4096)
    a, b = _names("a", "b")
    token = await _now(service, a)
    _, page = await _seconds_to_wake(service, a, token, SendCall(f"{a}:{b}", b, "first"))
    return service, a, f"{a}:{b}", page.next


async def test_the_next_wait_from_a_quiet_answer_waits_without_reading(
    store: RedisStore,
) -> None:
    """The client's next long poll, with the token its answer gave, reads nothing: every
    channel it watches has been subscribed to since that answer's read and heard nothing."""
    service, a, chat, token = await _answered_then_quiet(store)
    before = _reads(service)
    waiting = asyncio.create_task(service.sync_wait(SyncCall(a, token, 0, 5000)))
    await asyncio.sleep(0.1)
    assert _reads(service, since=before) == (0, 1, 0)
    await service.send(SendCall(chat, chat.split(":")[1], "second"))
    page = await asyncio.wait_for(waiting, 3)
    assert [e["message"]["text"] for e in page.events] == ["second"]


async def test_a_message_heard_before_the_next_wait_is_answered_at_once(
    store: RedisStore,
) -> None:
    """A message sent between an answer and its client's next long poll, heard before that
    poll: the poll reads and answers it at once (it does not wait for a wake-up that came
    before it)."""
    service, a, chat, token = await _answered_then_quiet(store)
    await service.send(SendCall(chat, chat.split(":")[1], "between"))
    await asyncio.sleep(0.1)  # (its announcement heard)
    started, before = time.monotonic(), _reads(service)
    page = await asyncio.wait_for(service.sync_wait(SyncCall(a, token, 0, 5000)), 6)
    assert time.monotonic() - started < WOKEN_S
    assert [e["message"]["text"] for e in page.events] == ["between"]
    assert _reads(service, since=before) == (1, 0, 0)


async def test_a_subscription_made_again_makes_the_next_wait_read(store: RedisStore) -> None:
    """A message sent while nothing listened (the subscriptions were closed and made
    again after the answer) was heard by no subscription: the next wait reads it."""
    service, a, chat, token = await _answered_then_quiet(store)
    await store.wakeups.close()
    await service.send(SendCall(chat, chat.split(":")[1], "unheard"))
    store.wakeups.start()
    started = time.monotonic()
    page = await asyncio.wait_for(service.sync_wait(SyncCall(a, token, 0, 5000)), 6)
    assert time.monotonic() - started < WOKEN_S
    assert [e["message"]["text"] for e in page.events] == ["unheard"]


async def test_second_steps_that_come_late_are_covered_once_and_in_order(
    store: RedisStore, backend: str
) -> None:
    """On a cluster a send's record is written by a second step in each member's slot; two
    sends' steps may come in either order, and a retried send runs its step again. The
    earlier message's step, coming second, finds it covered by the later one's range."""
    if backend != "cluster":
        pytest.skip("one Redis writes the records in the send's own script")
    from rpc_svc.store.cluster_steps import _note
    from rpc_svc.store.commands.chats import commands
    from rpc_svc.store.ops import Append

    service = ChatService(store, 4096)
    a, b = _names("a", "b")
    chat = f"{a}:{b}"
    token = await _now(service, b)
    stored = []
    for text in ("first", "second"):
        (command,) = commands(Append(chat, 0, text), store.plan)
        (reply,) = await store.run_commands([command])  # the send's own step only
        stored.append((int(reply[0]), int(reply[1])))
    late = [_note(b, chat, "2", a, st, prev) for st, prev in reversed(stored)]
    late.append(_note(b, chat, "2", a, *stored[0]))  # a retry of the first send
    assert all(r == 1 for r in await store.run_commands(late))
    got, _ = await _follow(service, b, token)
    assert _short(got) == [("message", chat, a, "first"), ("message", chat, a, "second")]
