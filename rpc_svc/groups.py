"""The group chat rules: names, who may add and remove whom, unread counts.

A group is named "#<name>": '#' and 1..64 characters under the member-name rules (no ':',
whitespace or control characters), so it never looks like a 1:1 chat (which always has
one ':'). Pure functions and value types; nothing here does I/O.
"""

from __future__ import annotations

from typing import NamedTuple

from im_common.names import MAX_MEMBER_CHARS, NOT_NFC, member_fault
from rpc_svc.chat import ReadMark
from rpc_svc.errors import Conflict, Forbidden, IMError, InvalidArgument, NotFound

GROUP_PREFIX = "#"
DEFAULT_MAX_MEMBERS = 1000


def is_group(chat: str) -> bool:
    """Whether `chat` names a group (else it is a 1:1 chat, or malformed)."""
    return chat.startswith(GROUP_PREFIX) and ":" not in chat


def check_group(chat: str) -> str:
    """`chat` if it is a valid group name, else InvalidArgument (invalid_chat)."""
    fault = member_fault(chat[len(GROUP_PREFIX) :]) if is_group(chat) else "characters"
    if fault == "nfc":
        raise InvalidArgument(f"a group's name {NOT_NFC}", "invalid_chat")
    if fault is not None:
        raise InvalidArgument(
            f"a group is '#' and 1..{MAX_MEMBER_CHARS} characters without ':', whitespace, "
            "control or format characters",
            "invalid_chat",
        )
    return chat


class GroupEntry(NamedTuple):
    """A group message as the store keeps it."""

    send_time: int
    sender: str
    text: str


class GroupTip(NamedTuple):
    """A group's message with the group's message count up to and including it."""

    entry: GroupEntry
    messages: int


class Group(NamedTuple):
    """A group as the API shows it: its owner and members, sorted by code point."""

    chat: str
    owner: str
    members: list[str]


class UserGroupList(NamedTuple):
    """The groups a user is a member of, sorted by code point."""

    user: str
    groups: list[str]


# What the store's group scripts answer instead of a result (negative: never a send time).
UNKNOWN_GROUP, NOT_A_MEMBER, GROUP_FULL, NOT_THE_OWNER, OWNER_LEAVES = -1, -2, -3, -4, -5
TOO_MANY_GROUPS = -6


def refusal(code: int, chat: str, user: str = "") -> IMError:
    """The domain error for a group script's refusal `code`."""
    if code == UNKNOWN_GROUP:
        return NotFound(f"group {chat!r} does not exist", "unknown_group")
    if code == NOT_A_MEMBER:
        return Forbidden(f"{user!r} is not a member of group {chat!r}", "not_a_member")
    if code == GROUP_FULL:
        return Conflict(f"group {chat!r} has as many members as it may have", "group_full")
    if code == NOT_THE_OWNER:
        return Forbidden("only the owner removes other members", "forbidden")
    if code == OWNER_LEAVES:
        return Conflict("the owner cannot leave the group", "owner_cannot_leave")
    if code == TOO_MANY_GROUPS:
        return Conflict(
            f"{user!r} is in as many groups as a user may be (IM_USER_MAX_GROUPS)",
            "too_many_groups",
        )
    raise AssertionError(code)


def group_unread(latest_count: int, own_now: int, read: ReadMark) -> int:
    """The other members' messages after a member's read position: all messages after it
    (`latest_count` is the group's message count; the mark holds the count at the read
    position and the member's own count there) less the member's own since then."""
    total_after = latest_count - read.sent[0]
    own_after = own_now - read.sent[1]
    return max(0, total_after - own_after)
