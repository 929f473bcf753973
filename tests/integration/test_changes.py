"""Edit and recall against the real store, on one Redis and on the cluster: what pulls, the
inbox and syncs show after each, their refusals and windows, concurrent edits, a recall
racing an edit, a big group's recall in every member's sync, paging and unread counts with
recalled messages on every page boundary, and a recalled text gone from Redis."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import redis.asyncio as aioredis

from im_common.calls import (
    ChatsCall,
    EditCall,
    GroupCall,
    PullCall,
    ReadCall,
    RecallCall,
    SendCall,
    SyncCall,
)
from rpc_svc.domain.errors import Conflict, Forbidden, IMError, InvalidArgument, NotFound
from rpc_svc.service.changes import Windows, plan_recall
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from rpc_svc.store.commands.changes import commands, outcome
from rpc_svc.store.keys import erasures_key
from rpc_svc.store.ops import Change
from rpc_svc.store.ops import Changed as StoreChanged
from tests.conftest import ON_EVERY_BACKEND, SHORT_CHAT_MESSAGES, make_cluster_store, redis_url

pytestmark = ON_EVERY_BACKEND
_ids = itertools.count()


def _names(*stems: str) -> list[str]:
    n = next(_ids)
    return [f"{stem}{n}" for stem in stems]


async def _fails(work: Any) -> IMError:
    with pytest.raises(IMError) as refused:
        await work
    return refused.value


async def _events(service: ChatService, user: str, since: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for _ in range(100):
        page = await service.sync(SyncCall(user, since, 3))
        events += page.events
        since = page.next
        if not page.has_more:
            return events
    raise AssertionError("has_more never ended")


async def test_an_edit_shows_everywhere_and_each_is_later_than_the_one_before(
    service: ChatService,
) -> None:
    a, b = _names("a", "b")
    chat = f"{a}:{b}"
    token = (await service.sync(SyncCall(b))).next
    sent = await service.send(SendCall(chat, a, "helo"))
    first = await service.edit(EditCall(chat, a, sent.send_time, "hello"))
    again = await service.edit(EditCall(chat, a, sent.send_time, "hello"))  # a new edit
    assert sent.send_time < first.at < again.at
    (message,) = (await service.pull(PullCall(chat))).messages
    assert message == {
        "chat": chat, "text": "hello", "sender": a, "send_time": sent.send_time,
        "edited_at": again.at,
    }  # fmt: skip
    (row,) = (await service.chats(ChatsCall(b))).chats
    assert (row["last_message"], row["unread"]) == (message, 1)
    events = await _events(service, b, token)
    assert [e["type"] for e in events] == ["message", "edit", "edit"]
    assert all(e["message"] == message for e in events)  # each as it is now


async def test_edits_are_the_senders_within_the_window(
    store: RedisStore,
) -> None:
    service = ChatService(store, 4096, edit_window_s=1)
    a, b, c = _names("a", "b", "c")
    chat = f"{a}:{b}"
    sent = await service.send(SendCall(chat, a, "mine"))
    other = await _fails(service.edit(EditCall(chat, b, sent.send_time, "x")))
    assert (type(other), other.code) == (Forbidden, "forbidden")
    assert other.message.startswith("sender: ")
    outsider = await _fails(service.edit(EditCall(chat, c, sent.send_time, "x")))
    assert (type(outsider), outsider.code) == (InvalidArgument, "sender_not_in_chat")
    missing = await _fails(service.edit(EditCall(chat, a, sent.send_time + 1, "x")))
    assert (type(missing), missing.code) == (NotFound, "unknown_message")
    assert missing.message.startswith("send_time: ")
    empty = await _fails(service.edit(EditCall(chat, a, sent.send_time, "")))
    assert empty.code == "invalid_text"
    actor = await _fails(service.edit(EditCall(chat, a, sent.send_time, "x", actor=b)))
    assert actor.code == "forbidden"
    await asyncio.sleep(1.05)
    late = await _fails(service.edit(EditCall(chat, a, sent.send_time, "too late")))
    assert (type(late), late.code) == (Conflict, "window_closed")
    assert "IM_EDIT_WINDOW_S" in late.message
    assert [m["text"] for m in (await service.pull(PullCall(chat))).messages] == ["mine"]


async def test_a_recall_leaves_a_placeholder_in_its_place(service: ChatService) -> None:
    a, b = _names("a", "b")
    chat = f"{a}:{b}"
    token = (await service.sync(SyncCall(b))).next
    times = [(await service.send(SendCall(chat, a, f"m{i}"))).send_time for i in range(3)]
    await service.edit(EditCall(chat, a, times[1], "edited"))
    done = await service.recall(RecallCall(chat, a, times[1]))
    assert (done.recalled, done.send_time) == (True, times[1])
    again = await service.recall(RecallCall(chat, a, times[1]))  # 200, nothing changes
    assert again.at == done.at
    messages = (await service.pull(PullCall(chat))).messages
    assert messages[1] == {
        "chat": chat, "text": "", "sender": a, "send_time": times[1], "recalled": True,
    }  # fmt: skip
    assert [m["text"] for m in messages] == ["m0", "", "m2"]
    edit = await _fails(service.edit(EditCall(chat, a, times[1], "back")))
    assert (type(edit), edit.code) == (Conflict, "recalled")
    theirs = await _fails(service.recall(RecallCall(chat, b, times[0])))
    assert theirs.code == "forbidden"
    (row,) = (await service.chats(ChatsCall(b))).chats
    assert row["unread"] == 3  # a recalled message still counts as unread
    events = await _events(service, b, token)
    assert [(e["type"], e.get("send_time")) for e in events] == [
        ("message", None), ("message", None), ("message", None), ("edit", None),
        ("recall", times[1]),
    ]  # fmt: skip
    assert events[1]["message"]["recalled"] is True  # a message shows as it is now
    await service.recall(RecallCall(chat, a, times[2]))
    (row,) = (await service.chats(ChatsCall(b))).chats
    assert row["last_message"]["recalled"] is True
    assert row["last_message"]["text"] == ""


async def test_a_groups_owner_recalls_any_message_at_any_time(store: RedisStore) -> None:
    service = ChatService(store, 4096, recall_window_s=1)
    owner, member, outsider = _names("o", "m", "x")
    group = f"#c{next(_ids)}"
    await service.group(GroupCall("create", group, owner))
    await service.group(GroupCall("add", group, owner, member))
    sent = [await service.send(SendCall(group, member, f"g{i}")) for i in range(3)]
    edited = await service.edit(EditCall(group, member, sent[0].send_time, "fixed"))
    assert edited.at > sent[0].send_time
    not_theirs = await _fails(service.edit(EditCall(group, owner, sent[0].send_time, "x")))
    assert not_theirs.code == "forbidden"
    out = await _fails(service.recall(RecallCall(group, outsider, sent[0].send_time)))
    assert (type(out), out.code) == (Forbidden, "not_a_member")
    await asyncio.sleep(1.05)
    late = await _fails(service.recall(RecallCall(group, member, sent[1].send_time)))
    assert late.code == "window_closed"
    assert (await service.recall(RecallCall(group, owner, sent[1].send_time))).recalled
    texts = [(m["text"], m.get("recalled")) for m in (await service.pull(PullCall(group))).messages]
    assert texts == [("fixed", None), ("", True), ("g2", None)]


async def test_concurrent_edits_keep_the_last_with_increasing_times(service: ChatService) -> None:
    a, b = _names("a", "b")
    chat = f"{a}:{b}"
    sent = await service.send(SendCall(chat, a, "v0"))
    done = await asyncio.gather(
        *(service.edit(EditCall(chat, a, sent.send_time, f"v{i}")) for i in range(1, 21))
    )
    ats = [d.at for d in done]
    assert len(set(ats)) == 20  # each its own time
    last = max(range(20), key=lambda i: ats[i])
    (message,) = (await service.pull(PullCall(chat))).messages
    assert (message["text"], message["edited_at"]) == (f"v{last + 1}", ats[last])


async def test_a_recall_racing_an_edit_ends_recalled_either_way(
    service: ChatService, raw: Any
) -> None:
    for _ in range(5):
        a, b = _names("a", "b")
        chat = f"{a}:{b}"
        sent = await service.send(SendCall(chat, a, f"{chat} original"))
        edit, recall = await asyncio.gather(
            service.edit(EditCall(chat, a, sent.send_time, f"{chat} secret edit")),
            service.recall(RecallCall(chat, a, sent.send_time)),
            return_exceptions=True,
        )
        assert not isinstance(recall, BaseException), recall
        if isinstance(edit, IMError):
            assert edit.code == "recalled"  # the recall came first
        (message,) = (await service.pull(PullCall(chat))).messages
        assert (message["text"], message.get("recalled")) == ("", True)
        await _erased(raw, chat)
        await _gone(raw, [f"{chat} secret edit".encode(), f"{chat} original".encode()])


async def test_a_big_groups_recall_reaches_every_members_sync(store: RedisStore) -> None:
    service = ChatService(store, 4096, group_fanout_max=1)
    owner, m1, m2 = _names("o", "m", "n")
    group = f"#big{next(_ids)}"
    await service.group(GroupCall("create", group, owner))
    for m in (m1, m2):
        await service.group(GroupCall("add", group, owner, m))
    tokens = {u: (await service.sync(SyncCall(u))).next for u in (owner, m1, m2)}
    sent = [await service.send(SendCall(group, m1, f"b{i}")) for i in range(4)]
    await service.edit(EditCall(group, m1, sent[0].send_time, "b0!"))
    await service.recall(RecallCall(group, owner, sent[2].send_time))
    for user, token in tokens.items():
        events = await _events(service, user, token)
        kinds = [(e["type"], e.get("send_time") or e["message"]["send_time"]) for e in events]
        assert kinds == [
            *[("message", s.send_time) for s in sent],
            ("edit", sent[0].send_time),
            ("recall", sent[2].send_time),
        ], user
        assert events[2]["message"]["recalled"] is True


async def _recalled_between_steps(service: ChatService, store: RedisStore, kind: str) -> Any:
    """A chat ("pair", "small" or "big" group) of a, b, c, each syncing from before two
    messages of a, the first recalled by its first step alone (on a cluster: then a node
    failed): the chat, the members' tokens, the send times."""
    a, b, c = _names("a", "b", "c")
    if kind == "pair":
        chat, users = f"{a}:{b}", [a, b]
    else:
        chat, users = f"#r{next(_ids)}", [a, b, c]
        await service.group(GroupCall("create", chat, a))
        for m in (b, c):
            await service.group(GroupCall("add", chat, a, m))
    tokens = {u: (await service.sync(SyncCall(u))).next for u in users}
    sent = [(await service.send(SendCall(chat, a, f"m{i}"))).send_time for i in range(2)]
    op = plan_recall(RecallCall(chat, a, sent[0]), Windows(0, 0)).op
    stored = outcome(op, await store.run_commands(commands(op, store.plan)))
    assert isinstance(stored, StoreChanged)
    assert not stored.again
    return chat, tokens, sent


async def _kinds(service: ChatService, user: str, token: str) -> list[tuple[str, int]]:
    events = await _events(service, user, token)
    return [(e["type"], e.get("send_time") or e["message"]["send_time"]) for e in events]


@pytest.mark.parametrize("kind", ["pair", "small", "big"])
async def test_a_recall_cut_between_its_steps_reaches_every_sync_once_by_its_retry(
    backend: str, store: RedisStore, kind: str
) -> None:
    if backend != "cluster":
        pytest.skip("one Redis writes the members' feeds in the recall's own script")
    service = ChatService(store, 4096, group_fanout_max=1 if kind == "big" else 100)
    chat, tokens, sent = await _recalled_between_steps(service, store, kind)
    for _ in range(2):  # the client's retry (its second step runs again), and one more
        assert (await service.recall(RecallCall(chat, next(iter(tokens)), sent[0]))).recalled
    for user, token in tokens.items():
        assert await _kinds(service, user, token) == [
            ("message", sent[0]), ("message", sent[1]), ("recall", sent[0])
        ], user  # fmt: skip


async def test_a_recall_retried_after_its_keys_lifetime_adds_nothing(
    backend: str, request: pytest.FixtureRequest
) -> None:
    if backend != "cluster":
        pytest.skip("one Redis writes the members' feeds in the recall's own script")
    store = make_cluster_store(request.getfixturevalue("redis_cluster"), ttl_s=1)
    service = ChatService(store, 4096)
    try:
        chat, tokens, sent = await _recalled_between_steps(service, store, "small")
        await service.recall(RecallCall(chat, next(iter(tokens)), sent[0]))
        await asyncio.sleep(1.1)  # the recalls the feeds got are forgotten: no step again
        await service.recall(RecallCall(chat, next(iter(tokens)), sent[0]))
        for user, token in tokens.items():
            assert await _kinds(service, user, token) == [
                ("message", sent[0]), ("message", sent[1]), ("recall", sent[0])
            ], user  # fmt: skip
    finally:
        await store.close()


@pytest.mark.parametrize("limit", [1, 2, 3, 100])
async def test_a_big_groups_changes_come_between_its_messages_as_accepted(
    store: RedisStore, limit: int
) -> None:
    """A member that did not sync for a while: the group's messages and changes since come
    in the order the group took them, on pages of every size, and up to its leaving."""
    service = ChatService(store, 4096, group_fanout_max=1)
    owner, member = _names("o", "m")
    group = f"#order{next(_ids)}"
    await service.group(GroupCall("create", group, owner))
    await service.group(GroupCall("add", group, owner, member))
    token = (await service.sync(SyncCall(member))).next
    sent, order = [], []
    for i in range(3):
        sent.append((await service.send(SendCall(group, owner, f"m{i}"))).send_time)
        order.append(("message", sent[-1]))
        await service.edit(EditCall(group, owner, sent[0], f"m0 edit {i}"))
        order.append(("edit", sent[0]))
    await service.recall(RecallCall(group, owner, sent[1]))
    order.append(("recall", sent[1]))
    sent.append((await service.send(SendCall(group, owner, "m3"))).send_time)
    order.append(("message", sent[-1]))
    await service.edit(EditCall(group, owner, sent[3], "m3!"))
    order.append(("edit", sent[3]))
    for i in (4, 5):  # two messages, then two changes: a page may end inside either range
        sent.append((await service.send(SendCall(group, owner, f"m{i}"))).send_time)
        order.append(("message", sent[-1]))
    for i in (4, 5):
        await service.edit(EditCall(group, owner, sent[i], f"m{i}!"))
        order.append(("edit", sent[i]))
    await service.group(GroupCall("remove", group, owner, member))
    order.append(("left", 0))
    events: list[dict[str, Any]] = []
    for _ in range(100):
        page = await service.sync(SyncCall(member, token, limit))
        assert len(page.events) <= limit
        assert len(page.events) == limit or not page.has_more
        events += page.events
        token = page.next
        if not page.has_more:
            break
    got = [
        (e["type"], e.get("send_time") or e.get("message", {}).get("send_time") or 0)
        for e in events
    ]
    assert got == order


@pytest.mark.parametrize("limit", [1, 2, 3, 4])
async def test_pages_and_unread_are_exact_with_recalled_messages_on_every_boundary(
    service: ChatService, limit: int
) -> None:
    a, b = _names("a", "b")
    chat = f"{a}:{b}"
    times = [(await service.send(SendCall(chat, a, f"p{i}"))).send_time for i in range(9)]
    for i in (0, 3, 4, 8):  # the first, the last, two side by side
        await service.recall(RecallCall(chat, a, times[i]))
    for reverse in (False, True):
        seen, cursor = [], 0
        for _ in range(20):
            page = await service.pull(PullCall(chat, cursor, limit, reverse))
            assert len(page.messages) <= limit
            seen += [(m["send_time"], bool(m.get("recalled"))) for m in page.messages]
            if not page.has_more:
                break
            cursor = page.next_cursor
        expected = [(t, i in (0, 3, 4, 8)) for i, t in enumerate(times)]
        assert seen == (expected[::-1] if reverse else expected)
    await service.mark_read(ReadCall(chat, b, times[4]))
    (row,) = (await service.chats(ChatsCall(b))).chats
    assert row["unread"] == 4


@pytest.fixture
async def raw(backend: str, request: pytest.FixtureRequest) -> Any:
    """A client of the store's Redis (or cluster) that answers bytes, for DUMP."""
    client: Any
    if backend == "cluster":
        client = aioredis.RedisCluster.from_url(request.getfixturevalue("redis_cluster").url)
    else:
        client = aioredis.Redis.from_url(redis_url(request.getfixturevalue("redis_proc")))
    yield client
    await client.aclose()


async def _erased(raw: Any, chat: str) -> None:
    """Wait (5 s at most) for the background erasure of `chat`'s recalled texts (a second
    after the recall: those of that second share it)."""
    for _ in range(50):
        if not await raw.exists(erasures_key(chat)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the recalled texts of {chat} still wait")


async def _gone(raw: Any, texts: list[bytes]) -> None:
    """None of `texts` anywhere in Redis's keyspace: no key's DUMP holds it (uncompressed:
    RDB's LZF would hide a text inside a stream node's bytes)."""
    if isinstance(raw, aioredis.RedisCluster):
        await raw.config_set("rdbcompression", "no", target_nodes=aioredis.RedisCluster.ALL_NODES)
    else:
        await raw.config_set("rdbcompression", "no")
    dumps = [await raw.dump(key) or b"" async for key in raw.scan_iter("im:*", count=1000)]
    assert dumps
    assert not [t for t in texts if any(t in d for d in dumps)]


async def test_a_recalled_text_is_erased_from_the_store(
    service: ChatService, redis_client: aioredis.Redis, raw: Any
) -> None:
    for size in (2, SHORT_CHAT_MESSAGES + 3):  # a short chat's hash, and a stream
        a, b = _names("a", "b")
        chat = f"{a}:{b}"
        times = [
            (await service.send(SendCall(chat, a, f"{chat} n{i}"))).send_time for i in range(size)
        ]
        secret = f"{chat} n1".encode()
        await service.edit(EditCall(chat, a, times[0], f"{chat} edited secret"))
        await service.recall(RecallCall(chat, a, times[1]))
        await service.recall(RecallCall(chat, a, times[0]))
        await _erased(raw, chat)
        await _gone(raw, [secret, f"{chat} n0".encode(), f"{chat} edited secret".encode()])
        texts = [m["text"] for m in (await service.pull(PullCall(chat, 0, 100))).messages]
        assert texts == ["", "", *[f"{chat} n{i}" for i in range(2, size)]]


@pytest.mark.parametrize("tail", [2_000, 1], ids=["tail rewritten", "stream copied"])
async def test_recalled_texts_are_erased_at_any_depth_and_every_other_message_stays(
    store: RedisStore, raw: Any, tail: int
) -> None:
    """A recall of an old, a middle and the newest message of a chat of 300 (many stream
    nodes): the texts leave the keyspace whether the tail is rewritten in place or the
    whole stream copied; every other message keeps its text and place, and sends go on."""
    service = ChatService(store, 4096)
    a, b = _names("a", "b")
    chat = f"{a}:{b}"
    texts = [f"{chat} m{i:03d}" for i in range(300)]
    times = [(await service.send(SendCall(chat, a, t))).send_time for t in texts]
    gone = (5, 150, 299)
    for i in gone:  # the store's op: no background eraser of a service races this one
        await store.one(Change(chat, "0", times[i], "r", "", 0))
    assert await store.erase(chat, step=64, tail=tail)
    await _gone(raw, [texts[i].encode() for i in gone])
    page = await service.pull(PullCall(chat, 0, 1000))
    assert [m["send_time"] for m in page.messages] == times
    assert [m["text"] for m in page.messages] == ["" if i in gone else t for i, t in
                                                  enumerate(texts)]  # fmt: skip
    later = await service.send(SendCall(chat, b, "after"))
    assert later.send_time > times[-1]
    assert not await raw.exists(erasures_key(chat))
