"""The store's layout version: an empty Redis is marked with this code's layout, and a Redis
holding another is refused with a message that says what to do (docs/store.md, "Layout
versions")."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from rpc_svc.store.base import LayoutError, RedisStore
from rpc_svc.store.keys import LAYOUT, LAYOUT_KEY
from rpc_svc.store.lua import LUA_NUMBERS
from tests.conftest import ON_EVERY_BACKEND

pytestmark = ON_EVERY_BACKEND


async def test_an_empty_redis_is_marked_with_this_layout_and_then_known(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    assert await redis_client.get(LAYOUT_KEY) is None
    await store.check_layout()
    assert await redis_client.get(LAYOUT_KEY) == LAYOUT
    await store.check_layout()  # an im-rpc started after the first finds it known
    assert await redis_client.get(LAYOUT_KEY) == LAYOUT


async def test_a_redis_of_another_layout_is_refused_and_left_as_it_is(
    store: RedisStore, redis_client: aioredis.Redis
) -> None:
    await redis_client.set(LAYOUT_KEY, "2")
    with pytest.raises(LayoutError) as refused:
        await store.check_layout()
    message = str(refused.value)
    assert "layout '2'" in message
    assert f"layout {LAYOUT!r} only" in message
    assert "empty Redis" in message
    assert "docs/store.md" in message
    assert await redis_client.get(LAYOUT_KEY) == "2"


async def test_this_redis_prints_the_scripts_numbers_exactly(store: RedisStore) -> None:
    """The start's question to Redis's Lua, answered by the real server: 2^53 printed with
    %d whole (a 32-bit long would cut it), so check_layout lets im-rpc start."""
    (printed,) = await store.run_commands([("EVALSHA", LUA_NUMBERS.sha, 1, LAYOUT_KEY)])
    assert printed == "9007199254740992"
    await store.check_layout()
