"""The values the rules work on and the answers they make: messages as clients see them and
as the store keeps them, read positions, pages, inbox rows, groups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, TypedDict


class Message(TypedDict):
    """A stored message as clients see it (a plain dict: pages are encoded straight to JSON)."""

    chat: str
    text: str
    sender: str
    send_time: int


class Entry(NamedTuple):
    """A message of a 1:1 chat as the store keeps it: the sender as a role, not a name."""

    send_time: int
    role: int
    text: str


class Tip(NamedTuple):
    """A 1:1 chat's message with how many messages each member (by role) had sent up to and
    including it: unread counts are differences of two of these."""

    entry: Entry
    sent: tuple[int, int]


class GroupEntry(NamedTuple):
    """A group message as the store keeps it."""

    send_time: int
    sender: str
    text: str


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
