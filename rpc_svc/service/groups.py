"""The group calls: create, add, remove, members, and a user's groups. Each call's rules
checked and its store operation planned; each outcome (or refusal code) turned into the
call's answer. The store keeps a group and each member's side of it in agreement."""

from __future__ import annotations

from typing import Any, NamedTuple

from im_common.calls import GroupCall
from rpc_svc.domain.access import check_same_user
from rpc_svc.domain.errors import Conflict, Forbidden, IMError, InvalidArgument
from rpc_svc.domain.names import check_group, check_name
from rpc_svc.domain.refusals import NOT_A_MEMBER, TOO_MANY_GROUPS, refusal
from rpc_svc.domain.values import Group, UserGroupList
from rpc_svc.service.planned import Planned
from rpc_svc.store.ops import AddMember, CreateGroup, GroupInfo, RemoveMember, UserGroups

GROUP_OPS = ("create", "add", "remove", "members", "list")


class GroupLimits(NamedTuple):
    """The bounds of groups: members per group, members of a small group, groups per user."""

    max_members: int
    fanout_max: int
    max_groups: int


def plan_group(call: GroupCall, limits: GroupLimits) -> Planned:
    """The store operation of a group call; InvalidArgument or Forbidden first."""
    if call.op not in GROUP_OPS:
        raise InvalidArgument(f"unknown group call {call.op[:16]!r}", "invalid_batch")
    if call.op == "list":
        check_name(call.user, "user")
        check_same_user(call.actor, call.user, "user")
        return Planned(UserGroups(call.user), _listed)
    check_group(call.chat)
    if call.op == "members":
        return Planned(GroupInfo(call.chat, call.actor), _members)
    check_name(call.user, "user")
    check_same_user(call.actor, call.user, "user")
    if call.op == "create":
        return Planned(CreateGroup(call.chat, call.user, limits.max_groups), _created)
    check_name(call.member, "member")
    acting = bool(call.actor)
    if call.op == "add":
        op = AddMember(
            call.chat, call.user, call.member, limits.max_members, limits.fanout_max,
            limits.max_groups, acting,
        )  # fmt: skip
        return Planned(op, _added)
    return Planned(RemoveMember(call.chat, call.user, call.member, acting), _removed)


def _listed(context: None, op: UserGroups, groups: list[str]) -> UserGroupList:
    return UserGroupList(op.user, groups)


def _members(context: None, op: GroupInfo, outcome: Group | int) -> Group | IMError:
    if isinstance(outcome, Group):
        return outcome
    if outcome == NOT_A_MEMBER:
        return Forbidden("the authenticated user is not a member of this group")
    return refusal(outcome, op.chat)


def _created(context: None, op: CreateGroup, code: int) -> Group | IMError:
    if code == 0:
        return Conflict(f"group {op.chat!r} exists already", "group_exists")
    if code < 0:
        return refusal(code, op.chat, op.owner)
    return Group(op.chat, op.owner, [op.owner])


def _added(
    context: None, op: AddMember, outcome: tuple[int, Any, Any, int, bool]
) -> Group | IMError:
    code, group, *_ = outcome
    if code < 0:
        return refusal(code, op.chat, op.member if code == TOO_MANY_GROUPS else op.user)
    return group  # type: ignore[no-any-return]


def _removed(
    context: None, op: RemoveMember, outcome: tuple[int, Any, int, int]
) -> Group | IMError:
    code, group, *_ = outcome
    if code < 0:
        return refusal(code, op.chat, op.user)
    return group  # type: ignore[no-any-return]
