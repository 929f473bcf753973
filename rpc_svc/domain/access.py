"""Who may act on what: the authorization rules im-rpc enforces for the acting user.

The gateway verifies the caller's token and passes its `sub` as the acting user (""
when authentication is off: then every call is allowed, as in the original open API).
Pure functions; nothing here does I/O.
"""

from __future__ import annotations

from rpc_svc.domain.errors import Forbidden, UserRequired
from rpc_svc.domain.names import Chat


def check_actor(actor: str, required: bool) -> None:
    """UserRequired when the call has no acting user and this instance requires one."""
    if required and not actor:
        raise UserRequired("this im-rpc serves only calls that carry the acting user")


def check_same_user(actor: str, given: str, field: str) -> None:
    """Forbidden when an acting user is set and `field` names someone else."""
    if actor and given != actor:
        raise Forbidden(f"{field} must be the authenticated user")


def check_member(actor: str, chat: Chat) -> None:
    """Forbidden when an acting user is set and is not a member of `chat` (whether or not
    the chat has messages: the answer tells nothing about what exists)."""
    if actor and actor != chat.first and actor != chat.second:
        raise Forbidden("the authenticated user is not a member of this chat")
