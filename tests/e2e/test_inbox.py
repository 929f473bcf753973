"""The inbox through the real gateways (each RPC mode), im-rpc and Redis."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e
Chat = tuple[str, str, str]


async def test_chats_list_a_users_chats_newest_first_with_unread_counts(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, ann, bob = chat
    cid = f"cid-{ann}"
    other = ":".join(sorted((ann, cid)))
    times = []
    for chat_, sender in ((name, bob), (name, bob), (other, cid), (name, ann)):
        r = await client.post("/api/send", json={"chat": chat_, "sender": sender, "text": "t"})
        assert r.status_code == 200, r.text
        times.append(r.json()["send_time"])
    r = await client.get("/api/chats", params={"user": ann, "limit": 1})
    assert (r.status_code, r.headers["content-type"]) == (200, "application/json")
    page = r.json()
    last = {"chat": name, "text": "t", "sender": ann, "send_time": times[3]}
    assert page["chats"] == [{"chat": name, "last_message": last, "unread": 2}]
    assert page["has_more"] is True
    r = await client.get("/api/chats", params={"user": ann, "cursor": page["next_cursor"]})
    second = r.json()
    assert [c["chat"] for c in second["chats"]] == [other]
    assert (second["has_more"], second["next_cursor"]) == (False, 0)
    assert second["chats"][0]["unread"] == 1

    r = await client.post("/api/read", json={"chat": name, "user": ann, "send_time": times[0]})
    assert r.json() == {"chat": name, "user": ann, "read_until": times[0]}
    r = await client.post("/api/read", data={"chat": name, "user": ann, "send_time": "1"})
    assert r.json()["read_until"] == times[0]  # never back
    r = await client.get("/api/chats", params={"user": ann})
    assert [c["unread"] for c in r.json()["chats"]] == [1, 1]
    r = await client.get("/api/chats", params={"user": bob})
    assert r.json()["chats"][0]["unread"] == 1  # ann's one message


async def test_a_user_without_chats_has_an_empty_inbox(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/chats", params={"user": "nobody-ever"})
    assert r.json() == {"chats": [], "has_more": False, "next_cursor": 0}


async def test_a_read_at_send_time_zero_reads_nothing(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, ann, bob = chat
    for text in ("a", "b"):
        r = await client.post("/api/send", json={"chat": name, "sender": bob, "text": text})
        assert r.status_code == 200
    where = {"chat": name, "user": ann}
    for r in (
        await client.post("/api/read", params=where, json={"send_time": 0}),
        await client.post("/api/read", params=where, data={"send_time": "0"}),
    ):
        assert (r.status_code, r.json()) == (200, {"chat": name, "user": ann, "read_until": 0})
    r = await client.get("/api/chats", params={"user": ann})
    assert [c["unread"] for c in r.json()["chats"]] == [2]
