"""GET /api/sync through the real gateways and im-rpc, on every stack (one Redis behind two
of each, the Redis Cluster, in process): two devices of one user, the long poll, pages, and
each error the contract names."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from rpc_svc.store.keys import feed_key

pytestmark = pytest.mark.e2e
Chat = tuple[str, str, str]


async def _sync(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get("/api/sync", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_two_devices_of_one_user_see_each_others_sends_and_reads(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, alice, bob = chat
    phone = (await _sync(client, user=alice))["next"]  # each device takes a token first
    laptop = (await _sync(client, user=alice))["next"]
    sent = await client.post("/api/send", json={"chat": name, "sender": alice, "text": "hi"})
    bobs = await client.post("/api/send", json={"chat": name, "sender": bob, "text": "yo"})
    on_laptop = await _sync(client, user=alice, since=laptop)
    assert [
        (e["type"], e["message"]["sender"], e["message"]["text"]) for e in on_laptop["events"]
    ] == [
        ("message", alice, "hi"),
        ("message", bob, "yo"),
    ]
    hi = {"chat": name, "text": "hi", "sender": alice, "send_time": sent.json()["send_time"]}
    assert on_laptop["events"][0] == {"type": "message", "chat": name, "message": hi}
    read = {"chat": name, "user": alice, "send_time": bobs.json()["send_time"]}
    assert (await client.post("/api/read", json=read)).status_code == 200
    on_phone = await _sync(client, user=alice, since=phone)
    assert [e["type"] for e in on_phone["events"]] == ["message", "message", "read"]
    assert on_phone["events"][2] == {
        "type": "read",
        "chat": name,
        "read_until": bobs.json()["send_time"],
    }
    again = await _sync(client, user=alice, since=on_phone["next"])
    assert (again["events"], again["has_more"]) == ([], False)


async def test_a_sync_long_poll_answers_when_a_message_comes(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, ann, bob = chat
    token = (await _sync(client, user=ann))["next"]
    started = time.monotonic()
    waiting = asyncio.create_task(
        client.get("/api/sync", params={"user": ann, "since": token, "wait_ms": 5000})
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await client.post("/api/send", json={"chat": name, "sender": bob, "text": "ping"})
    answer = await asyncio.wait_for(waiting, 4)
    assert time.monotonic() - started < 4
    assert [e["message"]["text"] for e in answer.json()["events"]] == ["ping"]
    quiet = await client.get(
        "/api/sync", params={"user": ann, "since": answer.json()["next"], "wait_ms": 200}
    )
    assert quiet.json()["events"] == []


async def test_pages_are_full_while_has_more_and_a_token_replays_its_page(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, ann, bob = chat
    token = (await _sync(client, user=bob))["next"]
    for i in range(5):
        await client.post("/api/send", json={"chat": name, "sender": ann, "text": f"m{i}"})
    first = await _sync(client, user=bob, since=token, limit=2)
    assert (len(first["events"]), first["has_more"]) == (2, True)
    assert (await _sync(client, user=bob, since=token, limit=2)) == first  # a retry: the same
    texts, since = [], token
    for _ in range(5):
        page = await _sync(client, user=bob, since=since, limit=2)
        texts += [e["message"]["text"] for e in page["events"]]
        since = page["next"]
        if not page["has_more"]:
            break
    assert texts == [f"m{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"user": "a", "since": "not-a-token"}, 400, "invalid_since"),
        ({"user": "a", "limit": 1001}, 400, "invalid_limit"),
        ({"user": "a", "limit": -1}, 400, "invalid_limit"),
        ({"user": "a", "since": "x", "wait_ms": 30001}, 400, "invalid_wait_ms"),
        ({}, 400, "missing_parameter"),
        ({"user": "has space"}, 400, "invalid_user"),
    ],
)
async def test_bad_syncs_answer_their_codes(
    client: httpx.AsyncClient, params: dict[str, Any], status: int, code: str
) -> None:
    answer = await client.get("/api/sync", params=params)
    assert (answer.status_code, answer.json()["error"]) == (status, code), answer.text
    assert answer.json()["message"].split(" ")[0].strip(":") in {*params, "user"}


async def test_another_users_token_is_invalid_and_a_dropped_feed_is_a_reset(
    client: httpx.AsyncClient, chat: Chat, e2e_redis: aioredis.Redis
) -> None:
    _, ann, bob = chat
    token = (await _sync(client, user=ann))["next"]
    other = await client.get("/api/sync", params={"user": bob, "since": token})
    assert (other.status_code, other.json()["error"]) == (400, "invalid_since")
    await e2e_redis.delete(feed_key(ann))  # what IM_SYNC_IDLE_S does to a quiet user's feed
    gone = await client.get("/api/sync", params={"user": ann, "since": token})
    assert (gone.status_code, gone.json()["error"]) == (410, "sync_reset"), gone.text
    assert gone.json()["message"].startswith("since: ")
