"""The chat service: applies the chat rules, then asks the store, many calls at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, cast

from rpc_svc.access import check_actor, check_member, check_same_user
from rpc_svc.chat import (
    NO_READ,
    TIES,
    Chat,
    Entry,
    InboxPage,
    Page,
    ReadMark,
    Tip,
    build_page,
    check_client_msg_id,
    check_cursor,
    check_text,
    check_user,
    check_wait_ms,
    inbox_cursor,
    page_limit,
    parse_chat,
    read_mark,
)
from rpc_svc.errors import IMError, Overloaded
from rpc_svc.group_service import (
    GroupCall,
    GroupCalls,
    build_inbox,
    page_or_refused,
    plan_pull,
    plan_send,
    sent_or_refused,
)
from rpc_svc.groups import DEFAULT_MAX_MEMBERS, Group, UserGroupList, check_group, is_group
from rpc_svc.store import Append, Latest, MarkRead, Outcome, Read, RedisStore
from rpc_svc.store_groups import DEFAULT_MAX_GROUPS, GroupAppend, GroupRead
from rpc_svc.store_groups import InboxPage as InboxPageOp

POLL_S = 0.5  # a long poll's re-read interval while wake-ups cannot be watched
log = logging.getLogger(__name__)


class SendCall(NamedTuple):
    """Store `text` from `sender` in `chat`, idempotent on a non-empty client_msg_id,
    else on a non-empty retry_key (the gateway's own key, remembered briefly)."""

    chat: str
    sender: str
    text: str
    client_msg_id: str = ""
    retry_key: str = ""
    actor: str = ""  # the authenticated user ("" when authentication is off)


class PullCall(NamedTuple):
    """Read one page of `chat` from `cursor`; a forward pull with `wait_ms` long-polls
    (see ChatService.pull_wait; in a batch of several calls nothing waits)."""

    chat: str
    cursor: int = 0
    limit: int = 0
    reverse: bool = False
    wait_ms: int = 0
    actor: str = ""


class ChatsCall(NamedTuple):
    """One page of `user`'s chats, most recently active first, from `cursor` (0: the top)."""

    user: str
    cursor: int = 0
    limit: int = 0
    actor: str = ""


class ReadCall(NamedTuple):
    """Move `user`'s read position in `chat` forward to `send_time`."""

    chat: str
    user: str
    send_time: int
    actor: str = ""


class ReadDone(NamedTuple):
    """What a read answers: the read position kept (the send time of the last message
    read; it never moves back)."""

    chat: str
    user: str
    read_until: int


class Sent(NamedTuple):
    """What a send answers: the canonical chat and the message's send time."""

    chat: str
    send_time: int


Call = SendCall | PullCall | ChatsCall | ReadCall | GroupCall
Result = Sent | Page | InboxPage | ReadDone | Group | UserGroupList | IMError
PlannedOp = Append | Read | GroupAppend | GroupRead | InboxPageOp
Plan = tuple[Chat | None, PlannedOp]


class ChatService:
    """Send and pull, with every rule of the contract checked before the store is touched.

    Each call may carry the acting user (the authenticated caller): then it may only send
    as, and read the inbox of, itself, and pull only chats it is a member of. With
    `require_user`, a call without one is refused (UserRequired).
    """

    def __init__(
        self,
        store: RedisStore,
        max_text_bytes: int,
        max_waiting: int = 10_000,
        *,
        require_user: bool = False,
        max_group_members: int = DEFAULT_MAX_MEMBERS,
        group_fanout_max: int = 100,
        max_groups: int = DEFAULT_MAX_GROUPS,
    ) -> None:
        self._store = store
        self._groups = GroupCalls(store, max_group_members, group_fanout_max, max_groups)
        self._max_text_bytes = max_text_bytes
        self._max_waiting = max_waiting
        self._require_user = require_user
        self._rereads = SharedReads()
        self.waiting = 0  # long polls waiting now

    async def run(self, calls: Sequence[Call | IMError]) -> list[Result]:
        """Answer each call, in order; the valid ones go to the store in one round trip.

        A call given as an IMError (it could not even be decoded) is answered with it.
        Inbox calls take more than one round trip; they run beside the others. A call's
        failure is its own: whatever goes wrong with one (a bug included) answers that call
        with an error and none of the others.
        """
        results: list[Result | None] = [None] * len(calls)
        planned: list[tuple[int, Chat | None, PlannedOp]] = []
        inbox: list[tuple[int, ChatsCall | ReadCall | GroupCall]] = []
        for i, call in enumerate(calls):
            try:
                if isinstance(call, ChatsCall) and self._store.one_node:  # one script
                    planned.append((i, None, self._plan_inbox(call)))
                elif isinstance(call, ChatsCall | ReadCall | GroupCall):
                    inbox.append((i, call))
                else:
                    planned.append((i, *self._plan(call)))
            except IMError as exc:
                results[i] = exc
        ops = [op for _, _, op in planned]
        pipeline = self._store.execute(ops) if ops else _no_outcomes()
        if inbox:
            outcomes, *answers = await asyncio.gather(
                pipeline, *(self._inbox_call(call) for _, call in inbox)
            )
            for (i, _), answer in zip(inbox, answers, strict=True):
                results[i] = cast(Result, answer)
        else:
            outcomes = await pipeline
        for (i, chat, op), outcome in zip(planned, cast(list[Outcome], outcomes), strict=True):
            try:
                results[i] = _result(chat, op, outcome)
            except Exception as exc:  # a bug: this call's alone
                results[i] = _internal(op, exc)
        return cast(list[Result], results)

    def _plan_inbox(self, call: ChatsCall) -> InboxPageOp:
        """The store operation of an inbox page (one Redis: one script, batched)."""
        check_actor(call.actor, self._require_user)
        check_user(call.user)
        check_same_user(call.actor, call.user, "user")
        check_cursor(call.cursor)
        below, skip = inbox_cursor(call.cursor)
        return InboxPageOp(call.user, below, skip, page_limit(call.limit))

    async def chats(self, call: ChatsCall) -> InboxPage:
        """One page of a user's chats, each with its last message and the user's unread
        count: two round trips (the inbox with read positions, then each chat's last
        message); raise IMError otherwise."""
        check_actor(call.actor, self._require_user)
        check_user(call.user)
        check_same_user(call.actor, call.user, "user")
        check_cursor(call.cursor)
        limit = page_limit(call.limit)
        below, skip = inbox_cursor(call.cursor)
        return await self._groups.inbox(call.user, below, skip, limit, call.cursor)

    async def mark_read(self, call: ReadCall) -> ReadDone:
        """Move a member's read position forward to the last message at or before
        `send_time` (never back, never past what is stored); raise IMError otherwise."""
        check_actor(call.actor, self._require_user)
        if is_group(call.chat):
            check_user(call.user)
            check_same_user(call.actor, call.user, "user")
            check_cursor(call.send_time, "send_time")
            kept = await self._groups.mark(call.chat, call.user, call.send_time, call.actor)
            return ReadDone(call.chat, call.user, kept.send_time)
        chat = parse_chat(call.chat)
        check_same_user(call.actor, call.user, "user")
        chat.role_of(call.user, "user")
        check_cursor(call.send_time, "send_time")
        mark = NO_READ
        if call.send_time:
            tip = await self._store.one(Latest(chat.name, call.send_time))
            mark = read_mark(cast(Tip | None, tip))
        kept = cast(ReadMark, await self._store.one(MarkRead(call.user, chat.name, mark)))
        return ReadDone(chat.name, call.user, kept.send_time)

    async def _inbox_call(self, call: ChatsCall | ReadCall | GroupCall) -> Result:
        try:
            if isinstance(call, GroupCall):
                return await self.group(call)
            return await (self.chats(call) if isinstance(call, ChatsCall) else self.mark_read(call))
        except IMError as exc:
            return exc
        except Exception as exc:  # a bug: this call's alone
            return _internal(call, exc)

    async def group(self, call: GroupCall) -> Group | UserGroupList:
        """A group call (create, add, remove, members, list); raise IMError otherwise."""
        check_actor(call.actor, self._require_user)
        return await self._groups.call(call)

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
        read wakes it: none is missed. Only a message at or after the cursor wakes it, and
        the waiters of one page woken by one message share one read. Waiting holds no Redis
        connection; while the store's subscription is down it reads again every POLL_S
        seconds instead.
        """
        check_wait_ms(wait_ms)
        wakeups = self._store.wakeups
        if wait_ms == 0 or call.reverse:
            return await self.pull(call)
        chat = check_group(call.chat) if is_group(call.chat) else parse_chat(call.chat).name
        deadline = time.monotonic() + wait_ms / 1000
        woken_at: float | None = None
        while True:
            async with wakeups.watch(chat, call.cursor) as woken:
                if woken_at is None:
                    page = await self.pull(call)
                else:
                    page = await self._rereads.read(call._replace(wait_ms=0), woken_at, self.pull)
                left = deadline - time.monotonic()
                if page.messages or left <= 0 or wakeups.closed:
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

    async def ready(self) -> bool:
        """True when the store answers."""
        return await self._store.ping()

    def _plan(self, call: SendCall | PullCall | IMError) -> Plan:
        if isinstance(call, IMError):
            raise call
        check_actor(call.actor, self._require_user)
        if is_group(call.chat):
            if isinstance(call, SendCall):
                c = call
                return None, plan_send(
                    c.chat,
                    c.sender,
                    c.text,
                    c.client_msg_id,
                    c.retry_key,
                    c.actor,
                    self._max_text_bytes,
                )
            return None, plan_pull(call.chat, call.cursor, call.limit, call.reverse, call.actor)
        chat = parse_chat(call.chat)
        if isinstance(call, SendCall):
            check_same_user(call.actor, call.sender, "sender")
            role = chat.role_of(call.sender)
            check_text(call.text, self._max_text_bytes)
            check_client_msg_id(call.client_msg_id)
            check_client_msg_id(call.retry_key, "retry_key")
            return chat, Append(chat.name, role, call.text, call.client_msg_id, call.retry_key)
        check_member(call.actor, chat)
        check_cursor(call.cursor)
        # one entry beyond the page tells has_more and next_cursor
        return chat, Read(chat.name, call.cursor, page_limit(call.limit) + 1, call.reverse)


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


async def _no_outcomes() -> list[Outcome]:
    return []


def _internal(what: object, exc: Exception) -> IMError:
    """A call that failed for a reason the service does not know (a bug): that call's
    error, logged with its kind (never its parameters: they may hold a message text)."""
    log.error("a %s call failed: %s", type(what).__name__, exc, exc_info=exc)
    return IMError(f"im-rpc could not answer this {type(what).__name__}")


def _result(chat: Chat | None, op: PlannedOp, outcome: Outcome) -> Result:
    if isinstance(outcome, IMError):
        return outcome
    if isinstance(op, GroupAppend):
        sent = sent_or_refused(op.chat, op.sender, outcome)
        return sent if isinstance(sent, IMError) else Sent(op.chat, sent)
    if isinstance(op, GroupRead):
        return page_or_refused(op, outcome)
    if isinstance(op, InboxPageOp):
        return build_inbox(op, op.below * TIES + op.skip, outcome)
    assert chat is not None
    if isinstance(op, Append):
        assert isinstance(outcome, int)
        return Sent(chat.name, outcome)
    return build_page(chat, cast(list[Entry], outcome), op.cursor, op.entries - 1, op.reverse)
