"""Group chats in the chat service: what a send, pull or read of a group asks of the store,
the group calls (create, add, remove, members, a user's groups: rpc_svc.memberships), and
the inbox of 1:1 chats and groups (small groups moved there by each send, big groups by the
inbox read that follows their messages): see docs/store.md, "Groups: hybrid diffusion".
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
from rpc_svc.errors import Forbidden, IMError, InvalidArgument, StoreError
from rpc_svc.groups import (
    NOT_A_MEMBER,
    Group,
    GroupEntry,
    GroupTip,
    UserGroupList,
    check_group,
    group_unread,
    is_group,
    refusal,
)
from rpc_svc.memberships import Memberships
from rpc_svc.store import InboxRange, Latest, MarkRead, RedisStore
from rpc_svc.store_groups import (
    DEFAULT_MAX_GROUPS,
    GroupAppend,
    GroupInfo,
    GroupMark,
    GroupRead,
    GroupTips,
    Posted,
)
from rpc_svc.store_groups import (
    InboxPage as InboxPageOp,
)
from rpc_svc.store_members import BigChanged, UserGroups

GROUP_OPS = ("create", "add", "remove", "members", "list")


class GroupCall(NamedTuple):
    """A group call: `op` one of GROUP_OPS, by `user` (for add and remove, on `member`;
    "list": the groups `user` is in, `chat` empty)."""

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
    return GroupAppend(chat, sender, text, key, retry_key, bool(actor))


def plan_pull(chat: str, cursor: int, limit: int, reverse: bool, actor: str) -> GroupRead:
    """The store operation of a pull of a group (one entry beyond the page)."""
    check_group(chat)
    check_cursor(cursor)
    return GroupRead(chat, actor, cursor, page_limit(limit) + 1, reverse)


def sent_or_refused(chat: str, sender: str, outcome: int | Posted) -> int | IMError:
    """A group send's send time, or the error its refusal code stands for."""
    if isinstance(outcome, Posted):
        return outcome.send_time
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

    def __init__(
        self,
        store: RedisStore,
        max_members: int,
        fanout_max: int = 100,
        max_groups: int = DEFAULT_MAX_GROUPS,
    ) -> None:
        self._store = store
        self._members = Memberships(store, max_members, fanout_max, max_groups)

    async def call(self, call: GroupCall) -> Group | UserGroupList:
        """Create, add, remove, list members or a user's groups; raise IMError otherwise."""
        if call.op not in GROUP_OPS:
            raise InvalidArgument(f"unknown group call {call.op[:16]!r}", "invalid_batch")
        if call.op == "list":
            check_name(call.user, "user")
            check_same_user(call.actor, call.user, "user")
            return UserGroupList(call.user, await self._members.groups_of(call.user))
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
            return await self._members.create(call.chat, call.user)
        check_name(call.member, "member")
        acting = bool(call.actor)
        if call.op == "add":
            return await self._members.add(call.chat, call.user, call.member, acting)
        return await self._members.remove(call.chat, call.user, call.member, acting)

    async def mark(self, chat: str, user: str, send_time: int, actor: str = "") -> ReadMark:
        """Move `user`'s read position in group `chat` forward to the last message at or
        before `send_time`; the position kept."""
        mark = await self._store.one(GroupMark(chat, user, send_time, bool(actor)))
        if isinstance(mark, int):
            raise refusal(mark, chat, user)
        return cast(ReadMark, await self._store.one(MarkRead(user, chat, mark)))

    async def inbox(self, user: str, below: int, skip: int, limit: int, cursor: int) -> InboxPage:
        """One page of `user`'s chats and groups, most recently active first. One script
        on one Redis; three or four round trips on a cluster."""
        op = InboxPageOp(user, below, skip, limit)
        if self._store.one_node:
            return build_inbox(op, cursor, (await self._all([op]))[0])
        return build_inbox(op, cursor, await self._inbox_in_steps(user, below, skip + limit))

    async def _inbox_in_steps(self, user: str, below: int, head_size: int) -> tuple[Any, ...]:
        """What the one-Redis script does, on a cluster: the rows (and what the user's inbox
        has seen of big groups' activity); when that moved, the big groups changed since,
        moved in the inbox as the rows are read again; then the newest entries of the rows'
        head (their keys are elsewhere). A group row of a user who is not its member any
        more (a change cut short) is settled."""
        page = InboxRange(user, below, 0, head_size + 1)
        seen, groups, rows = cast(tuple[int, int, list[InboxRow]], await self._store.one(page))
        if groups:
            top, moved = cast(
                tuple[int, dict[str, int] | None],
                await self._store.one(BigChanged(seen, groups)),
            )
            if top > seen:
                if moved is None:  # more changed than the user's groups: look at those
                    mine = cast(list[str], await self._store.one(UserGroups(user)))
                    _, moved = await self._store.one(BigChanged(seen, groups, tuple(mine)))
                moves = tuple(cast(dict[str, int], moved).items())
                caught_up = page._replace(caught_up=top, moves=moves)
                _, _, rows = await self._store.one(caught_up)
        head = rows[:head_size]
        group_rows = tuple(r.chat for r in head if is_group(r.chat))
        ops: list[Latest | GroupTips] = [Latest(r.chat) for r in head if not is_group(r.chat)]
        if group_rows:
            ops.append(GroupTips(user, group_rows))
        outcomes = await self._all(ops) if ops else []
        pair_tips = iter(outcomes)
        group_tips = iter(cast(list[Any], outcomes[-1]) if group_rows else [])
        tips: list[Any] = []
        owns: list[int | None] = []
        stale = []
        for row in head:
            if is_group(row.chat):
                tip, own = next(group_tips)
                if own is None:
                    stale.append(row.chat)
                tips.append(tip)
                owns.append(own)
            else:
                tips.append(next(pair_tips))
                owns.append(None)
        await self._members.settle_all(user, stale)
        return rows, tips, owns

    async def _all(self, ops: Sequence[object]) -> list[object]:
        outcomes = await self._store.execute(ops)  # type: ignore[arg-type]
        failed = next((o for o in outcomes if isinstance(o, StoreError)), None)
        if failed is not None:
            raise failed
        return outcomes


def build_inbox(op: InboxPageOp, cursor: int, outcome: Any) -> InboxPage:
    """The page of an inbox read: `op`'s rows with the newest message of each row the page
    may show. A group row without one (no message, or its user is no member: a change cut
    short) counts for paging but is not shown."""
    user, below, skip, limit = op
    rows, tips, owns = outcome
    items = inbox_items(
        user,
        [r for r in rows if not is_group(r.chat)],
        [t for r, t in zip(rows, tips, strict=False) if not is_group(r.chat)],
    )
    for i, row in enumerate(rows):
        if not is_group(row.chat):
            continue
        tip, own = (tips[i], owns[i]) if i < len(tips) else (None, None)
        shown = None
        if tip is not None and own is not None:
            shown = _shown(row.chat, cast(GroupTip, tip), own, row.read)
        items.append(InboxItem(row.position, row.chat, shown))
    items.sort(key=lambda item: (item.position, item.chat), reverse=True)
    if skip:
        at_below = set([i for i, item in enumerate(items) if item.position == below][:skip])
        items = [item for i, item in enumerate(items) if i not in at_below]
    return page_inbox(items[: limit + 1], limit, cursor)


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
