"""Every kind of bad input: a 4xx with {"error", "message"}, never a 5xx, nothing stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tests.conftest import key_count

pytestmark = pytest.mark.e2e

OK = {"chat": "eve:mallory", "sender": "eve", "text": "hi"}
FORM = "application/x-www-form-urlencoded"


def _send(**kwargs: Any) -> tuple[str, str, dict[str, Any]]:
    return ("POST", "/api/send", kwargs)


def _pull(**kwargs: Any) -> tuple[str, str, dict[str, Any]]:
    return ("GET", "/api/pull", kwargs)


CASES: list[tuple[str, tuple[str, str, dict[str, Any]], int, str]] = [
    ("no chat", _send(json={"sender": "eve", "text": "x"}), 400, "missing_parameter"),
    ("no sender", _send(json={"chat": OK["chat"], "text": "x"}), 400, "missing_parameter"),
    ("no text", _send(json={"chat": OK["chat"], "sender": "eve"}), 400, "missing_parameter"),
    ("no ':'", _send(json={**OK, "chat": "eve"}), 400, "invalid_chat"),
    ("two ':'", _send(json={**OK, "chat": "eve:mallory:x"}), 400, "invalid_chat"),
    ("empty member", _send(json={**OK, "chat": "eve:"}), 400, "invalid_chat"),
    ("space", _send(json={**OK, "chat": "eve :mallory"}), 400, "invalid_chat"),
    ("control char", _send(json={**OK, "chat": "eve:mal\u0007lory"}), 400, "invalid_chat"),
    ("long member", _send(json={**OK, "chat": "eve:" + "m" * 65}), 400, "invalid_chat"),
    ("DEL", _send(json={**OK, "chat": "eve:mal\x7flory"}), 400, "invalid_chat"),
    ("C1 control", _send(json={**OK, "chat": "eve:mal\x9blory"}), 400, "invalid_chat"),
    ("zero width", _send(json={**OK, "chat": "eve:mal\u200blory"}), 400, "invalid_chat"),
    ("bidi override", _send(json={**OK, "chat": "eve:\u202emallory"}), 400, "invalid_chat"),
    ("BOM", _send(json={**OK, "chat": "\ufeffeve:mallory"}), 400, "invalid_chat"),
    ("NFD member", _send(json={**OK, "chat": "eve:mallory\u0301"}), 400, "invalid_chat"),
    ("NFD user", ("GET", "/api/chats", {"params": {"user": "e\u0301ve"}}), 400, "invalid_user"),
    ("chat not a string", _send(json={**OK, "chat": 7}), 400, "invalid_chat"),
    ("stranger", _send(json={**OK, "sender": "trudy"}), 400, "sender_not_in_chat"),
    ("empty text", _send(json={**OK, "text": ""}), 400, "invalid_text"),
    ("text a list", _send(json={**OK, "text": ["x"]}), 400, "invalid_text"),
    ("text too long", _send(json={**OK, "text": "é" * 2049}), 400, "text_too_long"),
    ("empty key", _send(json={**OK, "client_msg_id": ""}), 400, "invalid_client_msg_id"),
    ("long key", _send(json={**OK, "client_msg_id": "k" * 65}), 400, "invalid_client_msg_id"),
    (
        "long header key",
        _send(json=OK, headers={"Idempotency-Key": "k" * 65}),
        400,
        "invalid_client_msg_id",
    ),
    (
        "broken JSON",
        _send(content=b'{"chat":', headers={"content-type": "application/json"}),
        400,
        "invalid_json",
    ),
    ("JSON array", _send(json=[OK]), 400, "invalid_json"),
    (
        "JSON bad UTF-8",
        _send(
            content=b'{"chat":"eve:mallory","sender":"eve","text":"\xff"}',
            headers={"content-type": "application/json"},
        ),
        400,
        "invalid_utf8",
    ),
    (
        "form bad UTF-8",
        _send(content=b"chat=eve:mallory&sender=eve&text=\xff", headers={"content-type": FORM}),
        400,
        "invalid_utf8",
    ),
    (
        "form %-escaped bad UTF-8",
        _send(content=b"chat=eve:mallory&sender=eve&text=%ff", headers={"content-type": FORM}),
        400,
        "invalid_utf8",
    ),
    (
        "query bad UTF-8",
        ("POST", "/api/send?chat=eve:mallory&sender=eve&text=%C3%28", {}),
        400,
        "invalid_utf8",
    ),
    (
        "multipart no boundary",
        _send(content=b"x", headers={"content-type": "multipart/form-data"}),
        400,
        "invalid_body",
    ),
    (
        "text/plain body",
        _send(content=b"hi", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    ),
    ("untyped body", _send(content=b"hi"), 415, "unsupported_media_type"),
    ("body too large", _send(json={**OK, "text": "x" * 70_000}), 413, "payload_too_large"),
    ("pull without chat", _pull(params={"limit": "1"}), 400, "missing_parameter"),
    ("pull bad chat", _pull(params={"chat": "a"}), 400, "invalid_chat"),
    ("negative cursor", _pull(params={"chat": "a:b", "cursor": "-1"}), 400, "invalid_cursor"),
    ("huge cursor", _pull(params={"chat": "a:b", "cursor": str(2**63)}), 400, "invalid_cursor"),
    ("word cursor", _pull(params={"chat": "a:b", "cursor": "soon"}), 400, "invalid_cursor"),
    ("limit 1001", _pull(params={"chat": "a:b", "limit": "1001"}), 400, "invalid_limit"),
    ("limit -1", _pull(params={"chat": "a:b", "limit": "-1"}), 400, "invalid_limit"),
    ("limit 2^40", _pull(params={"chat": "a:b", "limit": str(2**40)}), 400, "invalid_limit"),
    ("reverse maybe", _pull(params={"chat": "a:b", "reverse": "maybe"}), 400, "invalid_reverse"),
    ("chats no user", ("GET", "/api/chats", {}), 400, "missing_parameter"),
    ("chats user a:b", ("GET", "/api/chats", {"params": {"user": "a:b"}}), 400, "invalid_user"),
    (
        "chats limit 0x",
        ("GET", "/api/chats", {"params": {"user": "a", "limit": "0x"}}),
        400,
        "invalid_limit",
    ),
    (
        "read no time",
        ("POST", "/api/read", {"json": {"chat": "a:b", "user": "a"}}),
        400,
        "missing_parameter",
    ),
    (
        "read stranger",
        ("POST", "/api/read", {"json": {"chat": "a:b", "user": "c", "send_time": 1}}),
        400,
        "user_not_in_chat",
    ),
    (
        "read time -1",
        ("POST", "/api/read", {"json": {"chat": "a:b", "user": "a", "send_time": -1}}),
        400,
        "invalid_send_time",
    ),
    ("GET read", ("GET", "/api/read", {"params": {"chat": "a:b"}}), 405, "method_not_allowed"),
    ("GET send", ("GET", "/api/send", {"params": OK}), 405, "method_not_allowed"),
    ("unknown path", ("GET", "/api/nothing", {}), 404, "not_found"),
]


@pytest.mark.parametrize(("name", "request_", "status", "code"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_a_4xx_with_the_json_error_shape_and_stores_nothing(
    client: httpx.AsyncClient,
    e2e_redis: aioredis.Redis,
    name: str,
    request_: tuple[str, str, dict[str, Any]],
    status: int,
    code: str,
) -> None:
    keys_before = await key_count(e2e_redis)
    method, path, kwargs = request_
    r = await client.request(method, path, **kwargs)
    assert (r.status_code, r.headers["content-type"]) == (status, "application/json"), r.text
    body = r.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    # other tests' idempotency keys may expire meanwhile (the session's Redis is shared)
    assert await key_count(e2e_redis) <= keys_before
    assert await e2e_redis.exists("im:{eve:mallory}:s", "im:{eve:mallory}:m") == 0


MULTIPART = "multipart/form-data; boundary=b"
PART = b'--b\r\nContent-Disposition: form-data; name="text"\r\n%s\r\n%s\r\n--b--\r\n'
MEDIA = (
    "the body must be application/json, application/x-www-form-urlencoded "
    "or multipart/form-data, not {}"
)
MESSAGES: list[tuple[str, tuple[str, str, dict[str, Any]], int, str, str]] = [
    ("JSON array", _send(json=[OK]), 400, "invalid_json", "the JSON body must be an object"),
    ("form bad UTF-8", _send(content=b"text=%ff", headers={"content-type": FORM}), 400,
     "invalid_utf8", "the body is not valid UTF-8"),
    ("raw bad UTF-8", _send(content=b"text=\xff", headers={"content-type": FORM}), 400,
     "invalid_utf8", "the body is not valid UTF-8"),
    ("query bad UTF-8", ("POST", "/api/send?text=%ff", {}), 400, "invalid_utf8",
     "the query string is not valid UTF-8"),
    ("no boundary", _send(content=b"x", headers={"content-type": "multipart/form-data"}), 400,
     "invalid_body", "multipart/form-data needs a boundary"),
    ("part bad UTF-8", _send(content=PART % (b"", b"\xff"), headers={"content-type": MULTIPART}),
     400, "invalid_utf8", "a form field is not valid UTF-8"),
    ("part charset", _send(content=PART % (b"Content-Type: text/plain; charset=nope\r\n", b"x"),
     headers={"content-type": MULTIPART}), 400, "invalid_body", "the multipart body is malformed"),
    ("part head", _send(content=b"--b\r\nno colon\r\n\r\nx\r\n--b--\r\n",
     headers={"content-type": MULTIPART}), 400, "invalid_body", "the multipart body is malformed"),
    ("part utf-7", _send(content=PART % (b"Content-Type: text/plain; charset=utf-7\r\n", b"+2AA-"),
     headers={"content-type": MULTIPART}), 400, "invalid_utf8", "a form field is not valid UTF-8"),
    ("header byte", _send(json=OK, headers={"Idempotency-Key": b"\xff"}), 400, "invalid_utf8",
     "the Idempotency-Key header is not valid UTF-8"),
    ("empty form text", _send(data={**OK, "text": ""}), 400, "invalid_text",
     "text must not be empty"),
    ("text/plain", _send(content=b"hi", headers={"content-type": "text/plain"}), 415,
     "unsupported_media_type", MEDIA.format("'text/plain'")),
    ("untyped", _send(content=b"hi"), 415, "unsupported_media_type",
     MEDIA.format("without a content type")),
    ("empty key", _send(json={**OK, "client_msg_id": ""}), 400, "invalid_client_msg_id",
     "client_msg_id must not be empty"),
    ("empty header key", _send(json=OK, headers={"Idempotency-Key": ""}), 400,
     "invalid_client_msg_id", "client_msg_id must not be empty"),
    ("wait 30001", _pull(params={"chat": "a:b", "wait_ms": "30001"}), 400, "invalid_wait_ms",
     "wait_ms must be 0..30000"),
    ("limit 2^31", _pull(params={"chat": "a:b", "limit": str(2**31)}), 400, "invalid_limit",
     "limit must be 0..2147483647"),
    ("cursor 2^63", _pull(params={"chat": "a:b", "cursor": str(2**63)}), 400, "invalid_cursor",
     f"cursor must be 0..{2**63 - 1}"),
    ("limit 1001", _pull(params={"chat": "a:b", "limit": "1001"}), 400, "invalid_limit",
     "limit must be 1..1000 (0 for the default)"),
    ("read no time", ("POST", "/api/read", {"json": {"chat": "a:b", "user": "a"}}), 400,
     "missing_parameter", "send_time is required"),
    ("chats no user", ("GET", "/api/chats", {"params": {"limit": "2"}}), 400,
     "missing_parameter", "user is required"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "request_", "status", "code", "message"), MESSAGES, ids=[m[0] for m in MESSAGES]
)
async def test_the_gateways_own_answers_name_what_is_wrong(
    client: httpx.AsyncClient,
    name: str,
    request_: tuple[str, str, dict[str, Any]],
    status: int,
    code: str,
    message: str,
) -> None:
    method, path, kwargs = request_
    r = await client.request(method, path, **kwargs)
    assert (r.status_code, r.json()) == (status, {"error": code, "message": message})


async def test_a_json_body_that_is_not_utf8_is_invalid_utf8(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/send", content=b'{"text":"\xff"}', headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()) == (
        400,
        {"error": "invalid_utf8", "message": "the body is not valid UTF-8"},
    )


async def test_a_405_says_which_methods_are_allowed(client: httpx.AsyncClient) -> None:
    for method, path, allowed in (
        ("GET", "/api/send", "POST"),
        ("DELETE", "/api/pull", "GET, HEAD"),
        ("PUT", "/api/read", "POST"),
    ):
        r = await client.request(method, path)
        assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
        assert sorted(r.headers["allow"].split(", ")) == sorted(allowed.split(", "))


async def test_head_answers_every_get_route_without_a_body(client: httpx.AsyncClient) -> None:
    for path in ("/ping", "/healthz", "/api/pull?chat=a:b", "/api/chats?user=a", "/openapi.json"):
        get, head = await client.get(path), await client.head(path)
        assert (head.status_code, head.content) == (200, b""), path
        assert head.headers["content-type"] == get.headers["content-type"]
    assert (await client.head("/api/pull")).status_code == 400  # the same checks as GET


async def test_a_head_over_the_limit_is_431(client: httpx.AsyncClient) -> None:
    r = await client.get("/ping", headers={"x-big": "a" * 9000})
    assert (r.status_code, r.json()) == (
        431,
        {"error": "header_too_large", "message": "the request head is too large"},
    )
