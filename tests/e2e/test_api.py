"""The HTTP API of the contract, through the real gateway, im-rpc and Redis."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e
Chat = tuple[str, str, str]


async def _send(client: httpx.AsyncClient, chat: str, sender: str, text: str) -> int:
    r = await client.post("/api/send", json={"chat": chat, "sender": sender, "text": text})
    assert r.status_code == 200, r.text
    return int(r.json()["send_time"])


async def test_ping_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ping")).json() == {"message": "pong"}
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    for answer in (health, ready):
        assert answer.headers["content-type"] == "application/json"


async def test_send_answers_the_canonical_chat_and_a_time(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, first, second = chat
    r = await client.post(
        "/api/send", json={"chat": f"{second}:{first}", "sender": second, "text": "hi"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"chat", "send_time"}
    assert body["chat"] == name
    assert isinstance(body["send_time"], int)
    assert body["send_time"] > 1_600_000_000_000_000


@pytest.mark.parametrize("how", ["json", "form", "multipart", "query"])
async def test_every_parameter_source_works(
    client: httpx.AsyncClient, chat: Chat, how: str
) -> None:
    name, first, _ = chat
    fields = {"chat": name, "sender": first, "text": f"via {how} ✓"}
    if how == "json":
        r = await client.post("/api/send", json=fields)
    elif how == "form":
        r = await client.post("/api/send", data=fields)
    elif how == "multipart":
        r = await client.post("/api/send", files={k: (None, v) for k, v in fields.items()})
    else:
        r = await client.post("/api/send", params=fields)
    assert r.status_code == 200, r.text
    page = (await client.get("/api/pull", params={"chat": name})).json()
    assert [(m["text"], m["sender"], m["chat"]) for m in page["messages"]] == [
        (f"via {how} ✓", first, name)
    ]


async def test_pull_defaults_and_paging(client: httpx.AsyncClient, chat: Chat) -> None:
    name, first, second = chat
    times = [await _send(client, name, (first, second)[i % 2], f"m{i}") for i in range(12)]
    for params in ({"chat": name}, {"chat": name, "limit": "0"}):
        page = (await client.get("/api/pull", params=params)).json()
        assert [m["send_time"] for m in page["messages"]] == times[:10]
        assert (page["has_more"], page["next_cursor"]) == (True, times[10])
    rest = (await client.get("/api/pull", params={"chat": name, "cursor": times[10]})).json()
    assert [m["text"] for m in rest["messages"]] == ["m10", "m11"]
    assert (rest["has_more"], rest["next_cursor"]) == (False, times[11] + 1)
    newest = (
        await client.get("/api/pull", params={"chat": name, "reverse": "TRUE", "limit": 3})
    ).json()
    assert [m["text"] for m in newest["messages"]] == ["m11", "m10", "m9"]
    assert (newest["has_more"], newest["next_cursor"]) == (True, times[8])
    older = (
        await client.get("/api/pull", params={"chat": name, "reverse": "1", "cursor": times[1]})
    ).json()
    assert [m["text"] for m in older["messages"]] == ["m1", "m0"]
    assert (older["has_more"], older["next_cursor"]) == (False, 0)


async def test_a_chat_nobody_wrote_to_is_an_empty_page(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/pull", params={"chat": "nobody:here", "cursor": "42"})
    assert (r.status_code, r.json()) == (
        200,
        {"messages": [], "has_more": False, "next_cursor": 42},
    )


async def test_a_repeated_send_with_the_same_key_is_stored_once(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    name, first, second = chat
    body = {"chat": name, "sender": first, "text": "once", "client_msg_id": "k1"}
    answers = [(await client.post("/api/send", json=body)).json() for _ in range(3)]
    header = {"Idempotency-Key": "k2"}
    by_header = [
        (
            await client.post(
                "/api/send", data={"chat": name, "sender": first, "text": "twice"}, headers=header
            )
        ).json()
        for _ in range(2)
    ]
    other = await client.post("/api/send", json={**body, "sender": second})
    assert answers[0] == answers[1] == answers[2]
    assert by_header[0] == by_header[1]
    assert other.json()["send_time"] != answers[0]["send_time"]
    page = (await client.get("/api/pull", params={"chat": name})).json()
    assert [m["text"] for m in page["messages"]] == ["once", "twice", "once"]


async def test_both_gateways_see_every_message(stack: Stack, chat: Chat) -> None:
    name, first, _ = chat
    async with httpx.AsyncClient(timeout=10) as c:
        sent = [
            (
                await c.post(
                    f"{stack.url(i % 2)}/api/send",
                    json={"chat": name, "sender": first, "text": str(i)},
                )
            ).json()
            for i in range(6)
        ]
        for i in range(2):
            page = (await c.get(f"{stack.url(i)}/api/pull", params={"chat": name})).json()
            assert [m["send_time"] for m in page["messages"]] == [s["send_time"] for s in sent]


async def test_metrics_count_requests_by_route_and_status(client: httpx.AsyncClient) -> None:
    await client.get("/api/pull", params={"chat": "x"})
    text = (await client.get("/metrics")).text
    assert 'im_http_requests_total{method="GET",route="/api/pull",status="400"}' in text
    assert "im_rpc_call_duration_seconds_bucket" in text


def _young_collections(metrics: str) -> float:
    line = re.search(r'^python_gc_collections_total\{generation="0"\} (\S+)$', metrics, re.M)
    assert line, metrics
    return float(line.group(1))


async def test_the_gateway_collects_garbage_every_gc_threshold_allocations(
    client: httpx.AsyncClient,
) -> None:
    # waiting calls keep what they allocated: with 200 long polls at once the gateway made
    # 14 to 55 young collections at CPython's default threshold (700), none at 50,000
    before = _young_collections((await client.get("/metrics")).text)
    params: dict[str, str | int] = {"chat": "gc:check", "cursor": 1, "wait_ms": 500}
    polls = [client.get("/api/pull", params=params) for _ in range(200)]
    assert {r.status_code for r in await asyncio.gather(*polls)} == {200}
    after = _young_collections((await client.get("/metrics")).text)
    assert after - before < 5  # IM_GC_THRESHOLD 50,000


async def test_the_openapi_document_describes_the_api(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    assert {"/ping", "/api/send", "/api/pull"} <= set(doc["paths"])
    params = {p["name"] for p in doc["paths"]["/api/pull"]["get"]["parameters"]}
    assert params == {"chat", "cursor", "limit", "reverse", "wait_ms", "X-Request-ID"}


async def test_a_long_poll_answers_with_the_next_message(
    client: httpx.AsyncClient, chat: tuple[str, str, str]
) -> None:
    name, sender, _other = chat
    started = time.monotonic()
    poll = asyncio.create_task(client.get("/api/pull", params={"chat": name, "wait_ms": 5000}))
    await asyncio.sleep(0.3)
    sent = await client.post("/api/send", json={"chat": name, "sender": sender, "text": "now"})
    page = (await poll).json()
    assert [m["send_time"] for m in page["messages"]] == [sent.json()["send_time"]]
    assert time.monotonic() - started < 2.0
    after = {"chat": name, "cursor": page["next_cursor"], "wait_ms": 200}
    empty = await client.get("/api/pull", params=after)
    assert empty.json() == {"messages": [], "has_more": False, "next_cursor": page["next_cursor"]}
    bad = await client.get("/api/pull", params={"chat": name, "wait_ms": 30_001})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_wait_ms")


async def test_a_long_poll_pages_like_a_pull(client: httpx.AsyncClient, chat: Chat) -> None:
    name, first, second = chat
    times = [await _send(client, name, (first, second)[i % 2], f"m{i}") for i in range(4)]
    started = time.monotonic()
    page = (
        await client.get("/api/pull", params={"chat": name, "limit": 2, "wait_ms": 5000})
    ).json()
    assert [m["text"] for m in page["messages"]] == ["m0", "m1"]  # there is a page: no wait
    assert (page["has_more"], page["next_cursor"]) == (True, times[2])
    rest: dict[str, str | int] = {"chat": name, "cursor": times[2], "limit": 5, "wait_ms": 5000}
    page = (await client.get("/api/pull", params=rest)).json()
    assert [m["text"] for m in page["messages"]] == ["m2", "m3"]
    assert (page["has_more"], page["next_cursor"]) == (False, times[3] + 1)
    newest: dict[str, str | int] = {"chat": name, "reverse": "true", "limit": 3, "wait_ms": 5000}
    page = (await client.get("/api/pull", params=newest)).json()
    assert [m["text"] for m in page["messages"]] == ["m3", "m2", "m1"]  # reverse never waits
    assert (page["has_more"], page["next_cursor"]) == (True, times[0])
    assert time.monotonic() - started < 2.0  # none of the three waited its 5 s

    # a poll woken by one message sees every message stored by the time it reads, up to limit
    poll = asyncio.create_task(
        client.get(
            "/api/pull", params={"chat": name, "cursor": times[3] + 1, "limit": 1, "wait_ms": 5000}
        )
    )
    await asyncio.sleep(0.3)
    later = [await _send(client, name, first, f"n{i}") for i in range(2)]
    page = (await poll).json()
    assert [m["send_time"] for m in page["messages"]] == later[:1]
    assert page["next_cursor"] in (later[0] + 1, later[1])  # limit 1: at most one, either way
    assert page["has_more"] is (page["next_cursor"] == later[1])


async def test_metrics_time_each_rpc_method_by_its_name(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    """Batches, long polls and health checks are timed, each under its own name."""
    name, first, _ = chat
    sent = await _send(client, name, first, "timed")
    calls: list[tuple[str, dict[str, str | int]]] = [
        ("/api/pull", {"chat": name}),
        ("/api/pull", {"chat": name, "cursor": sent + 1, "wait_ms": 1}),
        ("/api/chats", {"user": first}),
        ("/readyz", {}),
    ]
    for path, params in calls:
        assert (await client.get(path, params=params)).status_code == 200
    read = {"chat": name, "user": first, "send_time": sent}
    assert (await client.post("/api/read", json=read)).status_code == 200
    text = (await client.get("/metrics")).text
    timed = set(
        re.findall(r'im_rpc_call_duration_seconds_count\{method="(\w+)",outcome="OK"\}', text)
    )
    assert timed == {"batch_stream", "wait", "health"}


async def test_nginx_retry_key_dedups_a_send_when_it_is_plausible(
    client: httpx.AsyncClient, chat: Chat
) -> None:
    """X-IM-Retry-Key (nginx's $request_id, the same on both attempts of a request) counts
    when it is 1..64 printable ASCII characters; any other is ignored."""
    name, first, _ = chat
    body = {"chat": name, "sender": first, "text": "retried"}
    stored = 0
    keys = ((b"r", True), (b"k" * 64, True), (b"k" * 65, False), ("ééé".encode(), False))
    for key, once in keys:
        headers = {b"X-IM-Retry-Key": key}
        answers = [
            (await client.post("/api/send", json=body, headers=headers)).json() for _ in range(2)
        ]
        assert (answers[0] == answers[1]) is once, key
        stored += 1 if once else 2
    page = (await client.get("/api/pull", params={"chat": name, "limit": 100})).json()
    assert len(page["messages"]) == stored
