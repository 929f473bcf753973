"""Short chats on a real Redis: a chat's first messages live in one hash, which moves into the
chat's stream at IM_SHORT_CHAT_MESSAGES; reads, the newest entry and the inbox answer the
same from either form, and chats stored as streams (short forms off) stay streams. In a hash
of 31 records the scripts find each message by bisection: group pages from every cursor,
edits and recalls of each message, syncs on pages of any size."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as aioredis

from devtools.procs import Process
from devtools.redis_cluster import RedisClusterNodes
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
from rpc_svc.domain.values import Entry
from rpc_svc.server import RECORD_OVERHEAD, _check_compact_records
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from rpc_svc.store.commands import chats
from rpc_svc.store.keys import messages_key, short_key
from rpc_svc.store.lua import load
from rpc_svc.store.ops import GroupRead, Latest, Read
from tests.conftest import SHORT_CHAT_MESSAGES, make_cluster_store, make_store
from tests.store_calls import append, read

CHAT = "ann:bob"
ON_BOTH = pytest.mark.parametrize("backend", ["redis", "cluster"], indirect=True)


async def _forms(client: aioredis.Redis, chat: str) -> tuple[int, int]:
    """(records in the chat's short hash, entries in its stream); the short form, when
    there is one, is a compact hash."""
    key = short_key(chat)
    if await client.exists(key):
        assert await client.object("encoding", key) == "listpack"
    return await client.hlen(key), await client.xlen(messages_key(chat))


@ON_BOTH
async def test_a_chat_moves_from_its_hash_into_its_stream_at_the_limit(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    times = []
    for i in range(SHORT_CHAT_MESSAGES - 1):
        times.append(await append(store, CHAT, i % 2, f"m{i}"))
        assert await _forms(redis_client, CHAT) == (i + 1, 0)
    before = await read(store, CHAT, 0, 100, reverse=False)
    times.append(await append(store, CHAT, 1, "last"))
    assert await _forms(redis_client, CHAT) == (0, SHORT_CHAT_MESSAGES)
    assert await redis_client.exists(short_key(CHAT)) == 0
    after = await read(store, CHAT, 0, 100, reverse=False)
    assert after[:-1] == before
    assert after[-1] == Entry(times[-1], 1, "last")
    assert [e.send_time for e in after] == times
    times.append(await append(store, CHAT, 0, "more"))  # the stream from now on
    assert await _forms(redis_client, CHAT) == (0, SHORT_CHAT_MESSAGES + 1)


def _expected(times: list[int], cursor: int, limit: int, reverse: bool) -> list[int]:
    if reverse:
        return [t for t in reversed(times) if not cursor or t <= cursor][:limit]
    return [t for t in times if t >= cursor][:limit]


@ON_BOTH
async def test_reads_from_every_cursor_agree_before_and_after_the_move(
    store: RedisStore,
) -> None:
    times: list[int] = []
    for n in range(1, SHORT_CHAT_MESSAGES + 2):
        times.append(await append(store, CHAT, n % 2, f"m{n}"))
        cursors = [0, times[0] - 1, *times, times[-1] + 1]
        for cursor, limit, reverse in itertools.product(cursors, range(1, n + 2), (False, True)):
            got = await read(store, CHAT, cursor, limit, reverse)
            assert [e.send_time for e in got] == _expected(times, cursor, limit, reverse), (
                n,
                cursor,
                limit,
                reverse,
            )
        for at in cursors:
            tip = await store.one(Latest(CHAT, at))
            newest = _expected(times, at, 1, True)
            assert (tip.entry.send_time if tip else None) == (newest[0] if newest else None)
            if tip is not None:  # the tallies come along: sent by role 0 and role 1
                upto = [t for t in times if t <= tip.entry.send_time]
                ones = sum(1 for i, _ in enumerate(upto) if (i + 1) % 2)
                assert tip.sent == (len(upto) - ones, ones)


async def test_a_chat_stored_as_a_stream_is_read_and_stays_a_stream(
    redis_proc: Process, redis_client: aioredis.Redis
) -> None:
    old, new = make_store(redis_proc, short=0), make_store(redis_proc)
    try:
        first = [await append(old, CHAT, i % 2, f"old{i}") for i in range(2)]
        assert await _forms(redis_client, CHAT) == (0, 2)
        third = await append(new, CHAT, 0, "new")
        assert await _forms(redis_client, CHAT) == (0, 3)  # no hash beside the stream
        entries = await read(new, CHAT, 0, 10, reverse=False)
        assert [e.send_time for e in entries] == [*first, third]
        assert (await new.one(Latest(CHAT))).sent == (2, 1)
    finally:
        await old.close()
        await new.close()


async def test_a_read_that_straddles_the_move_answers_from_the_stream(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    # a read is two replies, the hash's then the stream's: another client's send may move
    # the hash into the stream between them; both replies then hold the entries
    times = [await append(store, CHAT, 0, f"m{i}") for i in range(SHORT_CHAT_MESSAGES - 1)]
    op = Read(CHAT, 0, 100, False)
    short, stream_read, _changes = chats.commands(op, store.plan)
    first = await redis_client.execute_command(*short)  # type: ignore[no-untyped-call]
    assert len(first) == SHORT_CHAT_MESSAGES - 1  # (HVALS)
    times.append(await append(store, CHAT, 1, "moves"))
    second = await redis_client.execute_command(*stream_read)  # type: ignore[no-untyped-call]
    assert [e.send_time for e in chats.outcome(op, [first, second, []])] == times
    assert [e.send_time for e in chats.outcome(op, [first, [], []])] == times[:-1]  # before


async def test_an_inbox_and_groups_read_short_and_long_timelines_alike(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    await service.group(GroupCall("create", "#g", "ann"))
    await service.group(GroupCall("add", "#g", "ann", "bob"))
    sent = []
    for i in range(SHORT_CHAT_MESSAGES + 1):
        sent.append(await service.send(SendCall("#g", "bob" if i % 2 else "ann", f"g{i}")))
        await service.send(SendCall(CHAT, "bob", f"p{i}"))
        inbox = {c["chat"]: c for c in (await service.chats(ChatsCall("ann"))).chats}
        assert inbox["#g"]["last_message"]["send_time"] == sent[-1].send_time
        assert inbox["#g"]["unread"] == (i + 1) // 2  # bob's, after ann's joining position
        assert inbox[CHAT]["last_message"]["text"] == f"p{i}"
        assert inbox[CHAT]["unread"] == i + 1
        page = await service.pull(PullCall("#g", 0, 100, True))
        assert [m["text"] for m in page.messages] == [f"g{j}" for j in range(i, -1, -1)]
        half = await service.pull(PullCall("#g", sent[0].send_time + 1, 2, False))
        assert [m["text"] for m in half.messages] == [f"g{j}" for j in range(1, min(i, 2) + 1)]
    assert await _forms(redis_client, "#g") == (0, SHORT_CHAT_MESSAGES + 1)


async def test_group_reads_and_read_positions_inside_a_short_group(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    await service.group(GroupCall("create", "#h", "ann"))
    await service.group(GroupCall("add", "#h", "ann", "bob"))
    b0, b1, a0 = [
        (await service.send(SendCall("#h", s, t))).send_time
        for s, t in (("bob", "b0"), ("bob", "b1"), ("ann", "a0"))
    ]
    assert await _forms(redis_client, "#h") == (3, 0)
    page = await service.pull(PullCall("#h", b1, 5, False))  # the cursor's own entry first
    assert [m["send_time"] for m in page.messages] == [b1, a0]
    page = await service.pull(PullCall("#h", b1, 5, True))
    assert [m["send_time"] for m in page.messages] == [b1, b0]
    # a position before bob's last message: bob's own messages after it are counted from his
    # own index (b1 is bob's, a0 the one unread)
    await service.mark_read(ReadCall("#h", "bob", b0))
    (shown,) = (await service.chats(ChatsCall("bob"))).chats
    assert (shown["chat"], shown["unread"]) == ("#h", 1)


async def test_a_hash_left_when_short_forms_are_turned_off_moves_at_the_next_send(
    redis_proc: Process, redis_client: aioredis.Redis
) -> None:
    short, off = make_store(redis_proc), make_store(redis_proc, short=0)
    try:
        first = [await append(short, CHAT, i % 2, f"m{i}") for i in range(2)]
        assert await _forms(redis_client, CHAT) == (2, 0)
        third = await append(off, CHAT, 0, "after")
        assert await _forms(redis_client, CHAT) == (0, 3)
        entries = await read(off, CHAT, 0, 10, reverse=False)
        assert [e.send_time for e in entries] == [*first, third]
    finally:
        await short.close()
        await off.close()


TEXTS = ["héllo wörld", "🎉 12 34 ", "line\none", "9 9 9", " ", "日本語のテキスト", "a" * 300]


@ON_BOTH
async def test_any_text_comes_back_whole_before_and_after_the_move(
    service: ChatService, redis_client: aioredis.Redis
) -> None:
    # a short chat's record is "<id> <value>": multi-byte characters, spaces, digits and
    # newlines in a text must come back as they went in
    await service.group(GroupCall("create", "#t", "ann"))
    for i, text in enumerate(TEXTS):
        for chat in (CHAT, "#t"):
            await service.send(SendCall(chat, "ann", text))
            page = await service.pull(PullCall(chat, 0, 100, False))
            assert [m["text"] for m in page.messages] == TEXTS[: i + 1], (chat, i)
            newest = await service.pull(PullCall(chat, 0, 1, True))
            assert [m["text"] for m in newest.messages] == [text]
    assert await _forms(redis_client, CHAT) == (0, len(TEXTS))  # moved at the 4th
    (shown,) = [c for c in (await service.chats(ChatsCall("ann"))).chats if c["chat"] == "#t"]
    assert shown["last_message"]["text"] == TEXTS[-1]


async def test_records_past_the_compact_limit_read_in_order_from_a_hash_table(
    redis_proc: Process, redis_client: aioredis.Redis
) -> None:
    # a record longer than hash-max-listpack-value makes the hash a hash table, whose values
    # come back in no particular order
    store = make_store(redis_proc, short=32)
    await redis_client.config_set("hash-max-listpack-value", 64)
    try:
        times = [await append(store, CHAT, i % 2, f"{i:02} " + "x" * 80) for i in range(31)]
        assert await redis_client.object("encoding", short_key(CHAT)) == "hashtable"
        for cursor, limit, reverse in itertools.product([0, times[10]], (5, 40), (False, True)):
            got = await read(store, CHAT, cursor, limit, reverse)
            assert [e.send_time for e in got] == _expected(times, cursor, limit, reverse)
        assert (await store.one(Latest(CHAT))).sent == (16, 15)
        await append(store, CHAT, 0, "moves")
        entries = await read(store, CHAT, 0, 40, reverse=False)
        assert [e.text[:2] for e in entries] == [f"{i:02}" for i in range(31)] + ["mo"]
    finally:
        await redis_client.config_set("hash-max-listpack-value", 4224)
        await store.close()


async def test_im_rpc_says_when_redis_would_not_keep_short_chats_compact(
    store: RedisStore, redis_client: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    assert await store.compact_record_limit() == 4224
    caplog.set_level(logging.INFO, logger="rpc_svc.server")
    await _check_compact_records(store, 4224 - RECORD_OVERHEAD)  # just enough: silent
    assert not caplog.records
    await _check_compact_records(store, 4225 - RECORD_OVERHEAD)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "hash-max-listpack-value is 4224" in record.getMessage()
    assert "set it to 4225" in record.getMessage()
    caplog.clear()
    await redis_client.config_set("hash-max-listpack-value", 300)
    try:
        assert await store.compact_record_limit() == 300
    finally:
        await redis_client.config_set("hash-max-listpack-value", 4224)


@pytest.mark.parametrize("backend", ["cluster"], indirect=True)
async def test_a_clusters_compact_limit_is_its_masters_lowest(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    assert await store.compact_record_limit() == 4224
    cluster = cast(aioredis.RedisCluster, redis_client)
    await cluster.initialize()
    (node, *_) = cluster.get_primaries()
    await cluster.config_set("hash-max-listpack-value", 200, target_nodes=node)
    try:
        assert await store.compact_record_limit() == 200
    finally:
        await cluster.config_set("hash-max-listpack-value", 4224, target_nodes=node)


LONG = 32  # IM_SHORT_CHAT_MESSAGES's default: a hash of up to 31 records


@pytest.fixture
async def long_hashes(
    backend: str, redis_client: aioredis.Redis, request: pytest.FixtureRequest
) -> AsyncIterator[RedisStore]:
    """A store (one Redis, or the cluster: emptied first) whose short chats hold up to 31
    records (the default; the suite's other stores move a hash at 4), where the scripts'
    bisections go deep."""
    if backend == "cluster":
        store = make_cluster_store(request.getfixturevalue("redis_cluster"), short=LONG)
    else:
        store = make_store(request.getfixturevalue("redis_proc"), short=LONG)
    try:
        yield store
    finally:
        await store.close()


def _service(store: RedisStore) -> ChatService:
    """The chat service on `store`, its groups big from their second member on."""
    return ChatService(store, 4096, group_fanout_max=1)


async def _calls(client: aioredis.Redis) -> dict[str, int]:
    """The commands Redis has run so far, by name (INFO commandstats)."""
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def _filled(service: ChatService, chat: str, texts: list[str]) -> list[int]:
    return [(await service.send(SendCall(chat, "ann", text))).send_time for text in texts]


@ON_BOTH
async def test_a_groups_reads_from_every_cursor_inside_a_long_hash(
    long_hashes: RedisStore, redis_client: aioredis.Redis
) -> None:
    # the group scripts read a short group through tl_range: its ends found by bisection,
    # only the page's records read (the store's read answers no more than it was asked)
    service = _service(long_hashes)
    await service.group(GroupCall("create", "#long", "ann"))
    times = await _filled(service, "#long", [f"g{i}" for i in range(LONG - 1)])
    assert await _forms(redis_client, "#long") == (LONG - 1, 0)
    cursors = [0, times[0] - 1, *times, times[-1] + 1]
    for cursor, limit, reverse in itertools.product(cursors, (1, 2, 7, LONG), (False, True)):
        page = await service.pull(PullCall("#long", cursor, limit, reverse))
        got = [m["send_time"] for m in page.messages]
        assert got == _expected(times, cursor, limit, reverse), (cursor, limit, reverse)
        assert [m["text"] for m in page.messages] == [f"g{times.index(t)}" for t in got]
        rows = await long_hashes.one(GroupRead("#long", "", cursor, limit, reverse))
        assert [e.send_time for e in rows] == got


@ON_BOTH
async def test_edits_and_recalls_find_each_message_of_a_long_hash(
    long_hashes: RedisStore, redis_client: aioredis.Redis
) -> None:
    # an edit or a recall finds its message by its send time (tl_at: the newest record
    # first, then bisection); a recall blanks that record's text in the hash itself
    service, chat = _service(long_hashes), "ann:bob"
    texts = [f"<{i:02}>" for i in range(LONG - 1)]
    times = await _filled(service, chat, texts)
    recalled = set(range(0, LONG - 1, 3)) | {LONG - 2}  # the first, every third, the newest
    for i in reversed(range(LONG - 1)):  # (the newest first: then every other is older)
        if i in recalled:
            assert (await service.recall(RecallCall(chat, "ann", times[i]))).recalled
        else:
            await service.edit(EditCall(chat, "ann", times[i], f"[{i:02}]"))
    assert await _forms(redis_client, chat) == (LONG - 1, 0)
    page = await service.pull(PullCall(chat, 0, LONG, False))
    shown = [(m["text"], m.get("recalled", False)) for m in page.messages]
    assert shown == [("", True) if i in recalled else (f"[{i:02}]", False) for i in range(LONG - 1)]
    stored = " ".join(cast(list[str], await redis_client.hvals(short_key(chat))))
    assert [t for t in texts if t in stored] == [
        texts[i] for i in range(LONG - 1) if i not in recalled
    ]


@ON_BOTH
async def test_a_sync_reads_each_message_of_long_hashes_on_pages_of_any_size(
    long_hashes: RedisStore, redis_client: aioredis.Redis
) -> None:
    # a 1:1 message's record is read by tl_at, a big group's range by tl_after (its first
    # record after the page's place found by bisection): on pages of any size, each once
    service = _service(long_hashes)
    await service.group(GroupCall("create", "#wide", "ann"))
    await service.group(GroupCall("add", "#wide", "ann", "bob"))  # big from now on
    token = (await service.sync(SyncCall("bob"))).next
    n = LONG - 3  # (room for two more below)
    for i in range(n):
        await _filled(service, "ann:bob", [f"p{i}"])
        await _filled(service, "#wide", [f"w{i}"])
    assert await _forms(redis_client, "ann:bob") == (n, 0)
    first = {"ann:bob": [f"p{i}" for i in range(n)], "#wide": [f"w{i}" for i in range(n)]}
    for limit in (1, 2, 5, 7, 100):
        assert await _synced(service, "bob", token, limit) == first, limit
    # the range read first ends where it did, though the hash holds later messages now: the
    # token replayed after them gives those once, from the range record appended for them
    await _filled(service, "#wide", ["late0", "late1"])
    assert await _forms(redis_client, "#wide") == (n + 2, 0)
    for limit in (3, 100):
        again = await _synced(service, "bob", token, limit)
        assert again == {"ann:bob": first["ann:bob"], "#wide": [*first["#wide"], "late0", "late1"]}


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_a_syncs_range_read_answers_each_send_time_and_value_as_stored(
    long_hashes: RedisStore, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    # tl_after, run as a script of its own: the records sent after one time up to another,
    # at most a count, each as its send time and its value exactly as stored (a sync answers
    # no ID: the value is cut from the record at the place tl_after finds), from a hash and
    # from a stream
    lua = Path(__file__).parents[2] / "rpc_svc/store/lua"
    for helper in ("remembered", "timeline"):
        (tmp_path / f"{helper}.lua").write_text((lua / f"{helper}.lua").read_text())
    (tmp_path / "probe.lua").write_text(
        "-- uses: remembered, timeline\n"
        "return tl_after(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), "
        "tonumber(ARGV[3]))\n"
    )
    probe = load("probe", tmp_path).text
    service = _service(long_hashes)
    for chat, n in (("ann:bob", 9), ("ann:cy", LONG + 3)):  # a hash; a stream
        times = await _filled(service, chat, [f"t:{i}: {'x' * i}" for i in range(n)])
        assert await _forms(redis_client, chat) == ((n, 0) if n < LONG else (0, n))
        entries = cast(
            list[tuple[str, dict[str, str]]], await redis_client.xrange(messages_key(chat))
        )
        records = cast(list[str], await redis_client.hmget(short_key(chat), *range(1, n + 1)))
        stored = [value for _, fields in entries for value in fields.values()] or [
            r.split(" ", 1)[1]
            for r in records  # (a stream entry: one field)
        ]
        assert len(stored) == n
        bounds = [times[0] - 1, *times[::3], times[-1]]
        for after, upto, count in itertools.product(bounds, bounds, (1, 2, n)):
            rows = await redis_client.eval(
                probe, 2, messages_key(chat), short_key(chat), after, upto, count
            )
            want = [(t, v) for t, v in zip(times, stored, strict=True) if after < t <= upto]
            assert [(int(t), v) for t, v in rows] == want[:count], (chat, after, upto, count)


async def _synced(service: ChatService, user: str, since: str, limit: int) -> dict[str, list[str]]:
    """The texts of every message event after `since`, page after page, by chat."""
    by_chat: dict[str, list[str]] = {"ann:bob": [], "#wide": []}
    for _ in range(200):
        page = await service.sync(SyncCall(user, since, limit))
        for e in page.events:
            by_chat[e["chat"]].append(e["message"]["text"])
        since = page.next
        if not page.has_more:
            return by_chat
    raise AssertionError("has_more never ended")


@pytest.mark.parametrize("backend", ["cluster"], indirect=True)
async def test_a_clusters_sync_gets_from_redis_the_message_it_answers_not_its_chat(
    long_hashes: RedisStore, redis_client: aioredis.Redis, redis_cluster: RedisClusterNodes
) -> None:
    # a cluster's sync reads each record's message by SPAN, a short chat's hash by bisection:
    # the chat's node sends the message answered, not the chat's 30 others
    service, chat = _service(long_hashes), "ann:bob"
    await _filled(service, chat, [f"{i:02}" + "x" * 4000 for i in range(LONG - 2)])
    token = (await service.sync(SyncCall("bob"))).next
    await _filled(service, chat, ["new"])
    assert await _forms(redis_client, chat) == (LONG - 1, 0)
    with redis_cluster.admin(redis_cluster.node_of(short_key(chat))) as node:
        before = int(node.info("stats")["total_net_output_bytes"])
        page = await service.sync(SyncCall("bob", token))
        sent = int(node.info("stats")["total_net_output_bytes"]) - before
    assert [e["message"]["text"] for e in page.events] == ["new"]
    assert sent < 16_000, sent  # (the chat's records: 30 of 4 KB)


async def test_a_sync_page_reads_each_record_of_a_chats_hash_about_once(
    long_hashes: RedisStore, redis_client: aioredis.Redis
) -> None:
    # a page of 31 edits of one chat's messages, the oldest first (each found by bisection):
    # from the chat's second message on, the page keeps what it read of the hash
    service, chat = _service(long_hashes), "ann:bob"
    times = await _filled(service, chat, [f"{i:02}" for i in range(LONG - 1)])
    token = (await service.sync(SyncCall("bob"))).next
    for i, t in enumerate(times):
        await service.edit(EditCall(chat, "ann", t, f"e{i:02}"))
    before = await _calls(redis_client)
    page = await service.sync(SyncCall("bob", token, 100))
    after = await _calls(redis_client)
    assert [e["message"]["text"] for e in page.events] == [f"e{i:02}" for i in range(LONG - 1)]
    reads = {c: after[c] - before.get(c, 0) for c in ("hget", "hlen")}
    assert reads["hget"] <= LONG + 6, reads  # (not up to 6 a message)
    assert reads["hlen"] <= 2, reads  # (the first message's read, the second's)


async def test_a_sync_page_keeps_what_it_read_of_64_chats_at_most(
    long_hashes: RedisStore, redis_client: aioredis.Redis
) -> None:
    # 66 chats of three new messages: the page keeps a chat's hash from its second message
    # on (its length read twice, then kept), for 64 chats; the last two read it each time
    service = _service(long_hashes)
    chats = [f"p{i:02}:bob" for i in range(66)]
    token = (await service.sync(SyncCall("bob"))).next
    for round_ in range(3):
        for chat in chats:
            await service.send(SendCall(chat, chat.partition(":")[0], f"m{round_}"))
    before = await _calls(redis_client)
    page = await service.sync(SyncCall("bob", token, 1000))
    after = await _calls(redis_client)
    assert len(page.events) == 3 * len(chats)
    assert after["hlen"] - before.get("hlen", 0) == 64 * 2 + 2 * 3


@ON_BOTH
async def test_syncs_while_sends_move_the_hash_into_the_stream_see_each_message_once(
    long_hashes: RedisStore, redis_client: aioredis.Redis
) -> None:
    # two at once on the same keys: sends that fill the hash and move it into the stream
    # (at the 32nd), and syncs of small pages reading the same chat between them (on a
    # cluster, between a page's records and the reads of their messages)
    service, chat = _service(long_hashes), "ann:bob"
    token = (await service.sync(SyncCall("bob"))).next
    texts = [f"m{i:02}" for i in range(LONG + 8)]
    seen: list[str] = []
    sent: list[str] = []
    early = 0  # messages the syncs saw while sends were still to come

    async def send() -> None:
        for text in texts:
            await service.send(SendCall(chat, "ann", text))
            sent.append(text)

    async def follow(since: str) -> str:
        nonlocal early
        for _ in range(400):
            page = await service.sync(SyncCall("bob", since, 3))
            seen.extend(e["message"]["text"] for e in page.events)
            if len(sent) < len(texts):
                early += len(page.events)
            since = page.next
            if not page.has_more and len(seen) == len(texts):
                break
            await asyncio.sleep(0)
        return since

    await asyncio.gather(send(), follow(token))
    assert await _forms(redis_client, chat) == (0, LONG + 8)  # (moved)
    assert seen == texts
    assert early > 0  # (the syncs ran between the sends)
