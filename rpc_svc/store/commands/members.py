"""The commands of a member's side of its groups and of big groups' activity: a cluster
backend's steps (one Redis writes a member's side in the group's script), and the listing of
a user's groups."""

from __future__ import annotations

from typing import Any

from rpc_svc.store.commands.plan import Command, Plan
from rpc_svc.store.keys import (
    BIG_CHANGES_KEY,
    BIG_KEYS,
    change_log_key,
    group_members_key,
    messages_key,
    short_key,
    sync_channel,
    user_groups_key,
    user_side_keys,
)
from rpc_svc.store.lua import (
    BIG_CHANGED,
    GROUP_STATE,
    USER_GROUPS,
    USER_RESERVE,
    USER_SIDE,
)
from rpc_svc.store.ops import (
    BigChanged,
    GroupState,
    GroupTruth,
    ReserveGroup,
    UserGroups,
    UserGroupSet,
    UserSide,
)

OPS = (ReserveGroup, GroupState, UserSide, UserGroups, UserGroupSet, BigChanged)


def commands(op: Any, plan: Plan) -> list[Command]:
    """The commands of a member-side operation (one slot each)."""
    match op:
        case ReserveGroup(user, chat, max_groups):
            return [("EVALSHA", USER_RESERVE.sha, 1, user_groups_key(user), chat, max_groups)]
        case GroupState(chat, user):
            keys = (
                group_members_key(chat), messages_key(chat), short_key(chat),
                change_log_key(chat),
            )  # fmt: skip
            return [("EVALSHA", GROUP_STATE.sha, 4, *keys, user)]
        case UserSide(user, chat, GroupTruth(member, newest, count), at, changes, log):
            flag = "1" if member else "0"
            return [
                (
                    "EVALSHA", USER_SIDE.sha, 4, *user_side_keys(user), chat, flag, newest, at,
                    sync_channel(user), changes if changes >= 0 else count, log,
                )
            ]  # fmt: skip
        case UserGroups(user):
            return [
                ("EVALSHA", USER_GROUPS.sha, 4, *user_side_keys(user), user, sync_channel(user))
            ]
        case UserGroupSet(user):
            return [("SMEMBERS", user_groups_key(user))]
        case BigChanged(seen, most, among):
            keys = (*BIG_KEYS, BIG_CHANGES_KEY)
            return [("EVALSHA", BIG_CHANGED.sha, 4, *keys, seen, most, *among)]
    raise AssertionError(op)


def outcome(op: Any, replies: list[Any]) -> Any:
    """What a member-side operation answers."""
    reply = replies[0]
    match op:
        case ReserveGroup():
            return int(reply) > 0
        case GroupState():
            return GroupTruth(bool(int(reply[0])), int(reply[1]), int(reply[2]))
        case UserGroups() | UserGroupSet():
            return sorted(reply)
        case BigChanged():
            top = int(reply[0])
            if len(reply) == 2 and reply[1] == "*":
                return top, None
            return top, {
                reply[i]: (int(reply[i + 1]), int(reply[i + 2])) for i in range(1, len(reply), 3)
            }
        case UserSide():
            return None
    raise AssertionError(op)
