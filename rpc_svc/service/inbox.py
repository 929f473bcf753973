"""The inbox: a page of a user's 1:1 chats and groups (small and big alike), most recently
active first, each with its last message and the user's unread count; and read positions,
which those counts start from."""

from __future__ import annotations

from typing import Any, cast

from im_common.calls import ChatsCall, ReadCall
from rpc_svc.domain.access import check_same_user
from rpc_svc.domain.names import check_group, check_user, is_group, parse_chat
from rpc_svc.domain.paging import build_inbox, inbox_cursor, read_mark
from rpc_svc.domain.refusals import refusal
from rpc_svc.domain.rules import check_cursor, page_limit
from rpc_svc.domain.values import NO_READ, InboxPage, ReadDone, ReadMark, Tip
from rpc_svc.service.planned import Planned
from rpc_svc.store.interface import Store
from rpc_svc.store.ops import GroupMark, GroupMarked, InboxRows, Latest, MarkRead


def plan_inbox(call: ChatsCall) -> Planned:
    """The store operation of an inbox page; InvalidArgument or Forbidden first."""
    check_user(call.user)
    check_same_user(call.actor, call.user, "user")
    check_cursor(call.cursor)
    below, skip = inbox_cursor(call.cursor)
    return Planned(InboxRows(call.user, below, skip, page_limit(call.limit)), _page, call.cursor)


def _page(cursor: int, op: InboxRows, outcome: Any) -> InboxPage:
    rows, tips, owns = outcome
    return build_inbox(op.user, rows, tips, owns, op.skip, op.limit, cursor)


async def mark_read(store: Store, call: ReadCall) -> ReadDone:
    """Move a member's read position forward to the last message at or before
    `send_time` (never back, never past what is stored): where that message is, then the
    position kept (two round trips); raise IMError otherwise."""
    if is_group(call.chat):
        check_group(call.chat)
        check_user(call.user)
        check_same_user(call.actor, call.user, "user")
        check_cursor(call.send_time, "send_time")
        marked = await store.one(GroupMark(call.chat, call.user, call.send_time, bool(call.actor)))
        if isinstance(marked, int):
            raise refusal(marked, call.chat, call.user)
        mark, newest, changes = cast(GroupMarked, marked)
        kept = await store.one(MarkRead(call.user, call.chat, mark, True, newest, changes))
        return ReadDone(call.chat, call.user, cast(ReadMark, kept).send_time)
    chat = parse_chat(call.chat)
    check_same_user(call.actor, call.user, "user")
    chat.role_of(call.user, "user")
    check_cursor(call.send_time, "send_time")
    mark = NO_READ
    if call.send_time:
        mark = read_mark(cast(Tip | None, await store.one(Latest(chat.name, call.send_time))))
    kept = cast(ReadMark, await store.one(MarkRead(call.user, chat.name, mark)))
    return ReadDone(chat.name, call.user, kept.send_time)
