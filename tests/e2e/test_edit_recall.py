"""POST /api/edit and POST /api/recall through the real gateways and im-rpc, on every stack
(one Redis behind two of each, the Redis Cluster, in process): the message keeps its place,
pulls, the inbox and sync show its current state, and each error the contract names."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e
Chat = tuple[str, str, str]
_ids = itertools.count()
_RUN = uuid.uuid4().hex[:6]  # other modules' users share the session's Redis


async def _ok(client: httpx.AsyncClient, method: str, path: str, **params: Any) -> Any:
    answer = await client.request(method, path, json=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def _error(client: httpx.AsyncClient, path: str, **params: Any) -> tuple[int, str, str]:
    answer = await client.post(path, json=params)
    body = answer.json()
    return answer.status_code, body["error"], body["message"]


async def _send(client: httpx.AsyncClient, chat: str, sender: str, text: str) -> int:
    sent = await _ok(client, "POST", "/api/send", chat=chat, sender=sender, text=text)
    return int(sent["send_time"])


async def _pull(client: httpx.AsyncClient, chat: str, **params: Any) -> dict[str, Any]:
    answer = await client.get("/api/pull", params={"chat": chat, **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def _sync(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    answer = await client.get("/api/sync", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_an_edit_shows_in_pulls_the_inbox_and_sync_and_keeps_the_place(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, ann, bob = chat
    token = (await _sync(client, user=bob))["next"]
    first = await _send(client, name, ann, "helo")
    second = await _send(client, name, bob, "hi")
    edited = await _ok(
        client, "POST", "/api/edit", chat=name, sender=ann, send_time=first, text="hello"
    )
    assert set(edited) == {"chat", "send_time", "edited_at"}
    assert (edited["chat"], edited["send_time"]) == (name, first)
    again = await _ok(
        client, "POST", "/api/edit", chat=name, sender=ann, send_time=first, text="hello"
    )
    assert again["edited_at"] > edited["edited_at"]  # the same text: still a new edit
    page = await _pull(client, name)
    assert page["messages"] == [
        {"chat": name, "text": "hello", "sender": ann, "send_time": first,
         "edited_at": again["edited_at"]},
        {"chat": name, "text": "hi", "sender": bob, "send_time": second},
    ]  # fmt: skip
    assert (page["has_more"], page["next_cursor"]) == (False, second + 1)
    late = await _send(client, name, bob, "and you?")
    await _ok(client, "POST", "/api/edit", chat=name, sender=bob, send_time=late, text="& you?")
    inbox = await client.get("/api/chats", params={"user": ann})
    (row,) = [r for r in inbox.json()["chats"] if r["chat"] == name]
    assert row["last_message"]["text"] == "& you?"
    assert "edited_at" in row["last_message"]
    assert row["unread"] == 2
    synced = await _sync(client, user=bob, since=token)
    kinds = [(e["type"], e.get("message", {}).get("send_time")) for e in synced["events"]]
    assert kinds == [
        ("message", first), ("message", second), ("edit", first), ("edit", first),
        ("message", late), ("edit", late),
    ]  # fmt: skip
    for event in synced["events"]:  # each shows the message as it is now
        if event["message"]["send_time"] == first:
            assert event["message"]["text"] == "hello"
            assert event["message"]["edited_at"] == again["edited_at"]


async def test_a_recall_leaves_a_placeholder_everywhere_and_still_counts_as_unread(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, ann, bob = chat
    token = (await _sync(client, user=bob))["next"]
    kept = await _send(client, name, ann, "keep")
    gone = await _send(client, name, ann, "oops, my password")
    recalled = await _ok(client, "POST", "/api/recall", chat=name, user=ann, send_time=gone)
    assert recalled == {"chat": name, "send_time": gone, "recalled": True}
    placeholder = {"chat": name, "sender": ann, "send_time": gone, "text": "", "recalled": True}
    assert (await _pull(client, name))["messages"][1] == placeholder
    newest = await _pull(client, name, reverse="true", limit=1)
    assert (newest["messages"], newest["has_more"]) == ([placeholder], True)
    assert (await _pull(client, name, reverse="true", limit=1, cursor=newest["next_cursor"]))[
        "messages"
    ][0]["text"] == "keep"
    inbox = await client.get("/api/chats", params={"user": bob})
    (row,) = [r for r in inbox.json()["chats"] if r["chat"] == name]
    assert (row["last_message"], row["unread"]) == (placeholder, 2)
    twice = await _ok(client, "POST", "/api/recall", chat=name, user=ann, send_time=gone)
    assert twice == recalled
    edit = await _error(client, "/api/edit", chat=name, sender=ann, send_time=gone, text="x")
    assert edit[:2] == (409, "recalled")
    events = (await _sync(client, user=bob, since=token))["events"]
    assert events[0]["message"]["send_time"] == kept
    assert events[1] == {"type": "message", "chat": name, "message": placeholder}
    assert events[2] == {"type": "recall", "chat": name, "send_time": gone}
    assert len(events) == 3  # the second recall changed nothing


async def test_only_the_sender_changes_its_message(client: httpx.AsyncClient, chat: Chat) -> None:
    name, ann, bob = chat
    sent = await _send(client, name, ann, "mine")
    by_bob = await _error(client, "/api/edit", chat=name, sender=bob, send_time=sent, text="x")
    assert by_bob[:2] == (403, "forbidden")
    assert by_bob[2].startswith("sender:")
    recall = await _error(client, "/api/recall", chat=name, user=bob, send_time=sent)
    assert recall[:2] == (403, "forbidden")
    assert recall[2].startswith("user:")
    assert (await _pull(client, name))["messages"][0]["text"] == "mine"


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/edit", {"send_time": 1}, 404, "unknown_message"),
        ("/api/recall", {"send_time": 1}, 404, "unknown_message"),
        ("/api/edit", {"send_time": -1}, 400, "invalid_send_time"),
        ("/api/recall", {"send_time": "soon"}, 400, "invalid_send_time"),
        ("/api/edit", {"text": ""}, 400, "invalid_text"),
        ("/api/edit", {"text": None}, 400, "missing_parameter"),
        ("/api/recall", {"send_time": None}, 400, "missing_parameter"),
        ("/api/edit", {"chat": "a:b:c"}, 400, "invalid_chat"),
        ("/api/recall", {"user": "zed"}, 400, "user_not_in_chat"),
        ("/api/edit", {"sender": "zed"}, 400, "sender_not_in_chat"),
    ],
)
async def test_bad_changes_answer_their_codes_and_change_nothing(
    client: httpx.AsyncClient,
    chat: Chat,
    path: str,
    params: dict[str, Any],
    status: int,
    code: str,
) -> None:
    name, ann, _ = chat
    sent = await _send(client, name, ann, "as sent")
    who = "sender" if path == "/api/edit" else "user"
    call: dict[str, Any] = {"chat": name, who: ann, "send_time": sent}
    call |= {"text": "changed"} if path == "/api/edit" else {}
    call |= params
    call = {k: v for k, v in call.items() if v is not None}
    got = await _error(client, path, **call)
    assert got[:2] == (status, code), got
    (message,) = (await _pull(client, name))["messages"]
    assert message == {"chat": name, "text": "as sent", "sender": ann, "send_time": sent}


async def test_in_a_group_the_owner_recalls_anything_and_members_only_their_own(
    client: httpx.AsyncClient,
) -> None:
    n = f"{_RUN}{next(_ids)}"
    group, owner, ann, bob = f"#edits{n}", f"own{n}", f"ann{n}", f"bob{n}"
    await _ok(client, "POST", "/api/groups", chat=group, user=owner)
    for member in (ann, bob):
        await _ok(client, "POST", "/api/groups/add", chat=group, user=owner, member=member)
    by_ann = await _send(client, group, ann, "ann's")
    by_bob = await _send(client, group, bob, "bob's")
    not_hers = await _error(client, "/api/recall", chat=group, user=ann, send_time=by_bob)
    assert not_hers[:2] == (403, "forbidden")
    not_owners = await _error(
        client, "/api/edit", chat=group, sender=owner, send_time=by_ann, text="x"
    )
    assert not_owners[:2] == (403, "forbidden")  # the owner recalls, it does not edit
    await _ok(client, "POST", "/api/edit", chat=group, sender=bob, send_time=by_bob, text="b2")
    await _ok(client, "POST", "/api/recall", chat=group, user=owner, send_time=by_ann)
    outsider = await _error(client, "/api/recall", chat=group, user="zed", send_time=by_ann)
    assert outsider[:2] == (403, "not_a_member")
    missing = await _error(client, "/api/recall", chat=f"#none{n}", user=ann, send_time=by_ann)
    assert missing[:2] == (404, "unknown_group")
    texts = [
        (m["text"], m.get("recalled", False)) for m in (await _pull(client, group))["messages"]
    ]
    assert texts == [("", True), ("b2", False)]
    await _ok(client, "POST", "/api/groups/remove", chat=group, user=bob, member=bob)
    left = await _error(client, "/api/edit", chat=group, sender=bob, send_time=by_bob, text="x")
    assert left[:2] == (403, "not_a_member")  # a member no more
