"""Hostile syncs (the standing hostile-client suite, continued): forged, foreign and replayed
tokens, a user in thousands of chats, waits no event can answer, one client's share of the
waiting slots. The stack of test_hostile_groups: one im-rpc, gateway 0 open, gateway 1 with
authentication on. Every loop is bounded in count and time, on loopback only."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from devtools.procs import HOST, Trio
from devtools.rawhttp import Connection
from rpc_svc.store.base import RedisStore
from rpc_svc.store.ops import AddMember, Append, CreateGroup
from tests.conftest import key_count
from tests.e2e.test_hostile_groups import (  # the same stack and helpers
    AUTH,
    GROUP_LIMITS,
    _bearer,
    _big_groups,
    _calls,
    _commands_run,
    _names,
    _ok,
    redis,
    store,
    trio,
)

pytestmark = pytest.mark.e2e
__all__ = ["redis", "store", "trio"]  # fixtures


async def _token(client: httpx.AsyncClient, user: str, **headers: str) -> str:
    answer = await client.get("/api/sync", params={"user": user}, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["next"])


def _flipped(token: str, at: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[at % len(raw)] ^= 1 << (at % 8)
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


async def test_forged_and_foreign_tokens_are_refused_and_store_nothing(
    trio: Trio, redis: aioredis.Redis
) -> None:
    ann, bob = _names("f", 2)
    async with (
        httpx.AsyncClient(base_url=trio.url(0), timeout=10) as open_,
        httpx.AsyncClient(base_url=trio.url(1), timeout=10) as authed,
    ):
        token = await _token(open_, ann)
        before = await key_count(redis)
        forged = [_flipped(token, i * 7) for i in range(40)]  # every byte, flipped bits
        forged += ["", "A" * 50, "A" * 4000, "x.y.z", "%00", token[:-1], token + "AA"]
        answers = [
            await open_.get("/api/sync", params={"user": ann, "since": f}) for f in forged if f
        ]
        answers.append(await open_.get("/api/sync", params={"user": bob, "since": token}))
        answers.append(  # bob, authenticated, with ann's token
            await authed.get("/api/sync", params={"since": token}, headers=_bearer(bob))
        )
        wrong = [(a.status_code, a.text[:80]) for a in answers if a.status_code != 400]
        assert wrong == []
        assert {a.json()["error"] for a in answers} == {"invalid_since"}
        assert await key_count(redis) == before  # no feed made, nothing written
        mine = await authed.get("/api/sync", params={"since": token}, headers=_bearer(ann))
        assert (mine.status_code, mine.json()["events"]) == (200, [])


async def test_a_replayed_token_costs_its_page_and_answers_the_same(
    trio: Trio, redis: aioredis.Redis, report: Callable[[str], None]
) -> None:
    ann, bob = _names("r", 2)
    async with httpx.AsyncClient(base_url=trio.url(), timeout=10) as client:
        token = await _token(client, ann)
        for i in range(30):
            await _ok(client, "/api/send", chat=f"{ann}:{bob}", sender=bob, text=f"m{i}")
        params: dict[str, str | int] = {"user": ann, "since": token, "limit": 10}
        first = (await client.get("/api/sync", params=params)).json()

        async def replays(count: int) -> None:
            for _ in range(count):
                again = (await client.get("/api/sync", params=params)).json()
                assert again == first

        one = await _commands_run(redis, lambda: replays(1))
        many = await _commands_run(redis, lambda: replays(50))
    assert many <= 50 * one, (one, many)
    report(f"a replayed sync token (10 events): {one} Redis commands, {many / 50:.1f} over 50")


async def _in_chats(store: RedisStore, user: str, chats: int) -> None:
    """`user` in `chats` chats, each with a message: 1:1 chats and small groups."""
    groups = [f"#in{chats}{user}{i}" for i in range(min(chats // 5, 300))]
    pairs = [f"{user}:p{i}{user}" for i in range(chats - len(groups))]
    ops: list[Any] = [CreateGroup(g, user, 400) for g in groups]
    ops += [AddMember(g, user, f"m{g}", 5, 3, 400) for g in groups]
    ops += [Append(p, 0, "hi") for p in pairs]
    for i in range(0, len(ops), 500):
        await store.execute(ops[i : i + 500])


async def test_a_users_sync_costs_its_events_not_its_chats(
    trio: Trio, redis: aioredis.Redis, store: RedisStore, report: Callable[[str], None]
) -> None:
    """A user in 2,000 chats (1:1, small groups, 20 big groups) and one in 20 (2 big): a
    sync that answers one new message runs as many Redis commands for both."""
    few, many, fillers = _names("c", 2), _names("c", 2), _names("filler", 4)
    costs = {}
    async with httpx.AsyncClient(base_url=trio.url(), timeout=30) as client:
        for (user, peer), chats, big in ((few, 20, 2), (many, 2000, 20)):
            await _in_chats(store, user, chats - big)
            await _big_groups(store, user, big, fillers)
            token = await _token(client, user)
            await _ok(client, "/api/send", chat=f"{user}:{peer}", sender=peer, text="new")

            async def sync(user: str = user, token: str = token) -> None:
                page = await client.get("/api/sync", params={"user": user, "since": token})
                assert [e["message"]["text"] for e in page.json()["events"]] == ["new"]

            costs[chats] = await _commands_run(redis, sync)
    assert costs[2000] <= costs[20] + 2, costs
    report(f"Redis commands of a sync answering 1 event: {costs[20]} for a user in 20 chats, "
           f"{costs[2000]} in 2,000")  # fmt: skip


async def test_waiting_syncs_are_not_read_again_for_anyone_elses_events(
    trio: Trio, redis: aioredis.Redis, report: Callable[[str], None]
) -> None:
    """50 syncs wait (their users get nothing) while 100 messages go to other chats: no
    sync reads its feed again (LRANGE, which only a sync runs, stays put); then a message to
    one waiting user answers that sync alone."""
    gateway = trio.add_gateway(**GROUP_LIMITS, IM_HTTP_MAX_WAITING_PER_USER="1000")
    users, others = _names("w", 50), _names("o", 2)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{gateway.port}", timeout=10) as c:
        tokens = [await _token(c, u) for u in users]
        conns = await asyncio.gather(*(Connection.open(gateway.port) for _ in users))
        waits = [
            asyncio.create_task(conn.get(f"/api/sync?user={u}&since={t}&wait_ms=20000"))
            for conn, u, t in zip(conns, users, tokens, strict=True)
        ]
        await asyncio.sleep(1.0)
        before = await _calls(redis)
        for i in range(100):
            await _ok(c, "/api/send", chat=":".join(others), sender=others[0], text=f"x{i}")
        after = await _calls(redis)
        assert not [w for w in waits if w.done()]
        rereads = after.get("lrange", 0) - before.get("lrange", 0)
        assert rereads == 0, rereads
        await _ok(c, "/api/send", chat=f"{users[7]}:{others[1]}", sender=others[1], text="you")
        woken = await asyncio.wait_for(waits[7], 5)
        await asyncio.sleep(0.3)
        assert [w for w in waits if w.done()] == [waits[7]]
        assert [e["message"]["text"] for e in woken.json()["events"]] == ["you"]  # type: ignore[index]
        for w in waits:
            w.cancel()
        for conn in conns:
            await conn.close()
    report(f"50 waiting syncs, 100 messages to others: {rereads} re-reads")


async def test_one_user_takes_only_its_share_of_the_sync_waits(trio: Trio) -> None:
    gateway = trio.add_gateway(
        **GROUP_LIMITS, **AUTH, IM_HTTP_MAX_WAITING="50", IM_HTTP_MAX_WAITING_PER_USER="10"
    )
    hog, other = _names("hog", 2)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{gateway.port}", timeout=10) as c:
        token = await _token(c, hog, **_bearer(hog))
        theirs = await _token(c, other, **_bearer(other))
    conns = await asyncio.gather(*(Connection.open(gateway.port) for _ in range(30)))
    waits = [
        asyncio.create_task(conn.get(f"/api/sync?since={token}&wait_ms=20000", _bearer(hog)))
        for conn in conns
    ]
    await asyncio.sleep(1.0)
    refused = [w.result() for w in waits if w.done()]
    assert len(refused) == 20, len(refused)
    assert {(r.status, r.json()["error"]) for r in refused} == {(429, "too_many_long_polls")}  # type: ignore[index]
    mine = await Connection.open(gateway.port)
    waiting = asyncio.create_task(
        mine.get(f"/api/sync?since={theirs}&wait_ms=20000", _bearer(other))
    )
    await asyncio.sleep(0.5)
    assert not waiting.done()  # another user's sync still waits
    for w in (*waits, waiting):
        w.cancel()
    for conn in (*conns, mine):
        await conn.close()
