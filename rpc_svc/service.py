"""The chat service: applies the chat rules, then asks the store."""

from __future__ import annotations

from dataclasses import dataclass

from rpc_svc.chat import (
    Page,
    build_page,
    check_client_msg_id,
    check_cursor,
    check_text,
    page_limit,
    parse_chat,
)
from rpc_svc.store import RedisStore


@dataclass(frozen=True, slots=True)
class Sent:
    """What a send answers: the canonical chat and the message's send time."""

    chat: str
    send_time: int


class ChatService:
    """Send and pull, with every rule of the contract checked before the store is touched."""

    def __init__(self, store: RedisStore, max_text_bytes: int) -> None:
        self._store = store
        self._max_text_bytes = max_text_bytes

    async def send(self, chat: str, sender: str, text: str, client_msg_id: str = "") -> Sent:
        """Store one message and return where it landed."""
        parsed = parse_chat(chat)
        role = parsed.role_of(sender)
        check_text(text, self._max_text_bytes)
        check_client_msg_id(client_msg_id)
        send_time = await self._store.append(parsed.name, role, text, client_msg_id)
        return Sent(parsed.name, send_time)

    async def pull(self, chat: str, cursor: int, limit: int, reverse: bool) -> Page:
        """One page of the chat from `cursor`, with the cursor of the next one."""
        parsed = parse_chat(chat)
        check_cursor(cursor)
        size = page_limit(limit)
        entries = await self._store.read(parsed.name, cursor, size + 1, reverse)
        return build_page(parsed, entries, cursor, size, reverse)

    async def ready(self) -> bool:
        """True when the store answers."""
        return await self._store.ping()
