"""Pages: a pull's page and its next cursor, an inbox page of 1:1 chats and groups with
their unread counts, and the read positions those counts start from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from rpc_svc.domain.errors import InvalidArgument
from rpc_svc.domain.names import Chat, is_group, stored_chat
from rpc_svc.domain.values import (
    NO_READ,
    Entry,
    GroupEntry,
    GroupTip,
    InboxChat,
    InboxPage,
    InboxRow,
    Message,
    Page,
    ReadMark,
    Tip,
)

# An inbox cursor is a position (µs) * TIES + how many chats at that position (ties: active
# in the same microsecond) were already shown, so paging shows each chat once.
TIES = 1000


def build_page(
    chat: Chat, entries: Sequence[Entry], cursor: int, limit: int, reverse: bool
) -> Page:
    """Turn up to limit+1 entries read from `cursor` into a page with its next cursor."""
    shown = entries[:limit]
    name, members = chat.name, (chat.first, chat.second)
    # dict displays: calling Message(...) (a dict with keywords) costs twice as much
    messages: list[Message] = [
        {"chat": name, "text": text, "sender": members[role], "send_time": send_time}
        for send_time, role, text, _ in shown
    ]
    if any(e[3] for e in shown):
        changed(messages, shown)
    return paged(messages, entries, cursor, limit, reverse)


def changed(messages: list[Message], entries: Sequence[Entry | GroupEntry]) -> None:
    """Mark each message as its entry's change says: edited (`edited_at`) or recalled
    (`recalled`, no text)."""
    for message, entry in zip(messages, entries, strict=False):
        show_change(message, entry.change)


def show_change(message: Message, change: int) -> None:
    """Mark `message` edited (change > 0: its edited_at) or recalled (< 0)."""
    if change > 0:
        message["edited_at"] = change
    elif change < 0:
        message["text"] = ""
        message["recalled"] = True


def build_group_page(
    chat: str, entries: Sequence[GroupEntry], cursor: int, limit: int, reverse: bool
) -> Page:
    """Up to limit+1 group entries read from `cursor` as a page (the rules of a 1:1 pull)."""
    shown = entries[:limit]
    messages: list[Message] = [
        {"chat": chat, "text": text, "sender": sender, "send_time": send_time}
        for send_time, sender, text, _ in shown
    ]
    if any(e[3] for e in shown):
        changed(messages, shown)
    return paged(messages, entries, cursor, limit, reverse)


def paged(
    messages: list[Message], entries: Sequence[Any], cursor: int, limit: int, reverse: bool
) -> Page:
    """The page of `messages` (the first `limit` of `entries`, read from `cursor`, each with
    a send_time): has_more and the next cursor, as the contract says, for chats and groups."""
    if len(entries) > limit:
        return Page(messages, True, entries[limit].send_time)
    if reverse:
        return Page(messages, False, 0)
    return Page(messages, False, messages[-1]["send_time"] + 1 if messages else cursor)


def read_mark(tip: Tip | None) -> ReadMark:
    """The read position of a user who has read up to `tip` (the chat's last message at or
    before the time they named; None when there is none)."""
    return NO_READ if tip is None else ReadMark(tip.entry.send_time, tip.sent)


def unread(role: int, latest: Tip, read: ReadMark) -> int:
    """How many messages of the other member lie after the read position of member `role`."""
    other = 1 - role
    return max(0, latest.sent[other] - read.sent[other])


def group_unread(latest_count: int, own_now: int, read: ReadMark) -> int:
    """The other members' messages after a member's read position: all messages after it
    (`latest_count` is the group's message count; the mark holds the count at the read
    position and the member's own count there) less the member's own since then."""
    total_after = latest_count - read.sent[0]
    own_after = own_now - read.sent[1]
    return max(0, total_after - own_after)


def inbox_cursor(cursor: int) -> tuple[int, int]:
    """(position, chats of that position to skip) of an inbox cursor; (0, 0): the top."""
    return divmod(cursor, TIES)


class InboxItem(NamedTuple):
    """A chat or group of an inbox, at its position; `shown` is None for a row without a
    message to show (it counts for paging, but is not shown)."""

    position: int
    chat: str
    shown: InboxChat | None


def build_inbox(
    user: str,
    rows: Sequence[InboxRow],
    tips: Sequence[Tip | GroupTip | None],
    owns: Sequence[int | None],
    skip: int,
    limit: int,
    cursor: int,
) -> InboxPage:
    """The page of an inbox read: `rows` read from `cursor` (skip + limit + 1 of them) with
    the newest message of each row the page may show (and in a group the user's own count).
    A row without one (no message, or a group whose user is no member: a change cut short)
    counts for paging but is not shown."""
    items = []
    for i, row in enumerate(rows):
        tip = tips[i] if i < len(tips) else None
        shown = None
        if isinstance(tip, GroupTip):
            own = owns[i]
            if own is not None:
                shown = _group_row(row.chat, tip, own, row.read)
        elif tip is not None and not is_group(row.chat):
            shown = _pair_row(user, row, tip)
        items.append(InboxItem(row.position, row.chat, shown))
    items.sort(key=lambda item: (item.position, item.chat), reverse=True)
    below = inbox_cursor(cursor)[0]
    if skip:
        at_below = set([i for i, item in enumerate(items) if item.position == below][:skip])
        items = [item for i, item in enumerate(items) if i not in at_below]
    return page_inbox(items[: limit + 1], limit, cursor)


def page_inbox(items: Sequence[InboxItem], limit: int, cursor: int) -> InboxPage:
    """Up to limit+1 items read from `cursor` (most recent first) as a page."""
    has_more = len(items) > limit
    next_cursor = 0
    if has_more:
        position = items[limit].position
        shown = sum(1 for item in items[:limit] if item.position == position)
        below, skipped = inbox_cursor(cursor)
        if below == position:  # the same microsecond as the page before: those count too
            shown += skipped
        if shown >= TIES:
            raise InvalidArgument(
                f"more than {TIES - 1} chats at one microsecond: page with a larger limit",
                "invalid_limit",
            )
        next_cursor = position * TIES + shown
    chats = [item.shown for item in items[:limit] if item.shown is not None]
    return InboxPage(chats, has_more, next_cursor)


def _pair_row(user: str, row: InboxRow, tip: Tip) -> InboxChat:
    chat = stored_chat(row.chat)
    entry = tip.entry
    last = Message(
        chat=row.chat, text=entry.text, sender=chat.member(entry.role), send_time=entry.send_time
    )
    show_change(last, entry.change)
    return InboxChat(
        chat=row.chat, last_message=last, unread=unread(chat.role_of(user, "user"), tip, row.read)
    )


def _group_row(chat: str, tip: GroupTip, own: int, mark: ReadMark) -> InboxChat:
    entry = tip.entry
    last = Message(chat=chat, text=entry.text, sender=entry.sender, send_time=entry.send_time)
    show_change(last, entry.change)
    return InboxChat(chat=chat, last_message=last, unread=group_unread(tip.messages, own, mark))
