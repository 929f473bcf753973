"""The reads asked for in one turn of the event loop share one round trip
(rpc_svc/service/one_trip.py), on the real store: each gets its own answer, Redis reads them
in one go, a caller that leaves takes no other's answer, and waiting syncs read through it."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
import redis.asyncio as aioredis

from im_common.calls import SendCall, SyncCall
from rpc_svc.service import one_trip
from rpc_svc.service.one_trip import OneTrip
from rpc_svc.service.runner import ChatService
from rpc_svc.service.sync import plan_sync
from rpc_svc.store.base import RedisStore
from tests.conftest import ON_EVERY_BACKEND

pytestmark = ON_EVERY_BACKEND
_ids = itertools.count()


async def _users_with_news(service: ChatService, n: int) -> list[tuple[str, str]]:
    """`n` users, each with a token and then a message of its own (text: its name)."""
    run = next(_ids)
    users = [f"ot{run}u{i:03d}" for i in range(n)]
    tokens = [(await service.sync(SyncCall(u))).next for u in users]
    for u in users:
        await service.send(SendCall(f"{u}:zz{run}", f"zz{run}", u))
    return list(zip(users, tokens, strict=True))


async def _reads(redis_client: aioredis.Redis) -> int:
    return int((await redis_client.info("stats"))["total_reads_processed"])


def _texts(outcome: Any) -> list[str]:
    return [event.entry.text for event in outcome.events]


async def test_the_syncs_of_one_turn_are_read_in_one_trip(
    store: RedisStore, backend: str, redis_client: aioredis.Redis
) -> None:
    service = ChatService(store, 4096)
    users = await _users_with_news(service, 20)
    key = await store.sync_key()
    ops = [plan_sync(SyncCall(u, token), key, False).op for u, token in users]
    trip = OneTrip(store.execute)
    before = await _reads(redis_client)
    outcomes = await asyncio.gather(*(trip.one(op) for op in ops))
    after = await _reads(redis_client)
    assert [_texts(o) for o in outcomes] == [[u] for u, _ in users]  # each its own page
    assert trip.trips == 1
    if backend != "cluster":  # (this client sees one node of the cluster only)
        assert after - before <= 3  # the trip's one read and this INFO's: not 20 and more


async def test_more_than_a_trips_operations_go_in_several(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(one_trip, "MAX_OPS", 8)
    service = ChatService(store, 4096)
    users = await _users_with_news(service, 20)
    key = await store.sync_key()
    trip = OneTrip(store.execute)
    outcomes = await asyncio.gather(
        *(trip.one(plan_sync(SyncCall(u, token), key, False).op) for u, token in users)
    )
    assert trip.trips == 3
    assert [_texts(o) for o in outcomes] == [[u] for u, _ in users]


async def test_a_caller_that_leaves_takes_nothing_from_the_others(store: RedisStore) -> None:
    service = ChatService(store, 4096)
    users = await _users_with_news(service, 3)
    key = await store.sync_key()
    trip = OneTrip(store.execute)
    calls = [
        asyncio.ensure_future(trip.one(plan_sync(SyncCall(u, token), key, False).op))
        for u, token in users
    ]
    await asyncio.sleep(0)  # each is waiting for the trip now
    calls[1].cancel()
    done = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert [_texts(done[0]), _texts(done[2])] == [[users[0][0]], [users[2][0]]]


async def test_waiting_syncs_read_through_the_shared_trips(store: RedisStore) -> None:
    service = ChatService(store, 4096)
    users = await _users_with_news(service, 5)
    pages = await asyncio.gather(
        *(service.sync_wait(SyncCall(u, token, 0, 2000)) for u, token in users)
    )
    assert [[e["message"]["text"] for e in p.events] for p in pages] == [[u] for u, _ in users]
    assert 1 <= service.sync_reads.trips <= 5
