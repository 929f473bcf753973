"""The values the rules work on and the answers they make: messages as clients see them and
as the store keeps them, read positions, pages, inbox rows, groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, NotRequired, TypedDict


class Message(TypedDict):
    """A stored message as clients see it (a plain dict: pages are encoded straight to JSON):
    an edited one also carries `edited_at`, a recalled one `recalled` (and no text)."""

    chat: str
    text: str
    sender: str
    send_time: int
    edited_at: NotRequired[int]
    recalled: NotRequired[bool]


class Entry(NamedTuple):
    """A message of a 1:1 chat as the store keeps it: the sender as a role, not a name;
    `change` its edit (edited_at, > 0) or recall (-recalled at; no text), 0 for none."""

    send_time: int
    role: int
    text: str
    change: int = 0


class Tip(NamedTuple):
    """A 1:1 chat's message with how many messages each member (by role) had sent up to and
    including it: unread counts are differences of two of these."""

    entry: Entry
    sent: tuple[int, int]


class GroupEntry(NamedTuple):
    """A group message as the store keeps it (`change` as an Entry's)."""

    send_time: int
    sender: str
    text: str
    change: int = 0


class GroupTip(NamedTuple):
    """A group's message with the group's message count up to and including it."""

    entry: GroupEntry
    messages: int


class ReadMark(NamedTuple):
    """A user's read position in a chat: the last message read, and the tally at it (a 1:1
    chat: each member's messages; a group: all messages, and the user's own)."""

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


class Group(NamedTuple):
    """A group as the API shows it: its owner and members, sorted by code point."""

    chat: str
    owner: str
    members: list[str]


class UserGroupList(NamedTuple):
    """The groups a user is a member of, sorted by code point."""

    user: str
    groups: list[str]


class FeedEvent(NamedTuple):
    """An event of a user's sync feed as the store read it: `kind` message, read, joined or
    left; the chat (canonical); `number` (a message's send time, a read position, or the
    group's newest send time at a join or leave); a message's entry (Entry: a 1:1 chat's,
    GroupEntry: a group's)."""

    kind: str
    chat: str
    number: int
    entry: Entry | GroupEntry | None = None


class FeedPage(NamedTuple):
    """A page of a user's sync feed: `status` ok, reset (no feed, another epoch, records
    gone) or lost (records the token read that the feed no longer has: a store that lost
    its newest writes); the feed's epoch, the position after the page (records read, and the
    send time last given of a range read in part), whether more events wait, the events,
    (when asked, for a wait) the user's big groups and their positions (the last message
    given, the change log's records read), and the check of the record read last (its kind
    and number, for the next token; "": none)."""

    status: str
    epoch: str = ""
    position: int = 0
    place: int = 0
    more: bool = False
    events: tuple[FeedEvent, ...] = ()
    watch: tuple[tuple[str, int, int], ...] = ()
    check: str = ""


@dataclass(frozen=True, slots=True)
class SyncPage:
    """What a sync answers: its events (as clients see them), the next token, and whether
    more events wait; for a wait (not answered), the user's big groups and their positions."""

    events: list[dict[str, Any]]
    next: str
    has_more: bool
    watch: tuple[tuple[str, int, int], ...] = ()


class Changed(NamedTuple):
    """What an edit or a recall answers: the message (its chat and send time), when it was
    edited or recalled; `erasing` (not answered) when its text waits in a stream."""

    chat: str
    send_time: int
    at: int
    recalled: bool
    erasing: bool = False


class Sent(NamedTuple):
    """What a send answers: the canonical chat and the message's send time."""

    chat: str
    send_time: int


class ReadDone(NamedTuple):
    """What a read answers: the read position kept (the send time of the last message
    read; it never moves back)."""

    chat: str
    user: str
    read_until: int
