"""Group chats through the gateway, on every stack (each RPC mode, the Redis Cluster, in
process): the group calls and their rules, send / pull / long poll / read on a group,
history visibility, and the inbox with groups and 1:1 chats together."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from devtools.procs import nginx_server
from tests.conftest import E2E_DB, key_count, redis_url
from tests.in_process import in_process_stack

pytestmark = pytest.mark.e2e
_ids = itertools.count()
_RUN = uuid.uuid4().hex[:6]  # other modules' users share the session's Redis


@pytest.fixture
def names() -> tuple[str, str, str, str]:
    """A fresh group name and three users."""
    n = f"{_RUN}{next(_ids)}"
    return f"#team{n}", f"ann{n}", f"bob{n}", f"cid{n}"


async def _ok(client: httpx.AsyncClient, method: str, path: str, **params: Any) -> Any:
    answer = await client.request(method, path, json=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _error(
    client: httpx.AsyncClient, method: str, path: str, **params: Any
) -> tuple[int, str]:
    answer = await client.request(method, path, json=params)
    return answer.status_code, answer.json()["error"]


async def test_the_group_calls_and_their_rules(
    client: httpx.AsyncClient, names: tuple[str, str, str, str]
) -> None:
    g, ann, bob, cid = names
    made = await _ok(client, "POST", "/api/groups", chat=g, user=ann)
    assert made == {"chat": g, "owner": ann, "members": [ann]}
    assert await _error(client, "POST", "/api/groups", chat=g, user=bob) == (409, "group_exists")
    added = await _ok(client, "POST", "/api/groups/add", chat=g, user=ann, member=cid)
    assert added["members"] == sorted([ann, cid])
    again = await _ok(client, "POST", "/api/groups/add", chat=g, user=ann, member=cid)
    assert again == added  # adding again changes nothing
    by_member = await _ok(client, "POST", "/api/groups/add", chat=g, user=cid, member=bob)
    assert by_member["members"] == sorted([ann, bob, cid])
    outsider = await _error(client, "POST", "/api/groups/add", chat=g, user="zed", member="x")
    assert outsider == (403, "not_a_member")
    not_owner = await _error(client, "POST", "/api/groups/remove", chat=g, user=bob, member=cid)
    assert not_owner == (403, "forbidden")
    owner_leaves = await _error(client, "POST", "/api/groups/remove", chat=g, user=ann, member=ann)
    assert owner_leaves == (409, "owner_cannot_leave")
    left = await _ok(client, "POST", "/api/groups/remove", chat=g, user=bob, member=bob)
    assert left["members"] == sorted([ann, cid])
    removed = await _ok(client, "POST", "/api/groups/remove", chat=g, user=ann, member=cid)
    assert removed == {"chat": g, "owner": ann, "members": [ann]}
    nobody = await _ok(client, "POST", "/api/groups/remove", chat=g, user=ann, member="zed")
    assert nobody == removed  # removing a non-member changes nothing
    members = await client.get("/api/groups/members", params={"chat": g})
    assert members.json() == removed


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("POST", "/api/send", {"sender": "ann", "text": "x"}),
        ("GET", "/api/pull", {}),
        ("POST", "/api/read", {"user": "ann", "send_time": 1}),
        ("GET", "/api/groups/members", {}),
        ("POST", "/api/groups/add", {"user": "ann", "member": "bob"}),
        ("POST", "/api/groups/remove", {"user": "ann", "member": "bob"}),
    ],
)
async def test_a_group_that_does_not_exist_is_a_404_and_stores_nothing(
    client: httpx.AsyncClient, e2e_redis: aioredis.Redis, method: str, path: str, params: Any
) -> None:
    before = await key_count(e2e_redis)
    chat = f"#nothing{_RUN}{next(_ids)}"
    assert await _error(client, method, path, chat=chat, **params) == (404, "unknown_group")
    assert await key_count(e2e_redis) == before


@pytest.mark.parametrize("chat", ["#", "#a b", "#" + "x" * 65, "#a\u200bb", "team"])
async def test_a_malformed_group_name_is_a_400(client: httpx.AsyncClient, chat: str) -> None:
    answer = await _error(client, "POST", "/api/groups", chat=chat, user="ann")
    assert answer == (400, "invalid_chat")


async def test_members_send_pull_and_see_the_whole_history(
    client: httpx.AsyncClient, e2e_redis: aioredis.Redis, names: tuple[str, str, str, str]
) -> None:
    g, ann, bob, cid = names
    await _ok(client, "POST", "/api/groups", chat=g, user=ann)
    await _ok(client, "POST", "/api/groups/add", chat=g, user=ann, member=bob)
    times = [
        (await _ok(client, "POST", "/api/send", chat=g, sender=s, text=f"m{i}"))["send_time"]
        for i, s in enumerate([ann, bob, ann])
    ]
    assert times == sorted(set(times))
    before = await key_count(e2e_redis)
    assert await _error(client, "POST", "/api/send", chat=g, sender=cid, text="x") == (
        403,
        "not_a_member",
    )
    assert await key_count(e2e_redis) == before
    await _ok(client, "POST", "/api/groups/add", chat=g, user=bob, member=cid)
    page = await _ok(client, "GET", "/api/pull", chat=g, limit=2)  # a newcomer's view
    assert [(m["sender"], m["text"]) for m in page["messages"]] == [(ann, "m0"), (bob, "m1")]
    assert (page["has_more"], page["next_cursor"]) == (True, times[2])
    rest = await _ok(client, "GET", "/api/pull", chat=g, cursor=page["next_cursor"])
    assert [m["text"] for m in rest["messages"]] == ["m2"]
    assert (rest["has_more"], rest["next_cursor"]) == (False, times[2] + 1)
    newest = await _ok(client, "GET", "/api/pull", chat=g, reverse=True, limit=1)
    assert [m["chat"] for m in newest["messages"]] == [g]
    assert newest["next_cursor"] == times[1]


async def test_a_long_poll_on_a_group_is_woken_by_a_send(
    client: httpx.AsyncClient, names: tuple[str, str, str, str]
) -> None:
    g, ann, _, _ = names
    await _ok(client, "POST", "/api/groups", chat=g, user=ann)
    first = await _ok(client, "POST", "/api/send", chat=g, sender=ann, text="one")
    cursor = first["send_time"] + 1
    poll = asyncio.create_task(
        client.get("/api/pull", params={"chat": g, "cursor": cursor, "wait_ms": 5000})
    )
    await asyncio.sleep(0.3)
    assert not poll.done()
    started = asyncio.get_running_loop().time()
    await _ok(client, "POST", "/api/send", chat=g, sender=ann, text="two")
    page = (await asyncio.wait_for(poll, 5)).json()
    assert [m["text"] for m in page["messages"]] == ["two"]
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_the_inbox_merges_groups_and_chats_with_exact_unread_counts(
    client: httpx.AsyncClient, names: tuple[str, str, str, str]
) -> None:
    g, ann, bob, cid = names
    await _ok(client, "POST", "/api/groups", chat=g, user=ann)
    await _ok(client, "POST", "/api/groups/add", chat=g, user=ann, member=bob)
    quiet = f"{g}-quiet"
    await _ok(client, "POST", "/api/groups", chat=quiet, user=bob)  # no message: not listed
    await _ok(client, "POST", "/api/send", chat=g, sender=ann, text="g1")
    await _ok(client, "POST", "/api/send", chat=f"{bob}:{cid}", sender=cid, text="dm")
    await _ok(client, "POST", "/api/send", chat=g, sender=bob, text="g2")  # own: never unread
    last = await _ok(client, "POST", "/api/send", chat=g, sender=ann, text="g3")
    inbox = await _ok(client, "GET", "/api/chats", user=bob)
    rows = [(c["chat"], c["last_message"]["text"], c["unread"]) for c in inbox["chats"]]
    assert rows == [(g, "g3", 2), (f"{bob}:{cid}", "dm", 1)]
    first = await _ok(client, "GET", "/api/chats", user=bob, limit=1)
    assert [c["chat"] for c in first["chats"]] == [g]
    assert first["has_more"] is True
    second = await _ok(client, "GET", "/api/chats", user=bob, limit=1, cursor=first["next_cursor"])
    assert [c["chat"] for c in second["chats"]] == [f"{bob}:{cid}"]
    assert second["has_more"] is False
    # a newcomer starts at the newest message: nothing older is unread to it
    await _ok(client, "POST", "/api/groups/add", chat=g, user=ann, member=cid)
    cid_rows = (await _ok(client, "GET", "/api/chats", user=cid))["chats"]
    assert [(c["chat"], c["unread"]) for c in cid_rows] == [(g, 0), (f"{bob}:{cid}", 0)]
    await _ok(client, "POST", "/api/send", chat=g, sender=ann, text="g4")
    assert (await _ok(client, "GET", "/api/chats", user=cid))["chats"][0]["unread"] == 1
    # reading moves the position; an older one changes nothing
    read = await _ok(client, "POST", "/api/read", chat=g, user=bob, send_time=last["send_time"])
    assert read == {"chat": g, "user": bob, "read_until": last["send_time"]}
    older = await _ok(client, "POST", "/api/read", chat=g, user=bob, send_time=1)
    assert older["read_until"] == last["send_time"]
    assert (await _ok(client, "GET", "/api/chats", user=bob))["chats"][0]["unread"] == 1
    outsider = await _error(client, "POST", "/api/read", chat=g, user="zed", send_time=1)
    assert outsider == (403, "not_a_member")


async def test_a_member_that_leaves_keeps_nothing_and_its_messages_stay(
    client: httpx.AsyncClient, names: tuple[str, str, str, str]
) -> None:
    g, ann, bob, _ = names
    await _ok(client, "POST", "/api/groups", chat=g, user=ann)
    await _ok(client, "POST", "/api/groups/add", chat=g, user=ann, member=bob)
    sent = await _ok(client, "POST", "/api/send", chat=g, sender=bob, text="bye")
    await _ok(client, "POST", "/api/read", chat=g, user=bob, send_time=sent["send_time"])
    await _ok(client, "POST", "/api/groups/remove", chat=g, user=bob, member=bob)
    assert (await _ok(client, "GET", "/api/chats", user=bob))["chats"] == []
    page = await _ok(client, "GET", "/api/pull", chat=g)
    assert [(m["sender"], m["text"]) for m in page["messages"]] == [(bob, "bye")]
    await _ok(client, "POST", "/api/send", chat=g, sender=ann, text="after")
    await _ok(client, "POST", "/api/groups/add", chat=g, user=ann, member=bob)  # back again
    rows = (await _ok(client, "GET", "/api/chats", user=bob))["chats"]
    assert [(c["chat"], c["unread"]) for c in rows] == [(g, 0)]  # a newcomer once more


async def test_a_full_group_refuses_a_new_member(redis_proc: Any) -> None:
    url = redis_url(redis_proc, E2E_DB)
    async with (
        in_process_stack(url, rpc_fields={"group_max_members": 2}) as base,
        httpx.AsyncClient(base_url=base, timeout=10) as c,
    ):
        g = f"#small{_RUN}{next(_ids)}"
        await _ok(c, "POST", "/api/groups", chat=g, user="a")
        await _ok(c, "POST", "/api/groups/add", chat=g, user="a", member="b")
        assert await _error(c, "POST", "/api/groups/add", chat=g, user="a", member="c") == (
            409,
            "group_full",
        )
        await _ok(c, "POST", "/api/groups/add", chat=g, user="a", member="b")  # a member: fine


@pytest.fixture(scope="module")
def nginx_url(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """nginx in front of the session stack's stream-mode gateway (authentication off)."""
    proxy = nginx_server(tmp_path_factory.mktemp("groups-nginx"), [stack.gateways[0].port])
    proxy.start()
    yield f"http://127.0.0.1:{proxy.port}"
    proxy.stop()


async def test_group_calls_through_nginx(nginx_url: str) -> None:
    n = f"{_RUN}{next(_ids)}"
    g, ann, bob = f"#edge{n}", f"ann{n}", f"bob{n}"
    async with httpx.AsyncClient(base_url=nginx_url, timeout=10) as c:
        await _ok(c, "POST", "/api/groups", chat=g, user=ann)
        await _ok(c, "POST", "/api/groups/add", chat=g, user=ann, member=bob)
        sent = await _ok(c, "POST", "/api/send", chat=g, sender=bob, text="via nginx")
        page = await _ok(c, "GET", "/api/pull", chat=g)
        assert [m["send_time"] for m in page["messages"]] == [sent["send_time"]]
        inbox = await _ok(c, "GET", "/api/chats", user=ann)
        assert [(x["chat"], x["unread"]) for x in inbox["chats"]] == [(g, 1)]
        assert await _error(c, "POST", "/api/groups", chat=g, user=bob) == (409, "group_exists")
        members = await c.get("/api/groups/members", params={"chat": g})
        assert members.json()["members"] == sorted([ann, bob])
