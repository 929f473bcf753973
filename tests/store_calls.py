"""Two shorthands of the tests for the store's most used operations."""

from __future__ import annotations

from typing import cast

from rpc_svc.domain.values import Entry
from rpc_svc.store.interface import Store
from rpc_svc.store.ops import Append, Read


async def append(
    store: Store, chat: str, role: int, text: str, client_msg_id: str = "", retry_key: str = ""
) -> int:
    """Store one message; its send time (the first one's for a repeated key)."""
    return cast(int, await store.one(Append(chat, role, text, client_msg_id, retry_key)))


async def read(store: Store, chat: str, cursor: int, count: int, reverse: bool) -> list[Entry]:
    """Up to `count` entries from `cursor` (inclusive), oldest first or newest first."""
    return cast(list[Entry], await store.one(Read(chat, cursor, count, reverse)))
