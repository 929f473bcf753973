"""Group chats in the chat service: what a send, pull or read of a group asks of the store,
the group calls (create, add, remove, members), and the inbox that merges a user's inbox
(1:1 chats and small groups, moved there by each send) with its big groups (read when the
inbox is): see docs/store.md, "Groups: hybrid diffusion".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from rpc_svc.access import check_same_user
from rpc_svc.chat import (
    InboxChat,
    InboxItem,
    InboxPage,
    InboxRow,
    Message,
    Page,
    ReadMark,
    check_client_msg_id,
    check_cursor,
    check_name,
    check_text,
    inbox_items,
    page_inbox,
    page_limit,
    paged,
)
from rpc_svc.errors import Conflict, Forbidden, IMError, InvalidArgument, StoreError
from rpc_svc.groups import (
    NOT_A_MEMBER,
    Group,
    GroupEntry,
    GroupTip,
    check_group,
    group_unread,
    is_group,
    refusal,
)
from rpc_svc.store import InboxRange, Latest, MarkRead, RedisStore
from rpc_svc.store_groups import (
    AddMember,
    BigGroups,
    BigJoined,
    CreateGroup,
    GroupAppend,
    GroupInfo,
    GroupMark,
    GroupRead,
    GroupTips,
    InboxPut,
    LeftGroup,
    ReadMarks,
    RemoveMember,
)
from rpc_svc.store_groups import (
    InboxPage as InboxPageOp,
)

GROUP_OPS = ("create", "add", "remove", "members")


class GroupCall(NamedTuple):
    """A group call: `op` one of GROUP_OPS, by `user` (for add and remove, on `member`)."""

    op: str
    chat: str
    user: str = ""
    member: str = ""
    actor: str = ""


def plan_send(
    chat: str, sender: str, text: str, key: str, retry_key: str, actor: str, max_text: int
) -> GroupAppend:
    """The store operation of a send to a group; InvalidArgument or Forbidden first."""
    check_group(chat)
    check_name(sender, "sender")
    check_same_user(actor, sender, "sender")
    check_text(text, max_text)
    check_client_msg_id(key)
    check_client_msg_id(retry_key, "retry_key")
    return GroupAppend(chat, sender, text, key, retry_key)


def plan_pull(chat: str, cursor: int, limit: int, reverse: bool, actor: str) -> GroupRead:
    """The store operation of a pull of a group (one entry beyond the page)."""
    check_group(chat)
    check_cursor(cursor)
    return GroupRead(chat, actor, cursor, page_limit(limit) + 1, reverse)


def sent_or_refused(chat: str, sender: str, outcome: int | tuple[int, list[str]]) -> int | IMError:
    """A group send's send time, or the error its refusal code stands for."""
    if isinstance(outcome, tuple):
        return outcome[0]
    return refusal(outcome, chat, sender)


def page_or_refused(op: GroupRead, outcome: int | list[GroupEntry]) -> Page | IMError:
    """A group pull's page, or its refusal: with an acting user, a non-member (of a group
    that exists or not) is forbidden, so the answer tells nothing about what exists."""
    if isinstance(outcome, int):
        if outcome == NOT_A_MEMBER:
            return Forbidden("the authenticated user is not a member of this group")
        return refusal(outcome, op.chat)
    return build_group_page(op.chat, outcome, op.cursor, op.entries - 1, op.reverse)


def build_group_page(
    chat: str, entries: Sequence[GroupEntry], cursor: int, limit: int, reverse: bool
) -> Page:
    """Up to limit+1 entries read from `cursor` as a page (the rules of a 1:1 pull)."""
    messages: list[Message] = [
        {"chat": chat, "text": text, "sender": sender, "send_time": send_time}
        for send_time, sender, text in entries[:limit]
    ]
    return paged(messages, entries, cursor, limit, reverse)


class GroupCalls:
    """The group calls and the group parts of read and the inbox, on `store`."""

    def __init__(self, store: RedisStore, max_members: int, fanout_max: int = 100) -> None:
        self._store = store
        self._max_members = max_members
        self._fanout_max = fanout_max

    async def call(self, call: GroupCall) -> Group:
        """Create, add, remove or list members; raise IMError otherwise."""
        if call.op not in GROUP_OPS:
            raise InvalidArgument(f"unknown group call {call.op[:16]!r}", "invalid_batch")
        check_group(call.chat)
        if call.op == "members":
            info = await self._store.one(GroupInfo(call.chat, call.actor))
            if isinstance(info, int):
                if info == NOT_A_MEMBER:
                    raise Forbidden("the authenticated user is not a member of this group")
                raise refusal(info, call.chat)
            return cast(Group, info)
        check_name(call.user, "user")
        check_same_user(call.actor, call.user, "user")
        if call.op == "create":
            return await self._create(call.chat, call.user)
        check_name(call.member, "member")
        if call.op == "add":
            return await self._add(call)
        return await self._remove(call)

    async def _create(self, chat: str, owner: str) -> Group:
        if not await self._store.one(CreateGroup(chat, owner)):
            raise Conflict(f"group {chat!r} exists already", "group_exists")
        return Group(chat, owner, [owner])

    async def _add(self, call: GroupCall) -> Group:
        op = AddMember(call.chat, call.user, call.member, self._max_members, self._fanout_max)
        code, group, newest, big, became = await self._store.one(op)
        if code < 0:
            raise refusal(code, call.chat, call.user)
        # the member's side (its slot): on joining its read position at the newest message,
        # and the group in its inbox (small) or set of big groups. Done again by a repeated
        # add: a cut between the two steps heals.
        chat, member = call.chat, call.member
        side: list[MarkRead | BigJoined | InboxPut] = []
        if code == 1 and newest.send_time:
            side.append(MarkRead(member, chat, newest))
        if big:  # read diffusion: the inbox reads the group when it is read
            others = cast(Group, group).members if became else [member]
            side += [BigJoined(m, chat) for m in others]
        elif newest.send_time:
            side.append(InboxPut(member, chat, newest.send_time))
        if side:
            await self._all(side)
        return cast(Group, group)

    async def _remove(self, call: GroupCall) -> Group:
        code, group = await self._store.one(RemoveMember(call.chat, call.user, call.member))
        if code < 0:
            raise refusal(code, call.chat, call.user)
        await self._store.one(LeftGroup(call.member, call.chat))  # also when not a member: heals
        return cast(Group, group)

    async def mark(self, chat: str, user: str, send_time: int) -> ReadMark:
        """Move `user`'s read position in group `chat` forward to the last message at or
        before `send_time`; the position kept."""
        mark = await self._store.one(GroupMark(chat, user, send_time))
        if isinstance(mark, int):
            raise refusal(mark, chat, user)
        return cast(ReadMark, await self._store.one(MarkRead(user, chat, mark)))

    async def inbox(self, user: str, below: int, skip: int, limit: int, cursor: int) -> InboxPage:
        """One page of `user`'s chats and groups, most recently active first: its inbox (1:1
        chats and small groups, by last activity) merged with its big groups (read). One
        script on one Redis; two round trips on a cluster."""
        if self._store.one_node:
            op = InboxPageOp(user, below, skip, limit)
            return build_inbox(op, cursor, (await self._all([op]))[0])
        return build_inbox(
            InboxPageOp(user, below, skip, limit),
            cursor,
            await self._inbox_in_steps(user, below, skip + limit),
        )

    async def _inbox_in_steps(self, user: str, below: int, head_size: int) -> tuple[Any, ...]:
        """What the one-Redis script reads, on a cluster: the rows and big groups, then the
        newest entries of the rows' head and of the big groups (their keys are elsewhere)."""
        rows, bigs = await self._all([InboxRange(user, below, 0, head_size + 1), BigGroups(user)])
        rows, bigs = cast(list[InboxRow], rows), cast(list[str], bigs)
        head = rows[:head_size]
        tip_chats = tuple(r.chat for r in head if is_group(r.chat)) + tuple(bigs)
        ops: list[Latest | GroupTips | ReadMarks] = [
            Latest(r.chat) for r in head if not is_group(r.chat)
        ]
        if tip_chats:
            ops.append(GroupTips(user, tip_chats))
        if bigs:
            ops.append(ReadMarks(user, tuple(bigs)))
        outcomes = await self._all(ops) if ops else []
        pair_tips = iter(outcomes)
        group_tips = iter(
            cast(list[Any], outcomes[len(head) - sum(map(_grouped, head))]) if tip_chats else []
        )
        tips: list[Any] = []
        owns: list[int | None] = []
        for row in head:
            if is_group(row.chat):
                tip, own = next(group_tips)
                tips.append(tip)
                owns.append(own)
            else:
                tips.append(next(pair_tips))
                owns.append(None)
        marks = cast(list[ReadMark], outcomes[-1]) if bigs else []
        big_rows = [(chat, *next(group_tips), mark) for chat, mark in zip(bigs, marks, strict=True)]
        return rows, tips, owns, big_rows

    async def _all(self, ops: Sequence[object]) -> list[object]:
        outcomes = await self._store.execute(ops)  # type: ignore[arg-type]
        failed = next((o for o in outcomes if isinstance(o, StoreError)), None)
        if failed is not None:
            raise failed
        return outcomes


def build_inbox(op: InboxPageOp, cursor: int, outcome: Any) -> InboxPage:
    """The page of an inbox read (`op`'s rows, newest messages and big groups, merged by
    last activity)."""
    user, below, skip, limit = op
    rows, tips, owns, bigs = outcome
    items = inbox_items(
        user,
        [r for r in rows if not is_group(r.chat)],
        [t for r, t in zip(rows, tips, strict=False) if not is_group(r.chat)],
    )
    for i, row in enumerate(rows):  # small groups: positioned by the inbox
        if not is_group(row.chat):
            continue
        tip, own = (tips[i], owns[i]) if i < len(tips) else (None, None)
        shown = None
        if tip is not None and own is not None:  # else: left (a cut step), or beyond
            shown = _shown(row.chat, cast(GroupTip, tip), own, row.read)
        if shown is not None or i >= len(tips):
            items.append(InboxItem(row.position, row.chat, shown))
    for chat, tip, own, mark in bigs:
        if tip is None or own is None or (below and tip.entry.send_time > below):
            continue
        items.append(InboxItem(tip.entry.send_time, chat, _shown(chat, tip, own, mark)))
    items.sort(key=lambda item: (item.position, item.chat), reverse=True)
    if skip:
        at_below = set([i for i, item in enumerate(items) if item.position == below][:skip])
        items = [item for i, item in enumerate(items) if i not in at_below]
    return page_inbox(items[: limit + 1], limit, cursor)


def _grouped(row: InboxRow) -> int:
    return 1 if is_group(row.chat) else 0


def _shown(chat: str, tip: GroupTip, own: int, mark: ReadMark) -> InboxChat:
    entry = tip.entry
    return InboxChat(
        chat=chat,
        last_message={
            "chat": chat,
            "text": entry.text,
            "sender": entry.sender,
            "send_time": entry.send_time,
        },
        unread=group_unread(tip.messages, own, mark),
    )
