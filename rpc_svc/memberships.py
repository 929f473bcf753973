"""Membership changes: a group's members, and each member's side of it (the group among its
groups, its inbox row and its read position), kept in agreement on one Redis and on a
cluster. See docs/store.md, "Membership".

On one Redis a change is one script that writes both: atomic. On a cluster the group and
the user live in different slots, so a change takes steps: for a join, a place reserved
among the user's groups (the bound IM_USER_MAX_GROUPS); the group's script (the truth: who
may send, pull and read); then `settle`: the user's side written as the group says, the
group read again, and again until a read agrees with what was written. Whatever ran in
between, the last write to a user's side agrees with the group's last change: every change
ends with a read after its own last write, and a later change of the group writes the side
after its own group step. A change cut short (im-rpc gone between two steps) leaves a side
that readers check against the group (the inbox shows no group its user is not a member of)
and that the next change of that user and group, or a read that meets it, settles.
"""

from __future__ import annotations

import asyncio
from typing import cast

from rpc_svc.errors import Conflict, IMError
from rpc_svc.groups import TOO_MANY_GROUPS, Group, refusal
from rpc_svc.store import MarkRead, RedisStore
from rpc_svc.store_groups import AddMember, CreateGroup, RemoveMember
from rpc_svc.store_members import GroupState, GroupTruth, ReserveGroup, UserGroups, UserSide

SETTLE_ROUNDS = 4  # a user's side written at most this often per change (then a later one settles)


class Memberships:
    """Create, add, remove and list, with the member's side kept as the group says."""

    def __init__(
        self, store: RedisStore, max_members: int, fanout_max: int, max_groups: int
    ) -> None:
        self._store = store
        self._max_members = max_members
        self._fanout_max = fanout_max
        self._max_groups = max_groups

    async def create(self, chat: str, owner: str) -> Group:
        """Make group `chat` with `owner` its only member (Conflict when it exists, or when
        the owner is in as many groups as it may be)."""
        fits = True
        if not self._store.one_node:
            fits = bool(await self._store.one(ReserveGroup(owner, chat, self._max_groups)))
        code = await self._store.one(CreateGroup(chat, owner, self._max_groups, fits))
        if not self._store.one_node:
            await self.settle(owner, chat)
        if code == 0:
            raise Conflict(f"group {chat!r} exists already", "group_exists")
        if code < 0:
            raise refusal(code, chat, owner)
        return Group(chat, owner, [owner])

    async def add(self, chat: str, user: str, member: str, acting: bool) -> Group:
        """`user` (a member) adds `member`; adding a member again changes nothing."""
        one_node, fits = self._store.one_node, True
        if not one_node:
            fits = bool(await self._store.one(ReserveGroup(member, chat, self._max_groups)))
        op = AddMember(
            chat, user, member, self._max_members, self._fanout_max, self._max_groups, acting, fits
        )
        code, group, newest = await self._store.one(op)
        if not one_node:
            if code == 1 and newest.send_time:  # on joining: its read position at the newest
                await self._store.one(MarkRead(member, chat, newest))
            await self.settle(member, chat)  # also when refused: the place reserved goes
        if code < 0:
            raise refusal(code, chat, user if code != TOO_MANY_GROUPS else member)
        return cast(Group, group)

    async def remove(self, chat: str, user: str, member: str, acting: bool) -> Group:
        """The owner removes `member`, or a member leaves; a non-member changes nothing."""
        code, group = await self._store.one(RemoveMember(chat, user, member, acting))
        if code < 0:
            raise refusal(code, chat, user)
        if not self._store.one_node:  # also when it was no member: a side left over heals
            await self.settle(member, chat)
        return cast(Group, group)

    async def groups_of(self, user: str) -> list[str]:
        """The groups `user` is a member of, sorted (a side left over is settled)."""
        listed = cast(list[str], await self._store.one(UserGroups(user)))
        if self._store.one_node or not listed:
            return listed
        truths = await self._store.execute([GroupState(g, user) for g in listed])
        for truth in truths:
            if isinstance(truth, IMError):
                raise truth
        stale = [g for g, t in zip(listed, truths, strict=True) if not t.member]
        await self.settle_all(user, stale)
        return [g for g in listed if g not in stale]

    async def settle_all(self, user: str, chats: list[str]) -> None:
        """Settle `user`'s side of each of `chats`, together."""
        if chats:
            await asyncio.gather(*(self.settle(user, chat) for chat in chats))

    async def settle(self, user: str, chat: str) -> None:
        """Make `user`'s side of group `chat` what the group says (a cluster's last step of
        a change): write it, read the group again, until the two agree (or SETTLE_ROUNDS:
        then a change under way writes after this, and settles it itself)."""
        truth = cast(GroupTruth, await self._store.one(GroupState(chat, user)))
        for _ in range(SETTLE_ROUNDS):
            await self._store.one(UserSide(user, chat, truth))
            again = cast(GroupTruth, await self._store.one(GroupState(chat, user)))
            if again == truth:
                return
            truth = again
