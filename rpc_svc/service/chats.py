"""Send and pull, of 1:1 chats and groups, and the long poll: each call's rules checked
and its store operation planned; each outcome turned into the call's answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from im_common.calls import PullCall, SendCall
from rpc_svc.domain.access import check_member, check_same_user
from rpc_svc.domain.errors import Forbidden, IMError, Overloaded
from rpc_svc.domain.names import Chat, check_group, check_name, is_group, parse_chat
from rpc_svc.domain.paging import build_group_page, build_page
from rpc_svc.domain.refusals import NOT_A_MEMBER, refusal
from rpc_svc.domain.rules import (
    check_client_msg_id,
    check_cursor,
    check_text,
    check_wait_ms,
    page_limit,
)
from rpc_svc.domain.values import Page, Sent
from rpc_svc.service.planned import Planned
from rpc_svc.store.ops import Append, GroupAppend, GroupRead, Posted, Read
from rpc_svc.store.wakeups import Wakeups

POLL_S = 0.5  # a long poll's re-read interval while wake-ups cannot be watched


def plan_send(call: SendCall, max_text_bytes: int) -> Planned:
    """The store operation of a send; InvalidArgument or Forbidden first."""
    if is_group(call.chat):
        check_group(call.chat)
        check_name(call.sender, "sender")
        check_same_user(call.actor, call.sender, "sender")
        check_text(call.text, max_text_bytes)
        check_client_msg_id(call.client_msg_id)
        check_client_msg_id(call.retry_key, "retry_key")
        op = GroupAppend(
            call.chat, call.sender, call.text, call.client_msg_id, call.retry_key, bool(call.actor)
        )
        return Planned(op, _group_sent)
    chat = parse_chat(call.chat)
    check_same_user(call.actor, call.sender, "sender")
    role = chat.role_of(call.sender)
    check_text(call.text, max_text_bytes)
    check_client_msg_id(call.client_msg_id)
    check_client_msg_id(call.retry_key, "retry_key")
    return Planned(Append(chat.name, role, call.text, call.client_msg_id, call.retry_key), _sent)


def plan_pull(call: PullCall) -> Planned:
    """The store operation of a pull (one entry beyond the page tells has_more and the next
    cursor); InvalidArgument or Forbidden first."""
    limit = page_limit(call.limit) + 1
    if is_group(call.chat):
        check_group(call.chat)
        check_cursor(call.cursor)
        return Planned(
            GroupRead(call.chat, call.actor, call.cursor, limit, call.reverse), _group_page
        )
    chat = parse_chat(call.chat)
    check_member(call.actor, chat)
    check_cursor(call.cursor)
    return Planned(Read(chat.name, call.cursor, limit, call.reverse), _page, chat)


def _sent(context: None, op: Append, send_time: int) -> Sent:
    return Sent(op.chat, send_time)


def _group_sent(context: None, op: GroupAppend, outcome: int | Posted) -> Sent | IMError:
    if isinstance(outcome, Posted):
        return Sent(op.chat, outcome.send_time)
    return refusal(outcome, op.chat, op.sender)


def _page(chat: Chat, op: Read, entries: Any) -> Page:
    return build_page(chat, entries, op.cursor, op.entries - 1, op.reverse)


def _group_page(context: None, op: GroupRead, outcome: Any) -> Page | IMError:
    """A group pull's page, or its refusal: with an acting user, a non-member (of a group
    that exists or not) is forbidden, so the answer tells nothing about what exists."""
    if isinstance(outcome, int):
        if outcome == NOT_A_MEMBER:
            return Forbidden("the authenticated user is not a member of this group")
        return refusal(outcome, op.chat)
    return build_group_page(op.chat, outcome, op.cursor, op.entries - 1, op.reverse)


class LongPolls:
    """Forward pulls that wait for a message when their page is empty (wait_ms).

    The waiter is registered before the page is read, so a message stored after the read
    wakes it: none is missed. Only a message at or after the cursor wakes it, and the
    waiters of one page woken by one message share one read. Waiting holds no Redis
    connection; while the store's subscription is down it reads again every POLL_S
    seconds instead."""

    def __init__(self, wakeups: Wakeups, max_waiting: int) -> None:
        self._wakeups = wakeups
        self._max_waiting = max_waiting
        self._shared = SharedReads()
        self.waiting = 0  # long polls waiting now

    async def pull(
        self, call: PullCall, wait_ms: int, read: Callable[[PullCall], Awaitable[Page]]
    ) -> Page:
        """The page of `call` (`read` reads it), waiting up to `wait_ms` while it is empty."""
        check_wait_ms(wait_ms)
        if wait_ms == 0 or call.reverse:
            return await read(call)
        chat = check_group(call.chat) if is_group(call.chat) else parse_chat(call.chat).name
        deadline = time.monotonic() + wait_ms / 1000
        woken_at: float | None = None
        again = msgspec.structs.replace(call, wait_ms=0)
        while True:
            async with self._wakeups.watch(chat, call.cursor) as woken:
                if woken_at is None:
                    page = await read(call)
                else:
                    page = await self._shared.read(again, woken_at, read)
                left = deadline - time.monotonic()
                if page.messages or left <= 0 or self._wakeups.closed:
                    return page
                if self.waiting >= self._max_waiting:
                    raise Overloaded(f"{self.waiting} long polls wait here already; retry later")
                self.waiting += 1
                try:
                    # no subscription now (Redis lost, a failover): read again shortly
                    await asyncio.wait_for(woken or asyncio.sleep(POLL_S), left)
                except TimeoutError:
                    return page
                finally:
                    self.waiting -= 1
                woken_at = woken.result() if woken is not None else None


class SharedReads:
    """The reads of long polls woken by a message, shared: a waiter woken at `woken_at`
    takes the answer of a read of the same page that started at or after that moment (it
    was sent to Redis after the message was stored, so it holds it), else starts one."""

    def __init__(self) -> None:
        self._reads: dict[PullCall, tuple[float, asyncio.Future[Page]]] = {}

    async def read(
        self, call: PullCall, woken_at: float, read: Callable[[PullCall], Awaitable[Page]]
    ) -> Page:
        """The page of `call`, read after `woken_at`."""
        shared = self._reads.get(call)
        if shared is None or shared[0] < woken_at:
            future = asyncio.ensure_future(read(call))
            shared = (time.monotonic(), future)
            self._reads[call] = shared
            future.add_done_callback(lambda done: self._forget(call, done))
        return await asyncio.shield(shared[1])  # a waiter that goes stops no other's read

    def _forget(self, call: PullCall, done: asyncio.Future[Page]) -> None:
        if not done.cancelled():
            done.exception()  # (retrieved: a read nobody waits for any more is not an error)
        shared = self._reads.get(call)
        if shared is not None and shared[1] is done:
            del self._reads[call]
