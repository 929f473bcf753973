"""What the store's group operations answer instead of a result, and the errors they are.

The group scripts answer a negative number where a result would be a send time or a list;
each stands for one domain error here."""

from __future__ import annotations

from rpc_svc.domain.errors import Conflict, Forbidden, IMError, NotFound

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
