"""The chat rules: chat names, members, texts, idempotency keys and paging.

Pure functions and value types; nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

from im_common.names import MAX_MEMBER_CHARS, NOT_NFC, member_fault
from rpc_svc.errors import InvalidArgument

MAX_CLIENT_MSG_ID_CHARS = 64
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
INT64_MAX = 2**63 - 1

_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Chat:
    """A chat between two members, held in canonical order (first <= second)."""

    first: str
    second: str

    @property
    def name(self) -> str:
        """The canonical chat name: the members sorted by code point, joined by ':'."""
        return f"{self.first}:{self.second}"

    def role_of(self, member: str, field: str = "sender") -> int:
        """0 for the first member, 1 for the second; InvalidArgument (naming `field`) otherwise."""
        if member == self.first:
            return 0
        if member == self.second:
            return 1
        raise InvalidArgument(
            f"{field} {member!r} is not a member of chat {self.name!r}", f"{field}_not_in_chat"
        )

    def member(self, role: int) -> str:
        """The member that plays `role` (0 or 1)."""
        return self.second if role else self.first


class Message(TypedDict):
    """A stored message as clients see it (a plain dict: pages are encoded straight to JSON)."""

    chat: str
    text: str
    sender: str
    send_time: int


class Entry(NamedTuple):
    """A message as the store keeps it: the sender as a role, not a name."""

    send_time: int
    role: int
    text: str


class Tip(NamedTuple):
    """A stored message with how many messages each member (by role) had sent up to and
    including it: unread counts are differences of two of these."""

    entry: Entry
    sent: tuple[int, int]


class ReadMark(NamedTuple):
    """A user's read position in a chat: the last message read, and the tally at it."""

    send_time: int
    sent: tuple[int, int]


NO_READ = ReadMark(0, (0, 0))


class InboxRow(NamedTuple):
    """A chat of a user's inbox: its position (the send time of its last message) and the
    user's read position in it."""

    chat: str
    position: int
    read: ReadMark


class InboxChat(TypedDict):
    """A chat as the inbox shows it."""

    chat: str
    last_message: Message
    unread: int


@dataclass(frozen=True, slots=True)
class InboxPage:
    """One page of a user's chats, most recently active first."""

    chats: list[InboxChat]
    has_more: bool
    next_cursor: int


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a pull."""

    messages: list[Message]
    has_more: bool
    next_cursor: int


def parse_chat(raw: str) -> Chat:
    """Parse "<member1>:<member2>" into its canonical Chat, or raise InvalidArgument."""
    first, sep, second = raw.partition(":")
    if not sep:
        raise InvalidArgument("chat must be '<member1>:<member2>' (no ':' found)", "invalid_chat")
    for member in (first, second):
        fault = member_fault(member)
        if fault == "length":
            raise InvalidArgument(
                f"chat members must be 1..{MAX_MEMBER_CHARS} characters", "invalid_chat"
            )
        if fault == "characters":
            raise InvalidArgument(
                "chat must have exactly one ':' and members without whitespace, control or "
                "format characters",
                "invalid_chat",
            )
        if fault == "nfc":
            raise InvalidArgument(f"chat members {NOT_NFC}", "invalid_chat")
    return Chat(first, second) if first <= second else Chat(second, first)


def stored_chat(name: str) -> Chat:
    """The Chat of a canonical name read back from the store (checked when it was written)."""
    first, _, second = name.partition(":")
    return Chat(first, second)


def check_user(user: str) -> None:
    """Raise InvalidArgument unless `user` could be a chat member (the rules of parse_chat)."""
    check_name(user, "user")


def check_name(value: str, field: str) -> None:
    """InvalidArgument (invalid_<field>) unless `value` is a valid member name."""
    fault = member_fault(value)
    if fault == "nfc":
        raise InvalidArgument(f"{field} {NOT_NFC}", f"invalid_{field}")
    if fault is not None:
        raise InvalidArgument(
            f"{field} must be 1..{MAX_MEMBER_CHARS} characters without ':', whitespace, "
            "control or format characters",
            f"invalid_{field}",
        )


def check_text(text: str, max_bytes: int) -> None:
    """Raise InvalidArgument unless `text` is 1..max_bytes bytes of UTF-8."""
    if not text:
        raise InvalidArgument("text must not be empty", "invalid_text")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidArgument(
            f"text is {size} bytes of UTF-8; the limit is {max_bytes}", "text_too_long"
        )


def check_client_msg_id(value: str, name: str = "client_msg_id") -> None:
    """Raise InvalidArgument unless `value` is empty (none) or 1..64 printable characters."""
    if len(value) > MAX_CLIENT_MSG_ID_CHARS or _CONTROL_CHAR.search(value):
        raise InvalidArgument(
            f"{name} must be 1..{MAX_CLIENT_MSG_ID_CHARS} characters without control characters",
            f"invalid_{name}",
        )


MAX_WAIT_MS = 30_000


def check_wait_ms(wait_ms: int) -> None:
    """Raise InvalidArgument unless 0 <= wait_ms <= MAX_WAIT_MS."""
    if not 0 <= wait_ms <= MAX_WAIT_MS:
        raise InvalidArgument(f"wait_ms must be 0..{MAX_WAIT_MS}", "invalid_wait_ms")


def page_limit(limit: int) -> int:
    """The page size for a requested `limit`: 0 means the default; 1..MAX_LIMIT."""
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be 1..{MAX_LIMIT} (0 for the default)", "invalid_limit")
    return limit


def check_cursor(cursor: int, name: str = "cursor") -> None:
    """Raise InvalidArgument unless 0 <= cursor <= 2**63-1."""
    if not 0 <= cursor <= INT64_MAX:
        raise InvalidArgument(f"{name} must be an integer 0..2^63-1", f"invalid_{name}")


def build_page(
    chat: Chat, entries: Sequence[Entry], cursor: int, limit: int, reverse: bool
) -> Page:
    """Turn up to limit+1 entries read from `cursor` into a page with its next cursor."""
    shown = entries[:limit]
    name, members = chat.name, (chat.first, chat.second)
    # dict displays: calling Message(...) (a dict with keywords) costs twice as much
    messages: list[Message] = [
        {"chat": name, "text": text, "sender": members[role], "send_time": send_time}
        for send_time, role, text in shown
    ]
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


# An inbox cursor is a position (µs) * TIES + how many chats at that position (ties: active
# in the same microsecond) were already shown, so paging shows each chat once.
TIES = 1000


def inbox_cursor(cursor: int) -> tuple[int, int]:
    """(position, chats of that position to skip) of an inbox cursor; (0, 0): the top."""
    return divmod(cursor, TIES)


class InboxItem(NamedTuple):
    """A chat or group of an inbox, at its position; `shown` is None for a chat without
    messages (it counts for paging, but is not shown)."""

    position: int
    chat: str
    shown: InboxChat | None


def build_inbox_page(
    user: str, rows: Sequence[InboxRow], latest: Sequence[Tip | None], limit: int, cursor: int
) -> InboxPage:
    """Turn up to limit+1 inbox rows read from `cursor`, with each chat's latest message,
    into a page (like a reverse pull: next_cursor points at the first chat left)."""
    return page_inbox(inbox_items(user, rows, latest), limit, cursor)


def inbox_items(
    user: str, rows: Sequence[InboxRow], latest: Sequence[Tip | None]
) -> list[InboxItem]:
    """The 1:1 chats of inbox `rows` as items; a row beyond `latest` is not shown."""
    items = []
    for i, row in enumerate(rows):
        tip = latest[i] if i < len(latest) else None
        shown = None
        if tip is not None:  # an inbox row for a chat without messages: nothing to show
            chat = stored_chat(row.chat)
            role = chat.role_of(user, "user")
            shown = InboxChat(
                chat=row.chat,
                last_message=_message(chat, tip.entry),
                unread=unread(role, tip, row.read),
            )
        items.append(InboxItem(row.position, row.chat, shown))
    return items


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


def _message(chat: Chat, entry: Entry) -> Message:
    return Message(
        chat=chat.name,
        text=entry.text,
        sender=chat.member(entry.role),
        send_time=entry.send_time,
    )
