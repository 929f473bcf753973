"""Authentication and authorization end to end: gateways with keys configured (HS256
secret, an ES256 + RS256 key set, audience and issuer) in front of an im-rpc that requires
the acting user, reached straight, through nginx, and in the test's own process.

Every token defect is a 401 with WWW-Authenticate on every API route and stores nothing;
a 401 comes before any other 4xx; each authorization rule of the contract holds on every
route; the open routes stay open; im-rpc refuses calls without an acting user."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from devtools.procs import HOST, Process, Trio, nginx_server, start_trio
from tests.auth_tokens import (
    AUDIENCE,
    ISSUER,
    SECRET,
    KeyFiles,
    defects,
    good_token,
    good_tokens,
    make_key_files,
)
from tests.conftest import key_count
from tests.in_process import in_process_stack

pytestmark = pytest.mark.e2e
_ids = itertools.count()
CLIENTS = ["gateway", "nginx", "in_process"]
OPEN = 1  # the trio's gateway with authentication off


def auth_env(keys: KeyFiles) -> dict[str, str]:
    """A gateway's IM_AUTH_* settings for the test keys."""
    return {
        "IM_AUTH_JWT_SECRET": SECRET,
        "IM_AUTH_JWKS_FILE": str(keys.public),
        "IM_AUTH_AUDIENCE": AUDIENCE,
        "IM_AUTH_ISSUER": ISSUER,
    }


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_key_files(tmp_path_factory.mktemp("auth-keys"))


@pytest.fixture(scope="module")
def trio(keys: KeyFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    """redis, an im-rpc requiring the acting user, a gateway with authentication on, and one
    more (OPEN) with it off."""
    workdir: Path = tmp_path_factory.mktemp("auth")
    gateways: list[dict[str, str]] = [auth_env(keys), {}]
    trio = start_trio(workdir, rpc_settings={"IM_RPC_REQUIRE_USER": "1"}, gateways=gateways)
    yield trio
    trio.stop()


@pytest.fixture(scope="module")
def nginx(trio: Trio) -> Iterator[Process]:
    proxy = nginx_server(trio.workdir, [trio.gateways[0].port]).start()
    yield proxy
    proxy.stop()


@pytest.fixture(params=CLIENTS)
async def client(
    request: pytest.FixtureRequest, trio: Trio, keys: KeyFiles
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a gateway with authentication on: straight, through nginx, and in this
    process (what mutation testing sees)."""
    if request.param == "in_process":
        settings = {
            "auth_jwt_secret": SECRET,
            "auth_jwks_file": str(keys.public),
            "auth_audience": AUDIENCE,
            "auth_issuer": ISSUER,
        }
        redis = f"redis://{HOST}:{trio.redis.port}/0"
        async with (
            in_process_stack(redis, settings, {"require_user": True}) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as c,
        ):
            yield c
        return
    if request.param == "nginx":
        url = f"http://{HOST}:{request.getfixturevalue('nginx').port}"
    else:
        url = trio.url(0)
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        yield c


@pytest.fixture
async def store(trio: Trio) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host=HOST, port=trio.redis.port, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def users() -> tuple[str, str, str]:
    """Fresh names: two members of a chat and an outsider."""
    n = next(_ids)
    return f"ann{n}", f"bob{n}", f"eve{n}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(keys: KeyFiles, user: str, kind: str = "es256") -> dict[str, str]:
    return bearer(good_token(keys, user, kind))


def _calls(ann: str, bob: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """One call per API route that would succeed (and store) with ann's valid token."""
    chat = f"{ann}:{bob}"
    return {
        "send": ("POST", "/api/send", {"chat": chat, "sender": ann, "text": "hi"}),
        "pull": ("GET", "/api/pull", {"chat": chat}),
        "long poll": ("GET", "/api/pull", {"chat": chat, "wait_ms": 200}),
        "chats": ("GET", "/api/chats", {"user": ann}),
        "read": ("POST", "/api/read", {"chat": chat, "user": ann, "send_time": 1}),
        "group": ("POST", "/api/groups", {"chat": f"#{ann}", "user": ann}),
        "sync": ("GET", "/api/sync", {"user": ann}),
    }


def _is_401(answer: httpx.Response) -> bool:
    challenge = answer.headers.get("www-authenticate", "")
    return (
        answer.status_code == 401
        and challenge.startswith('Bearer realm="im"')
        and answer.json()["error"] == "unauthenticated"
    )


async def test_every_token_defect_is_a_401_on_every_route_and_stores_nothing(
    client: httpx.AsyncClient,
    keys: KeyFiles,
    store: aioredis.Redis,
    users: tuple[str, str, str],
) -> None:
    ann, bob, _ = users
    before = await key_count(store)
    wrong = []
    refused = defects(keys)
    for route, (method, path, params) in _calls(ann, bob).items():
        for defect, (header, _) in refused.items():
            headers = {"Authorization": header} if header is not None else {}
            answer = await client.request(method, path, json=params, headers=headers)
            if not _is_401(answer):
                wrong.append((route, defect, answer.status_code, answer.text))
    assert wrong == []
    assert await key_count(store) == before
    for method, path, params in _calls(ann, bob).values():  # the same calls, good token
        answer = await client.request(method, path, json=params, headers=token(keys, ann))
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("method", "path", "content", "content_type", "other"),
    [
        ("POST", "/api/send", b"{}", "application/json", 400),
        ("POST", "/api/send", b"{", "application/json", 400),
        ("POST", "/api/send", b"x", "text/plain", 415),
        ("GET", "/api/pull", b'{"chat": "a", "limit": -1}', "application/json", 400),
        (
            "POST",
            "/api/read",
            b"chat=a:b&user=a&send_time=x",
            "application/x-www-form-urlencoded",
            400,
        ),
        ("GET", "/api/nothing", b"", "", 404),
        ("GET", "/api/send", b"", "", 405),
        ("DELETE", "/api/chats", b"", "", 405),
    ],
)
async def test_a_401_comes_before_any_other_4xx(
    client: httpx.AsyncClient,
    keys: KeyFiles,
    method: str,
    path: str,
    content: bytes,
    content_type: str,
    other: int,
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    for header in (None, "Bearer x.y.z", defects(keys)["expired"][0]):
        sent = {**headers, **({"Authorization": header} if header else {})}
        answer = await client.request(method, path, content=content, headers=sent)
        assert _is_401(answer), (header, answer.status_code, answer.text)
    answer = await client.request(
        method, path, content=content, headers={**headers, **token(keys, "a")}
    )
    assert answer.status_code == other, answer.text


@pytest.mark.parametrize("path", ["/ping", "/healthz", "/readyz", "/metrics", "/openapi.json"])
async def test_the_open_routes_need_no_token(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


@pytest.mark.parametrize("kind", ["hs256", "es256", "rs256"])
async def test_a_sender_may_be_omitted_and_is_then_the_token_s_user(
    client: httpx.AsyncClient, keys: KeyFiles, users: tuple[str, str, str], kind: str
) -> None:
    ann, bob, _ = users
    chat = f"{ann}:{bob}"
    sent = await client.post(
        "/api/send", json={"chat": chat, "text": "one"}, headers=token(keys, bob, kind)
    )
    assert sent.status_code == 200, sent.text
    same = await client.post(
        "/api/send", json={"chat": chat, "sender": ann, "text": "two"}, headers=token(keys, ann)
    )
    assert same.status_code == 200
    page = (await client.get("/api/pull", params={"chat": chat}, headers=token(keys, ann))).json()
    assert [(m["sender"], m["text"]) for m in page["messages"]] == [(bob, "one"), (ann, "two")]


async def test_sending_as_anyone_else_is_forbidden_and_stores_nothing(
    client: httpx.AsyncClient, keys: KeyFiles, store: aioredis.Redis, users: tuple[str, str, str]
) -> None:
    ann, bob, eve = users
    before = await key_count(store)
    for chat, sender, caller in [(f"{ann}:{bob}", bob, ann), (f"{ann}:{bob}", ann, eve)]:
        answer = await client.post(
            "/api/send",
            json={"chat": chat, "sender": sender, "text": "x"},
            headers=token(keys, caller),
        )
        assert answer.status_code == 403
        assert answer.json()["error"] == "forbidden"
    assert await key_count(store) == before
    outsider = await client.post(  # eve as herself in a chat she is not in: the usual 400
        "/api/send", json={"chat": f"{ann}:{bob}", "text": "x"}, headers=token(keys, eve)
    )
    assert outsider.status_code == 400
    assert outsider.json()["error"] == "sender_not_in_chat"


async def test_only_members_pull_and_a_403_tells_nothing_about_what_exists(
    client: httpx.AsyncClient, keys: KeyFiles, users: tuple[str, str, str]
) -> None:
    ann, bob, eve = users
    written, empty = f"{ann}:{bob}", f"{ann}:{bob}x"
    await client.post("/api/send", json={"chat": written, "text": "x"}, headers=token(keys, ann))
    answers = []
    for chat in (written, empty):
        for params in ({}, {"reverse": "true"}, {"wait_ms": 5000}):
            got = await client.get(
                "/api/pull", params={"chat": chat, **params}, headers=token(keys, eve)
            )
            answers.append((got.status_code, got.content))
    assert {a for a in answers} == {(403, answers[0][1])}  # one answer, the same bytes
    assert orjson.loads(answers[0][1])["error"] == "forbidden"
    for member in (ann, bob):
        page = await client.get("/api/pull", params={"chat": written}, headers=token(keys, member))
        assert len(page.json()["messages"]) == 1


async def test_the_inbox_and_read_positions_are_the_token_user_s_own(
    client: httpx.AsyncClient, keys: KeyFiles, store: aioredis.Redis, users: tuple[str, str, str]
) -> None:
    ann, bob, eve = users
    chat = f"{ann}:{bob}"
    sent = (
        await client.post("/api/send", json={"chat": chat, "text": "x"}, headers=token(keys, ann))
    ).json()
    before = await key_count(store)
    for method, path, params in [
        ("GET", "/api/chats", {"user": bob}),
        ("POST", "/api/read", {"chat": chat, "user": bob, "send_time": sent["send_time"]}),
    ]:
        answer = await client.request(method, path, json=params, headers=token(keys, ann))
        assert (answer.status_code, answer.json()["error"]) == (403, "forbidden")
    assert await key_count(store) == before
    inbox = (await client.get("/api/chats", headers=token(keys, bob))).json()
    assert [(c["chat"], c["unread"]) for c in inbox["chats"]] == [(chat, 1)]
    read = await client.post(
        "/api/read", json={"chat": chat, "send_time": sent["send_time"]}, headers=token(keys, bob)
    )
    assert read.json() == {"chat": chat, "user": bob, "read_until": sent["send_time"]}
    inbox = (await client.get("/api/chats", headers=token(keys, bob))).json()
    assert [c["unread"] for c in inbox["chats"]] == [0]
    outsider = await client.post(
        "/api/read", json={"chat": chat, "send_time": 1}, headers=token(keys, eve)
    )
    assert (outsider.status_code, outsider.json()["error"]) == (400, "user_not_in_chat")


async def test_im_rpc_refuses_a_gateway_that_passes_no_acting_user(
    trio: Trio, store: aioredis.Redis, users: tuple[str, str, str]
) -> None:
    ann, bob, _ = users
    before = await key_count(store)
    async with httpx.AsyncClient(base_url=trio.url(OPEN), timeout=10) as open_gateway:
        for method, path, params in _calls(ann, bob).values():
            answer = await open_gateway.request(method, path, json=params)
            assert (answer.status_code, answer.json()["error"]) == (502, "user_required")
    assert await key_count(store) == before


async def test_refusals_are_counted_by_reason(trio: Trio, keys: KeyFiles) -> None:
    def count(text: str, status: int, reason: str) -> float:
        line = f'im_http_auth_denied_total{{reason="{reason}",status="{status}"}} '
        found = [ln for ln in text.splitlines() if ln.startswith(line)]
        return float(found[0].removeprefix(line)) if found else 0.0

    refusals = [
        ((401, "expired"), defects(keys)["expired"][0], "/api/chats", {}),
        ((401, "missing"), None, "/api/chats", {}),
        ((401, "bad_signature"), defects(keys)["tampered_claims"][0], "/api/chats", {}),
        ((403, "user"), f"Bearer {good_tokens(keys)['es256']}", "/api/chats", {"user": "x"}),
        ((403, "im_rpc"), f"Bearer {good_tokens(keys)['es256']}", "/api/pull", {"chat": "x:y"}),
    ]
    async with httpx.AsyncClient(base_url=trio.url(0), timeout=10) as c:
        before = (await c.get("/metrics")).text
        for _, header, path, params in refusals:
            await c.get(path, params=params, headers={"Authorization": header} if header else {})
        after = (await c.get("/metrics")).text
    for (status, reason), *_ in refusals:
        assert count(after, status, reason) - count(before, status, reason) == 1, reason
    assert good_tokens(keys)["es256"].split(".")[2] not in after


async def test_the_openapi_document_says_how_to_authenticate(
    client: httpx.AsyncClient, trio: Trio
) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    send = doc["paths"]["/api/send"]["post"]
    assert send["security"] == [{"bearer": []}]
    assert {"401", "403"} <= set(send["responses"])
    schema = send["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["chat", "text"]  # sender: the token's user
    chats = doc["paths"]["/api/chats"]["get"]
    assert [p["required"] for p in chats["parameters"] if p["name"] == "user"] == [False]
    assert "security" not in doc["paths"]["/ping"]["get"]
    async with httpx.AsyncClient(base_url=trio.url(OPEN), timeout=10) as open_gateway:
        open_doc = (await open_gateway.get("/openapi.json")).json()
    assert "securitySchemes" not in open_doc["components"]
    assert "401" not in open_doc["paths"]["/api/send"]["post"]["responses"]


async def test_groups_with_authentication_on(
    client: httpx.AsyncClient, keys: KeyFiles, store: aioredis.Redis, users: tuple[str, str, str]
) -> None:
    ann, bob, eve = users
    g = f"#{ann}-team"
    made = await client.post("/api/groups", json={"chat": g}, headers=token(keys, ann))
    assert made.json() == {"chat": g, "owner": ann, "members": [ann]}  # user: the token's
    for path, body in [
        ("/api/groups", {"chat": f"{g}2", "user": bob}),
        ("/api/groups/add", {"chat": g, "user": bob, "member": eve}),
        ("/api/groups/remove", {"chat": g, "user": bob, "member": bob}),
    ]:
        answer = await client.post(path, json=body, headers=token(keys, ann))
        assert (answer.status_code, answer.json()["error"]) == (403, "forbidden"), path
    added = await client.post(
        "/api/groups/add", json={"chat": g, "member": bob}, headers=token(keys, ann)
    )
    assert added.json()["members"] == sorted([ann, bob])  # member: anyone
    sent = await client.post("/api/send", json={"chat": g, "text": "hi"}, headers=token(keys, bob))
    assert sent.status_code == 200, sent.text
    before = await key_count(store)
    answers = []
    for chat in (g, f"#{ann}-nothing"):  # a group and no group: the same 403
        for path, params in [
            ("/api/pull", {"chat": chat}),
            ("/api/groups/members", {"chat": chat}),
        ]:
            got = await client.get(path, params=params, headers=token(keys, eve))
            answers.append((got.status_code, got.json()["error"]))
    assert answers == [(403, "forbidden")] * 4
    eve_sends = await client.post(
        "/api/send", json={"chat": g, "text": "x"}, headers=token(keys, eve)
    )
    assert (eve_sends.status_code, eve_sends.json()["error"]) == (403, "not_a_member")
    assert await key_count(store) == before
    page = await client.get("/api/pull", params={"chat": g}, headers=token(keys, ann))
    assert [(m["sender"], m["text"]) for m in page.json()["messages"]] == [(bob, "hi")]
    members = await client.get("/api/groups/members", params={"chat": g}, headers=token(keys, bob))
    assert members.json()["owner"] == ann
    inbox = await client.get("/api/chats", headers=token(keys, ann))
    assert [(c["chat"], c["unread"]) for c in inbox.json()["chats"]] == [(g, 1)]


async def test_a_sync_is_the_tokens_users_own(
    client: httpx.AsyncClient, keys: KeyFiles, users: tuple[str, str, str]
) -> None:
    ann, bob, _ = users
    mine = await client.get("/api/sync", headers=token(keys, ann))  # user: the token's sub
    assert mine.status_code == 200, mine.text
    since = mine.json()["next"]
    sent = await client.post(
        "/api/send", json={"chat": f"{ann}:{bob}", "text": "hi"}, headers=token(keys, bob)
    )
    assert sent.status_code == 200
    page = await client.get("/api/sync", params={"since": since}, headers=token(keys, ann))
    assert [e["message"]["text"] for e in page.json()["events"]] == ["hi"]
    theirs = await client.get("/api/sync", params={"user": ann}, headers=token(keys, bob))
    assert (theirs.status_code, theirs.json()["error"]) == (403, "forbidden")
    replayed = await client.get("/api/sync", params={"since": since}, headers=token(keys, bob))
    assert (replayed.status_code, replayed.json()["error"]) == (400, "invalid_since")


async def test_edits_and_recalls_are_the_token_users_own(
    client: httpx.AsyncClient, keys: KeyFiles, users: tuple[str, str, str]
) -> None:
    ann, bob, _ = users
    chat = f"{ann}:{bob}"
    sent = await client.post(
        "/api/send", json={"chat": chat, "text": "hi"}, headers=token(keys, bob)
    )
    at = sent.json()["send_time"]
    edit, recall = {"chat": chat, "send_time": at, "text": "hi!"}, {"chat": chat, "send_time": at}
    for path, body in (("/api/edit", edit), ("/api/recall", recall)):
        assert _is_401(await client.post(path, json=body))
        not_hers = await client.post(path, json=body, headers=token(keys, ann))  # sub: ann
        assert (not_hers.status_code, not_hers.json()["error"]) == (403, "forbidden")
        name = "sender" if path == "/api/edit" else "user"
        as_bob = await client.post(path, json={**body, name: bob}, headers=token(keys, ann))
        assert (as_bob.status_code, as_bob.json()["error"]) == (403, "forbidden")
    edited = await client.post("/api/edit", json=edit, headers=token(keys, bob))
    assert edited.status_code == 200, edited.text
    page = await client.get("/api/pull", params={"chat": chat}, headers=token(keys, ann))
    assert [m["text"] for m in page.json()["messages"]] == ["hi!"]
    recalled = await client.post("/api/recall", json=recall, headers=token(keys, bob))
    assert recalled.json() == {"chat": chat, "send_time": at, "recalled": True}
