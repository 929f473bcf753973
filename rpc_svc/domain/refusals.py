"""What the store's group operations answer instead of a result, and the errors they are.

The group scripts answer a negative number where a result would be a send time or a list;
each stands for one domain error here."""

from __future__ import annotations

from rpc_svc.domain.errors import Conflict, Forbidden, IMError, NotFound

UNKNOWN_GROUP, NOT_A_MEMBER, GROUP_FULL, NOT_THE_OWNER, OWNER_LEAVES = -1, -2, -3, -4, -5
TOO_MANY_GROUPS = -6
UNKNOWN_MESSAGE, NOT_THE_SENDER, WINDOW_CLOSED, RECALLED = -7, -8, -9, -10


def refusal(code: int, chat: str, user: str = "", send_time: int = 0, kind: str = "") -> IMError:
    """The domain error for a script's refusal `code` (an edit's or recall's: `kind` "e" or
    "r" of the message at `send_time`)."""
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
    if code == UNKNOWN_MESSAGE:
        return NotFound(f"send_time: no message at {send_time} in chat {chat!r}", "unknown_message")
    if code == NOT_THE_SENDER:
        field, who = ("sender", "its sender") if kind == "e" else ("user", "its sender")
        if kind == "r" and chat.startswith("#"):
            who = "its sender or the group's owner"
        return Forbidden(f"{field}: only {who} may {_verb(kind)} this message", "forbidden")
    if code == WINDOW_CLOSED:
        setting = "IM_EDIT_WINDOW_S" if kind == "e" else "IM_RECALL_WINDOW_S"
        return Conflict(
            f"send_time: the message is older than the {_verb(kind)} window ({setting})",
            "window_closed",
        )
    if code == RECALLED:
        return Conflict("send_time: the message was recalled: it cannot be edited", "recalled")
    raise AssertionError(code)


def _verb(kind: str) -> str:
    return "edit" if kind == "e" else "recall"
