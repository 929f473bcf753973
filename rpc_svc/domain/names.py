"""Chat and group names: what a 1:1 chat, a group and a member may be called, and the
canonical form of a 1:1 chat. A group is "#<name>": '#' and 1..64 characters under the
member-name rules (no ':'), so it never looks like a 1:1 chat (which always has one ':')."""

from __future__ import annotations

from dataclasses import dataclass

from im_common.names import MAX_MEMBER_CHARS, NOT_NFC, member_fault
from rpc_svc.domain.errors import InvalidArgument

GROUP_PREFIX = "#"
_GROUP_RULE = (
    f"chat: a group is '#' and 1..{MAX_MEMBER_CHARS} characters without ':', whitespace, "
    "control or format characters"
)


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


def is_group(chat: str) -> bool:
    """Whether `chat` names a group (else it is a 1:1 chat, or malformed)."""
    return chat.startswith(GROUP_PREFIX) and ":" not in chat


def check_group(chat: str) -> str:
    """`chat` if it is a valid group name, else InvalidArgument (invalid_chat)."""
    fault = member_fault(chat[len(GROUP_PREFIX) :]) if is_group(chat) else "characters"
    if fault == "nfc":
        raise InvalidArgument(f"chat: a group's name {NOT_NFC}", "invalid_chat")
    if fault is not None:
        raise InvalidArgument(_GROUP_RULE, "invalid_chat")
    return chat


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


def check_user(user: str) -> None:
    """Raise InvalidArgument unless `user` could be a chat member (the rules of parse_chat)."""
    check_name(user, "user")
