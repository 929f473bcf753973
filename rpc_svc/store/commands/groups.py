"""The commands of groups' operations and how their replies read.

A group's own keys change in one script each (they share the group's hash tag). On one
Redis a membership change's script also writes the member's side and a small group's send
its members' inboxes (`plan.user_side`); on a cluster the backend writes those in steps of
their own (rpc_svc.store.cluster_steps)."""

from __future__ import annotations

from typing import Any

from rpc_svc.domain.values import NO_READ, Group, InboxRow, ReadMark
from rpc_svc.store import records
from rpc_svc.store.commands.plan import Command, Plan
from rpc_svc.store.keys import (
    BIG_KEYS,
    change_log_key,
    changes_key,
    feed_key,
    group_big_key,
    group_members_key,
    group_owner_key,
    idempotency_entry,
    inbox_key,
    messages_key,
    own_times_key,
    reads_key,
    short_key,
    sync_channel,
    user_groups_key,
    user_side_keys,
    wake_channel,
)
from rpc_svc.store.lua import (
    GROUP_ADD,
    GROUP_CREATE,
    GROUP_INFO,
    GROUP_MARK,
    GROUP_READ,
    GROUP_REMOVE,
    GROUP_SEND,
    GROUP_TIPS,
    INBOX_PAGE,
)
from rpc_svc.store.ops import (
    AddMember,
    CreateGroup,
    GroupAppend,
    GroupInfo,
    GroupMark,
    GroupMarked,
    GroupRead,
    GroupTips,
    InboxRows,
    Posted,
    RemoveMember,
)

OPS = (
    CreateGroup, GroupInfo, AddMember, RemoveMember, GroupAppend, GroupRead, GroupMark,
    GroupTips, InboxRows,
)  # fmt: skip


def _flag(value: bool) -> str:
    return "1" if value else "0"


def _stream_keys(chat: str) -> tuple[str, str, str, str]:
    return messages_key(chat), group_owner_key(chat), group_members_key(chat), short_key(chat)


def commands(op: Any, plan: Plan) -> list[Command]:
    """The commands of a group's operation (GroupTips: one per group given, each in its
    own slot, unless `plan.user_side`: one Redis takes them all in one)."""
    mine = plan.user_side
    match op:
        case GroupAppend(chat, sender, text, client_msg_id, retry_key, acting):
            idem, member, ttl = idempotency_entry(
                chat, sender, client_msg_id, retry_key, plan.ttl_us, plan.retry_ttl_us
            )
            keys = (
                messages_key(chat), idem, group_owner_key(chat), group_members_key(chat),
                group_big_key(chat), short_key(chat), own_times_key(chat, sender),
                *(BIG_KEYS if mine else ()),
            )  # fmt: skip
            return [
                (
                    "EVALSHA", GROUP_SEND.sha, len(keys), *keys, sender, text, member, ttl,
                    wake_channel(chat), chat, _flag(mine), plan.short_max, _flag(acting),
                )
            ]  # fmt: skip
        case GroupRead(chat, actor, cursor, entries, reverse):
            if reverse:
                start, end = (records.entry_id(cursor) if cursor else "+"), "-"
            else:
                start, end = records.entry_id(cursor), "+"
            flag = _flag(reverse)
            keys = (*_stream_keys(chat), changes_key(chat))
            return [("EVALSHA", GROUP_READ.sha, 5, *keys, actor, start, end, entries, flag)]
        case GroupTips(user, chats):
            fours = [
                (messages_key(c), short_key(c), group_members_key(c), changes_key(c)) for c in chats
            ]
            if mine:
                flat = [key for four in fours for key in four]
                return [("EVALSHA", GROUP_TIPS.sha, len(flat), *flat, user)]
            return [("EVALSHA", GROUP_TIPS.sha, 4, *four, user) for four in fours]
        case CreateGroup(chat, owner, max_groups, fits):
            keys = (group_owner_key(chat), group_members_key(chat))
            keys += (user_groups_key(owner), reads_key(owner), feed_key(owner)) if mine else ()
            return [
                (
                    "EVALSHA", GROUP_CREATE.sha, len(keys), *keys, owner, chat, max_groups,
                    _flag(fits), sync_channel(owner),
                )
            ]  # fmt: skip
        case GroupInfo(chat, actor):
            keys = (group_owner_key(chat), group_members_key(chat))
            return [("EVALSHA", GROUP_INFO.sha, 2, *keys, actor)]
        case AddMember(chat, user, member, max_members, fanout_max, max_groups, acting, fits):
            keys = (
                group_owner_key(chat), group_members_key(chat), messages_key(chat),
                group_big_key(chat), short_key(chat), change_log_key(chat),
                *(user_side_keys(member) if mine else ()),
            )  # fmt: skip
            return [
                (
                    "EVALSHA", GROUP_ADD.sha, len(keys), *keys, user, member, max_members,
                    fanout_max, _flag(acting), chat, max_groups, _flag(fits),
                    sync_channel(member),
                )
            ]  # fmt: skip
        case RemoveMember(chat, user, member, acting):
            keys = (group_owner_key(chat), group_members_key(chat))
            keys += (messages_key(chat), short_key(chat), change_log_key(chat))
            keys += user_side_keys(member) if mine else ()
            return [
                (
                    "EVALSHA", GROUP_REMOVE.sha, len(keys), *keys, user, member, _flag(acting),
                    chat, sync_channel(member),
                )
            ]  # fmt: skip
        case GroupMark(chat, user, at, acting):
            keys = (*_stream_keys(chat), own_times_key(chat, user), change_log_key(chat))
            return [("EVALSHA", GROUP_MARK.sha, 6, *keys, user, at, _flag(acting))]
        case InboxRows(user, below, skip, limit):
            keys = (inbox_key(user), reads_key(user), user_groups_key(user), *BIG_KEYS)
            top, head = below or "+inf", skip + limit
            return [("EVALSHA", INBOX_PAGE.sha, 6, *keys, user, top, head + 1, head)]
    raise AssertionError(op)


def outcome(op: Any, replies: list[Any]) -> Any:
    """What a group's operation answers."""
    if isinstance(op, InboxRows):
        rows, tips, owns = _inbox_page(replies[0])
        head = op.skip + op.limit
        return rows, tips[:head], owns[:head]
    if isinstance(op, GroupTips):
        flat = [value for reply in replies for value in reply]
        return [_tip_and_own(*flat[i : i + 4]) for i in range(0, len(flat), 4)]
    reply = replies[0]
    match op:
        case GroupAppend():
            code = int(reply[0])
            if code < 0:
                return code
            if len(reply) > 2:  # a small group on a cluster: the message before, the members
                return Posted(code, reply[1], tuple(reply[3:]), int(reply[2]))
            return Posted(code, reply[1] if len(reply) > 1 else "")
        case GroupRead():
            if isinstance(reply, int):
                return reply
            rows, changes = reply
            entries = records.group_entries(rows)
            return records.with_changes(entries, changes) if changes else entries
        case CreateGroup():
            return int(reply)
        case GroupInfo(chat):
            code = int(reply[0])
            return code if code < 0 else Group(chat, reply[1], sorted(reply[2:]))
        case AddMember(chat):
            code = int(reply[0])
            if code < 0:
                return code, None, None, 0, False
            joined = NO_READ
            if reply[2]:
                joined = ReadMark(records.send_time_of(reply[2]), (int(reply[3]), 0))
            group = Group(chat, reply[1], sorted(reply[6:]))
            return code, group, joined, int(reply[4]), int(reply[5]) == 1
        case RemoveMember(chat):
            code = int(reply[0])
            if code < 0:
                return code, None, 0, 0
            return code, Group(chat, reply[1], sorted(reply[4:])), int(reply[2]), int(reply[3])
        case GroupMark():
            code = int(reply[0])
            if code < 0:
                return code
            mark = ReadMark(int(reply[1]), (int(reply[2]), int(reply[3])))
            return GroupMarked(mark, int(reply[4]), int(reply[5]))
    raise AssertionError(op)


def _inbox_page(reply: list[Any]) -> tuple[Any, ...]:
    """The rows, newest messages and own counts of INBOX_PAGE's answer (7 values a row). A
    group row without the user's members-hash value (it is no member there) has neither."""
    rows: list[InboxRow] = []
    tips: list[Any] = []
    owns: list[int | None] = []
    for i in range(0, len(reply), 7):
        chat, position, read, entry_id_, value, mine, change = reply[i : i + 7]
        rows.append(InboxRow(chat, int(float(position)), records.mark(read)))
        own = int(mine.split(":", 1)[0]) if mine else None
        if not entry_id_:
            tips.append(None)
        elif chat.startswith("#") and ":" not in chat:
            tip = records.group_tip(entry_id_, value) if own is not None else None
            tips.append(_changed(tip, change))
        else:
            tips.append(_changed(records.pair_tip(entry_id_, value), change))
        owns.append(own)
    return rows, tips, owns


def _changed(tip: Any, change: str) -> Any:
    """A tip as its message is now (`change`: a member of the changes set, '' for none)."""
    if tip is None or not change:
        return tip
    (entry,) = records.with_changes([tip.entry], [change])
    return tip._replace(entry=entry)


def _tip_and_own(entry_id_: str, value: str, own: str, change: str) -> tuple[Any, int | None]:
    if not entry_id_ or not own:
        return None, None
    return _changed(records.group_tip(entry_id_, value), change), int(own)
