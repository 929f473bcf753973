"""What each group call answers, to the letter, on one Redis and on the cluster: every
refusal's code and message (naming the group and the user), the name checks' codes, the
acting user's answers about groups that do not exist (never an oracle), idempotency keys per
sender, texts with colons, reverse pages, the owner of a group too big for a compact hash
(more than 512 members).
Written from the survivors of the mutation run of issue 23 (docs/development.md): each test
here failed on at least one of them."""

from __future__ import annotations

import asyncio
import itertools

import msgspec
import pytest

from im_common.calls import ChatsCall, GroupCall, PullCall, ReadCall, SendCall
from rpc_svc.domain.errors import Conflict, Forbidden, IMError, InvalidArgument, NotFound
from rpc_svc.domain.values import Group
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from tests.conftest import ON_EVERY_BACKEND

pytestmark = ON_EVERY_BACKEND
_ids = itertools.count()


async def _refused(service: ChatService, call: object) -> IMError:
    (result,) = await service.run([call])  # type: ignore[list-item]
    assert isinstance(result, IMError), result
    return result


def _said(exc: IMError) -> tuple[str, str, str]:
    return type(exc).__name__, exc.code, exc.message


async def test_every_refusal_names_its_group_and_user(store: RedisStore) -> None:
    service = ChatService(store, 4096, max_group_members=3, max_groups=2)
    n = next(_ids)
    g, owner, bob, eve = f"#r{n}", f"own{n}", f"bob{n}", f"eve{n}"
    await service.group(GroupCall("create", g, owner))
    await service.group(GroupCall("add", g, owner, bob))
    cases = [
        (
            GroupCall("create", g, owner),
            ("Conflict", "group_exists", f"group {g!r} exists already"),
        ),
        (
            GroupCall("add", g, eve, "x"),
            ("Forbidden", "not_a_member", f"{eve!r} is not a member of group {g!r}"),
        ),
        (
            GroupCall("remove", g, eve, bob),
            ("Forbidden", "not_a_member", f"{eve!r} is not a member of group {g!r}"),
        ),
        (
            GroupCall("remove", g, bob, owner),
            ("Forbidden", "forbidden", "only the owner removes other members"),
        ),
        (
            GroupCall("remove", g, owner, owner),
            ("Conflict", "owner_cannot_leave", "the owner cannot leave the group"),
        ),
        (
            GroupCall("add", f"#none{n}", owner, bob),
            ("NotFound", "unknown_group", f"group {'#none' + str(n)!r} does not exist"),
        ),
        (
            SendCall(g, eve, "hi"),
            ("Forbidden", "not_a_member", f"{eve!r} is not a member of group {g!r}"),
        ),
        (
            ReadCall(g, eve, 1),
            ("Forbidden", "not_a_member", f"{eve!r} is not a member of group {g!r}"),
        ),
        (
            GroupCall("bogus", g, owner),
            ("InvalidArgument", "invalid_batch", "unknown group call 'bogus'"),
        ),
        (
            GroupCall("bogus-op-of-a-long-name", g, owner),
            ("InvalidArgument", "invalid_batch", "unknown group call 'bogus-op-of-a-lo'"),
        ),
    ]
    for call, said in cases:
        assert _said(await _refused(service, call)) == said, call
    await service.group(GroupCall("add", g, owner, eve))  # 3 members: full
    full = await _refused(service, GroupCall("add", g, owner, f"x{n}"))
    assert _said(full) == (
        "Conflict",
        "group_full",
        f"group {g!r} has as many members as it may have",
    )
    await service.group(GroupCall("create", f"#r{n}b", bob))  # bob: in 2 groups now
    await service.group(GroupCall("create", f"#r{n}d", owner))  # the owner too
    many = await _refused(service, GroupCall("add", f"#r{n}b", bob, owner))
    many_of_owner = await _refused(service, GroupCall("create", f"#r{n}c", bob))
    for exc in (many, many_of_owner):
        assert (exc.code, type(exc)) == ("too_many_groups", Conflict)
    assert repr(bob) in many_of_owner.message
    assert repr(owner) in many.message  # the member that may join no more groups


async def test_bad_names_in_group_calls_answer_their_fields_codes(service: ChatService) -> None:
    g = f"#n{next(_ids)}"
    codes = {
        (await _refused(service, GroupCall("create", g, "has space"))).code,
        (await _refused(service, GroupCall("list", "", "has space"))).code,
    }
    assert codes == {"invalid_user"}
    await service.group(GroupCall("create", g, "ok"))
    bad = await _refused(service, GroupCall("add", g, "ok", "has:colon"))
    assert (type(bad), bad.code) == (InvalidArgument, "invalid_member")
    assert bad.message.startswith("member")
    other = await _refused(service, GroupCall("list", "", "ann", actor="bob"))
    assert (type(other), other.message.split()[0]) == (Forbidden, "user")


@pytest.mark.parametrize("call", ["add", "remove", "members", "send", "read"])
async def test_an_acting_non_member_learns_nothing_of_a_group_that_does_not_exist(
    service: ChatService, call: str
) -> None:
    n = next(_ids)
    missing, outsider = f"#gone{n}", f"out{n}"
    made = {
        "add": GroupCall("add", missing, outsider, "x", actor=outsider),
        "remove": GroupCall("remove", missing, outsider, outsider, actor=outsider),
        "members": GroupCall("members", missing, actor=outsider),
        "send": SendCall(missing, outsider, "hi", actor=outsider),
        "read": ReadCall(missing, outsider, 5, actor=outsider),
    }[call]
    exc = await _refused(service, made)
    assert isinstance(exc, Forbidden), _said(exc)
    if call in ("add", "remove", "send"):  # without authentication: it says so
        open_ = await _refused(service, msgspec.structs.replace(made, actor=""))
        assert isinstance(open_, NotFound), _said(open_)


async def test_keys_are_each_senders_own_and_retry_keys_count_once(service: ChatService) -> None:
    n = next(_ids)
    g, ann, bob = f"#k{n}", f"ann{n}", f"bob{n}"
    await service.group(GroupCall("create", g, ann))
    await service.group(GroupCall("add", g, ann, bob))
    first = await service.send(SendCall(g, ann, "one", client_msg_id="same"))
    other = await service.send(SendCall(g, bob, "two", client_msg_id="same"))
    assert other.send_time != first.send_time
    again = await service.send(SendCall(g, ann, "one", client_msg_id="same"))
    assert again == first
    retried = [await service.send(SendCall(g, bob, "three", retry_key="r1")) for _ in range(2)]
    assert retried[0] == retried[1]
    page = await service.pull(PullCall(g, 0, 10))
    assert [m["text"] for m in page.messages] == ["one", "two", "three"]


async def test_group_texts_keep_their_colons_in_pulls_and_the_inbox(service: ChatService) -> None:
    n = next(_ids)
    g, ann = f"#c{n}", f"ann{n}"
    await service.group(GroupCall("create", g, ann))
    text = "a:b:c: d::"
    await service.send(SendCall(g, ann, text))
    assert [m["text"] for m in (await service.pull(PullCall(g))).messages] == [text]
    (row,) = (await service.chats(ChatsCall(ann))).chats
    assert (row["last_message"]["text"], row["last_message"]["sender"]) == (text, ann)


async def test_reverse_group_pages_walk_back_to_the_first_message(service: ChatService) -> None:
    n = next(_ids)
    g, ann = f"#p{n}", f"ann{n}"
    await service.group(GroupCall("create", g, ann))
    sent = [await service.send(SendCall(g, ann, f"m{i}")) for i in range(5)]
    seen, cursor = [], 0
    for _ in range(5):
        page = await service.pull(PullCall(g, cursor, 2, True))
        seen += [m["text"] for m in page.messages]
        if not page.has_more:
            assert page.next_cursor == 0  # a reverse walk ends at 0
            break
        cursor = page.next_cursor
    assert seen == ["m4", "m3", "m2", "m1", "m0"]
    middle = await service.pull(PullCall(g, sent[2].send_time, 2, True))
    assert ([m["text"] for m in middle.messages], middle.next_cursor) == (
        ["m2", "m1"],
        sent[0].send_time,
    )
    forward = await service.pull(PullCall(g, sent[3].send_time, 5))
    assert [m["text"] for m in forward.messages] == ["m3", "m4"]
    past = await service.pull(PullCall(g, sent[4].send_time + 7, 5))
    assert (past.messages, past.has_more, past.next_cursor) == ([], False, sent[4].send_time + 7)


async def test_a_member_added_after_messages_has_read_them_all(service: ChatService) -> None:
    n = next(_ids)
    g, ann, bob = f"#j{n}", f"ann{n}", f"bob{n}"
    await service.group(GroupCall("create", g, ann))
    for i in range(3):
        await service.send(SendCall(g, ann, f"old{i}"))
    await service.group(GroupCall("add", g, ann, bob))
    (row,) = (await service.chats(ChatsCall(bob))).chats
    assert (row["unread"], row["last_message"]["text"]) == (0, "old2")
    await service.send(SendCall(g, ann, "new"))
    (row,) = (await service.chats(ChatsCall(bob))).chats
    assert row["unread"] == 1


async def test_the_owner_of_a_group_past_a_compact_hash_is_still_its_owner(
    store: RedisStore,
) -> None:
    service = ChatService(store, 4096, max_group_members=600, group_fanout_max=1)
    n = next(_ids)
    g, owner = f"#o{n}", f"zz-owner{n}"  # sorts last: a wrong pick shows
    await service.group(GroupCall("create", g, owner))
    members = [f"m{i:03d}x{n}" for i in range(520)]  # past 512: a hash table, in any order
    await asyncio.gather(*(service.group(GroupCall("add", g, owner, m)) for m in members))
    info = await service.group(GroupCall("members", g))
    assert isinstance(info, Group)
    assert (info.owner, len(info.members)) == (owner, 521)
    gone = await service.group(GroupCall("remove", g, owner, members[0]))
    assert isinstance(gone, Group)
    assert (gone.owner, len(gone.members)) == (owner, 520)
