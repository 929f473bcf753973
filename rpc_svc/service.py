"""The chat service: applies the chat rules, then asks the store, many calls at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import NamedTuple

from rpc_svc.chat import (
    Chat,
    Entry,
    Page,
    build_page,
    check_client_msg_id,
    check_cursor,
    check_text,
    check_wait_ms,
    page_limit,
    parse_chat,
)
from rpc_svc.errors import IMError
from rpc_svc.store import Append, Op, Outcome, Read, RedisStore


class SendCall(NamedTuple):
    """Store `text` from `sender` in `chat`, idempotent on a non-empty client_msg_id,
    else on a non-empty retry_key (the gateway's own key, remembered briefly)."""

    chat: str
    sender: str
    text: str
    client_msg_id: str = ""
    retry_key: str = ""


class PullCall(NamedTuple):
    """Read one page of `chat` from `cursor`; a forward pull with `wait_ms` long-polls
    (see ChatService.pull_wait; in a batch of several calls nothing waits)."""

    chat: str
    cursor: int = 0
    limit: int = 0
    reverse: bool = False
    wait_ms: int = 0


class Sent(NamedTuple):
    """What a send answers: the canonical chat and the message's send time."""

    chat: str
    send_time: int


Call = SendCall | PullCall
Result = Sent | Page | IMError


class ChatService:
    """Send and pull, with every rule of the contract checked before the store is touched."""

    def __init__(self, store: RedisStore, max_text_bytes: int) -> None:
        self._store = store
        self._max_text_bytes = max_text_bytes

    async def run(self, calls: Sequence[Call | IMError]) -> list[Result]:
        """Answer each call, in order; the valid ones go to the store in one round trip.

        A call given as an IMError (it could not even be decoded) is answered with it.
        """
        planned: list[tuple[Chat, Op] | IMError] = []
        for call in calls:
            try:
                planned.append(self._plan(call))
            except IMError as exc:
                planned.append(exc)
        ops = [p[1] for p in planned if not isinstance(p, IMError)]
        outcomes = iter(await self._store.execute(ops) if ops else [])
        return [p if isinstance(p, IMError) else _result(*p, next(outcomes)) for p in planned]

    async def send(self, call: SendCall) -> Sent:
        """Store one message and return where it landed; raise IMError otherwise."""
        (result,) = await self.run([call])
        if isinstance(result, IMError):
            raise result
        assert isinstance(result, Sent)
        return result

    async def pull(self, call: PullCall) -> Page:
        """One page of a chat, with the cursor of the next one; raise IMError otherwise."""
        (result,) = await self.run([call])
        if isinstance(result, IMError):
            raise result
        assert isinstance(result, Page)
        return result

    async def pull_wait(self, call: PullCall, wait_ms: int) -> Page:
        """A forward pull that, when its page is empty, waits up to `wait_ms` for a message
        at or after the cursor (long polling); otherwise the same as pull.

        The waiter is registered before the page is read, so a message stored after the
        read wakes it: none is missed. Waiting holds no Redis connection.
        """
        check_wait_ms(wait_ms)
        wakeups = self._store.wakeups
        if wait_ms == 0 or call.reverse:
            return await self.pull(call)
        chat = parse_chat(call.chat).name
        deadline = time.monotonic() + wait_ms / 1000
        while True:
            with wakeups.watch(chat) as woken:
                page = await self.pull(call)
                left = deadline - time.monotonic()
                if page.messages or left <= 0 or not wakeups.subscribed.is_set():
                    return page
                try:
                    await asyncio.wait_for(woken, left)
                except TimeoutError:
                    return page

    async def ready(self) -> bool:
        """True when the store answers."""
        return await self._store.ping()

    def _plan(self, call: Call | IMError) -> tuple[Chat, Op]:
        if isinstance(call, IMError):
            raise call
        chat = parse_chat(call.chat)
        if isinstance(call, SendCall):
            role = chat.role_of(call.sender)
            check_text(call.text, self._max_text_bytes)
            check_client_msg_id(call.client_msg_id)
            check_client_msg_id(call.retry_key, "retry_key")
            return chat, Append(chat.name, role, call.text, call.client_msg_id, call.retry_key)
        check_cursor(call.cursor)
        # one entry beyond the page tells has_more and next_cursor
        return chat, Read(chat.name, call.cursor, page_limit(call.limit) + 1, call.reverse)


def _result(chat: Chat, op: Op, outcome: Outcome) -> Result:
    if isinstance(outcome, IMError):
        return outcome
    if isinstance(op, Append):
        assert isinstance(outcome, int)
        return Sent(chat.name, outcome)
    assert isinstance(outcome, list)
    entries: list[Entry] = outcome
    return build_page(chat, entries, op.cursor, op.entries - 1, op.reverse)
