"""The store's operations on a member's side of its groups, and on big groups' activity:
what each asks of Redis and how its answer reads (the scripts: store_member_scripts).

On one Redis the group scripts write a member's side in the same step as the group; these
operations are the cluster's steps (ReserveGroup, GroupState, UserSide, BigNote, BigChanged)
and the listing of a user's groups (UserGroups, on both)."""

from __future__ import annotations

from typing import Any, NamedTuple

from rpc_svc.store_keys import (
    BIG_KEYS,
    group_members_key,
    inbox_key,
    messages_key,
    reads_key,
    short_key,
    user_groups_key,
)
from rpc_svc.store_member_scripts import (
    BIG_CHANGED,
    BIG_NOTE,
    GROUP_STATE,
    USER_GROUPS,
    USER_RESERVE,
    USER_SIDE,
)


class ReserveGroup(NamedTuple):
    """Take a place for group `chat` among `user`'s groups: True, or False when the user
    is in `max_groups` groups already."""

    user: str
    chat: str
    max_groups: int


class GroupState(NamedTuple):
    """Whether `user` is a member of group `chat`, and its newest message's send time (0:
    none): a GroupTruth."""

    chat: str
    user: str


class GroupTruth(NamedTuple):
    """What a group says of one user: whether it is a member, and the group's newest send
    time (0: no message)."""

    member: bool
    newest: int


class UserSide(NamedTuple):
    """Make `user`'s side of group `chat` what `truth` says: the group in its groups and
    inbox (a member), or none of it and no read position (anyone else)."""

    user: str
    chat: str
    truth: GroupTruth


class UserGroups(NamedTuple):
    """The groups `user` is a member of (on one Redis checked against each group, and its
    side of any other dropped; on a cluster the set as it is, for the service to check)."""

    user: str


class BigNote(NamedTuple):
    """Big group `chat` got a message at `send_time` (a cluster's second step of a send)."""

    chat: str
    send_time: int


class BigChanged(NamedTuple):
    """The big groups with a message since sequence number `seen` (of `among`, when given;
    else of all, unless more than `most`): (the sequence number now, {group: its last send
    time}) or (the sequence number, None) when more than `most` changed."""

    seen: int
    most: int
    among: tuple[str, ...] = ()


MemberOp = ReserveGroup | GroupState | UserSide | UserGroups | BigNote | BigChanged
MEMBER_OPS = (ReserveGroup, GroupState, UserSide, UserGroups, BigNote, BigChanged)
WRITE_SHAS = {s.sha for s in (USER_RESERVE, USER_SIDE, USER_GROUPS, BIG_NOTE)}


def user_side_keys(user: str) -> tuple[str, str, str]:
    """A user's groups, inbox and read positions: its side of its groups."""
    return user_groups_key(user), inbox_key(user), reads_key(user)


def member_commands(op: MemberOp, one_node: bool) -> list[tuple[Any, ...]]:
    """The Redis commands of `op` (one slot each)."""
    match op:
        case ReserveGroup(user, chat, max_groups):
            return [("EVALSHA", USER_RESERVE.sha, 1, user_groups_key(user), chat, max_groups)]
        case GroupState(chat, user):
            keys = (group_members_key(chat), messages_key(chat), short_key(chat))
            return [("EVALSHA", GROUP_STATE.sha, 3, *keys, user)]
        case UserSide(user, chat, GroupTruth(member, newest)):
            flag = "1" if member else "0"
            return [("EVALSHA", USER_SIDE.sha, 3, *user_side_keys(user), chat, flag, newest)]
        case UserGroups(user):
            if one_node:
                return [("EVALSHA", USER_GROUPS.sha, 3, *user_side_keys(user), user)]
            return [("SMEMBERS", user_groups_key(user))]
        case BigNote(chat, send_time):
            return [("EVALSHA", BIG_NOTE.sha, 3, *BIG_KEYS, chat, send_time)]
        case BigChanged(seen, most, among):
            return [("EVALSHA", BIG_CHANGED.sha, 3, *BIG_KEYS, seen, most, *among)]
    raise AssertionError(op)


def member_outcome(op: MemberOp, raw: list[Any]) -> Any:
    """What `op` answers, from the replies of its commands."""
    reply = raw[0]
    match op:
        case ReserveGroup():
            return int(reply) > 0
        case GroupState():
            return GroupTruth(bool(int(reply[0])), int(reply[1]))
        case UserGroups():
            return sorted(reply)
        case BigChanged():
            top = int(reply[0])
            if len(reply) == 2 and reply[1] == "*":
                return top, None
            return top, {reply[i]: int(reply[i + 1]) for i in range(1, len(reply), 2)}
        case UserSide() | BigNote():
            return None
    raise AssertionError(op)
