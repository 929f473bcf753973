"""Where parameters come from, on every route and method: a JSON, form or multipart body
(GET included, as the original assignment's clients send them), or the query string. The
body wins over the query string, a JSON null counts as absent, and a name repeated within
one source counts its first value. Each case is chosen so that reading the wrong source
gives a different answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest

pytestmark = pytest.mark.e2e
Chat = tuple[str, str, str]
SOURCES = ["json", "form", "multipart"]


def _body(how: str, fields: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments carrying `fields` as a body of kind `how`."""
    if how == "json":
        return {"json": fields}
    text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}
    if how == "form":
        return {"data": text}
    return {"files": {k: (None, v) for k, v in text.items()}}


async def _three(client: httpx.AsyncClient, chat: Chat) -> list[int]:
    """Send m0, m1, m2 to `chat`; their send_times."""
    name, first, second = chat
    times = []
    for i, sender in enumerate((first, second, first)):
        r = await client.post("/api/send", json={"chat": name, "sender": sender, "text": f"m{i}"})
        assert r.status_code == 200, r.text
        times.append(r.json()["send_time"])
    return times


@pytest.mark.parametrize("how", SOURCES)
async def test_a_pull_reads_every_parameter_from_a_body(
    client: httpx.AsyncClient, chat: Chat, how: str
) -> None:
    times = await _three(client, chat)
    fields = {"chat": chat[0], "cursor": times[1], "limit": 1, "reverse": True}
    r = await client.request("GET", "/api/pull", **_body(how, fields))
    assert r.status_code == 200, r.text
    page = r.json()
    # cursor, limit and reverse each change the answer: the defaults would give m0, m1, m2
    assert [m["text"] for m in page["messages"]] == ["m1"]
    assert (page["has_more"], page["next_cursor"]) == (True, times[0])


@pytest.mark.parametrize("how", SOURCES)
async def test_a_long_poll_reads_wait_ms_from_a_body(
    client: httpx.AsyncClient, chat: Chat, how: str
) -> None:
    times = await _three(client, chat)
    fields = {"chat": chat[0], "cursor": times[2] + 1, "wait_ms": 5000}
    started = time.monotonic()
    poll = asyncio.create_task(client.request("GET", "/api/pull", **_body(how, fields)))
    await asyncio.sleep(0.3)
    assert not poll.done()  # it waits: wait_ms was read
    sent = await client.post("/api/send", json={"chat": chat[0], "sender": chat[1], "text": "m3"})
    page = (await poll).json()
    assert [m["send_time"] for m in page["messages"]] == [sent.json()["send_time"]]
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("how", SOURCES)
async def test_the_inbox_reads_its_parameters_from_a_body(
    client: httpx.AsyncClient, chat: Chat, how: str
) -> None:
    _, user, _ = chat
    for peer in ("p1", "p2", "p3"):
        r = await client.post(
            "/api/send", json={"chat": f"{user}:{peer}", "sender": peer, "text": "x"}
        )
        assert r.status_code == 200
    r = await client.request("GET", "/api/chats", **_body(how, {"user": user, "limit": 2}))
    assert r.status_code == 200, r.text
    page = r.json()
    assert [c["chat"].replace(user, "") for c in page["chats"]] == [":p3", ":p2"]
    assert page["has_more"] is True


@pytest.mark.parametrize("how", SOURCES)
async def test_the_body_wins_over_the_query_string_on_every_route(
    client: httpx.AsyncClient, chat: Chat, how: str
) -> None:
    name, first, second = chat
    times = await _three(client, chat)
    query = {"chat": name, "limit": "3", "reverse": "false"}
    r = await client.request(
        "GET", "/api/pull", params=query, **_body(how, {"limit": 2, "reverse": True})
    )
    assert [m["text"] for m in r.json()["messages"]] == ["m2", "m1"]

    sent = await client.post(
        "/api/send",
        params={"chat": name, "sender": first, "text": "from the query"},
        **_body(how, {"sender": second, "text": "from the body"}),
    )
    assert sent.status_code == 200, sent.text
    newest = (
        await client.get("/api/pull", params={"chat": name, "reverse": "1", "limit": 1})
    ).json()
    assert [(m["sender"], m["text"]) for m in newest["messages"]] == [(second, "from the body")]

    read = await client.post(
        "/api/read",
        params={"chat": name, "user": first, "send_time": str(times[2])},
        **_body(how, {"user": second, "send_time": times[0]}),
    )
    assert read.json() == {"chat": name, "user": second, "read_until": times[0]}

    inbox = await client.request(
        "GET", "/api/chats", params={"user": "nobody-at-all"}, **_body(how, {"user": first})
    )
    assert [c["chat"] for c in inbox.json()["chats"]] == [name]


async def test_a_json_null_counts_as_absent(client: httpx.AsyncClient, chat: Chat) -> None:
    name, first, _ = chat
    times = await _three(client, chat)
    sent = await client.post(
        "/api/send",
        params={"text": "from the query"},
        json={"chat": name, "sender": first, "text": None, "client_msg_id": None},
    )
    assert sent.status_code == 200, sent.text
    r = await client.request(
        "GET", "/api/pull", params={"limit": "1"}, json={"chat": name, "limit": None}
    )
    assert [m["text"] for m in r.json()["messages"]] == ["m0"]  # the query's limit=1
    r = await client.request("GET", "/api/pull", json={"chat": name, "cursor": None, "limit": None})
    assert [m["send_time"] for m in r.json()["messages"]] == [*times, sent.json()["send_time"]]
    missing = await client.post("/api/send", json={"chat": name, "sender": first, "text": None})
    assert (missing.status_code, missing.json()["error"]) == (400, "missing_parameter")


@pytest.mark.parametrize("how", ["query", "form"])
async def test_a_repeated_name_counts_its_first_value(
    client: httpx.AsyncClient, chat: Chat, how: str
) -> None:
    name, first, second = chat
    await _three(client, chat)
    form = {"content-type": "application/x-www-form-urlencoded"}
    raw = f"chat={name}&limit=1&limit=3&reverse=true&reverse=false".encode()
    if how == "query":
        r = await client.get(f"/api/pull?{raw.decode()}")
    else:
        r = await client.request("GET", "/api/pull", content=raw, headers=form)
    assert [m["text"] for m in r.json()["messages"]] == ["m2"]
    sent = f"chat={name}&sender={second}&sender={first}&text=a&text=b"
    if how == "query":
        r = await client.post(f"/api/send?{sent}")
    else:
        r = await client.post("/api/send", content=sent.encode(), headers=form)
    assert r.status_code == 200, r.text
    newest = (
        await client.get("/api/pull", params={"chat": name, "reverse": "1", "limit": 1})
    ).json()
    assert [(m["sender"], m["text"]) for m in newest["messages"]] == [(second, "a")]


async def test_a_name_repeated_in_a_json_object_counts_its_first_value(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, _, second = chat
    await _three(client, chat)
    body = f'{{"chat":"{name}","limit":1,"limit":3,"reverse":true}}'.encode()
    json_type = {"content-type": "application/json"}
    r = await client.request("GET", "/api/pull", content=body, headers=json_type)
    assert [m["text"] for m in r.json()["messages"]] == ["m2"]
    escaped = f'{{"chat":"{name}","sender":"{second}","text":"a","te\\u0078t":"b"}}'.encode()
    r = await client.post("/api/send", content=escaped, headers=json_type)
    assert r.status_code == 200, r.text
    newest = await client.get("/api/pull", params={"chat": name, "reverse": "1", "limit": 1})
    assert [m["text"] for m in newest.json()["messages"]] == ["a"]


async def test_a_json_body_of_a_json_subtype_is_read(client: httpx.AsyncClient, chat: Chat) -> None:
    name, first, _ = chat
    for content_type in ("application/vnd.im+json", "application/json; charset=utf-8"):
        body = orjson.dumps({"chat": name, "sender": first, "text": content_type})
        r = await client.post("/api/send", content=body, headers={"content-type": content_type})
        assert r.status_code == 200, r.text
    page = (await client.get("/api/pull", params={"chat": name})).json()
    assert [m["text"] for m in page["messages"]] == [
        "application/vnd.im+json",
        "application/json; charset=utf-8",
    ]
