"""The store's group operations: what each asks of Redis and how its answer reads.

RedisStore runs them like its other operations (one pipeline, one round trip per node).
The group's own keys change in one script; what lives with a user (the set of its groups,
its read position) changes in a second step in the user's slot, which is idempotent: a
membership change cut between the two is completed by doing it again (see docs/store.md).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rpc_svc.chat import NO_READ, Entry, InboxRow, ReadMark, Tip
from rpc_svc.groups import Group, GroupEntry, GroupTip
from rpc_svc.store_group_scripts import (
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
from rpc_svc.store_keys import (
    entry_id,
    group_big_key,
    group_members_key,
    group_owner_key,
    idempotency_entry,
    inbox_key,
    messages_key,
    reads_key,
    short_key,
    user_bigs_key,
    wake_channel,
)


class CreateGroup(NamedTuple):
    """Make group `chat` with `owner` its only member: True, or False when it exists."""

    chat: str
    owner: str


class GroupInfo(NamedTuple):
    """The group (or a refusal code); with `actor`, only for a member."""

    chat: str
    actor: str = ""


class AddMember(NamedTuple):
    """`user` (a member) adds `member`: (code, group, a ReadMark at the newest entry, whether
    the group is big, whether this add made it big)."""

    chat: str
    user: str
    member: str
    max_members: int
    fanout_max: int = 100


class RemoveMember(NamedTuple):
    """`user` removes `member` (itself: leaves): (code, group)."""

    chat: str
    user: str
    member: str


class GroupAppend(NamedTuple):
    """Store a message of `sender` in group `chat`: (its send time, the members whose inboxes
    a second step must move: a small group on a cluster), or a refusal code."""

    chat: str
    sender: str
    text: str
    client_msg_id: str = ""
    retry_key: str = ""


class GroupRead(NamedTuple):
    """Up to `entries` entries of group `chat` from `cursor`, or a refusal code."""

    chat: str
    actor: str
    cursor: int
    entries: int
    reverse: bool


class GroupMark(NamedTuple):
    """Where `user`'s read position in `chat` would be for send time `at`: a ReadMark
    (count of messages, and of the user's own, up to it), or a refusal code."""

    chat: str
    user: str
    at: int


class GroupTips(NamedTuple):
    """For each of `chats`: its newest message with its count, and `user`'s own count there
    ((None, None) when it has no message or the user is not a member)."""

    user: str
    chats: tuple[str, ...]


class InboxPage(NamedTuple):
    """One Redis only: `user`'s inbox rows at or below `below` (0: the top) for a page of
    `limit` after `skip` rows, the newest message of each row the page may show (with the
    user's own count in a group), and its big groups': (rows, tips, owns, bigs), one call."""

    user: str
    below: int
    skip: int
    limit: int


class ReadMarks(NamedTuple):
    """`user`'s read positions in `chats` (NO_READ where there is none)."""

    user: str
    chats: tuple[str, ...]


class BigGroups(NamedTuple):
    """The big groups `user` is in (small ones are in its inbox)."""

    user: str


class InboxPut(NamedTuple):
    """Move small group `chat` in `user`'s inbox up to `position` (never back)."""

    user: str
    chat: str
    position: int


class BigJoined(NamedTuple):
    """`user` is in big group `chat`: in its set of big groups, not in its inbox."""

    user: str
    chat: str


class LeftGroup(NamedTuple):
    """Take group `chat` out of `user`'s inbox and big groups; drop its read position there."""

    user: str
    chat: str


GroupOp = (
    CreateGroup
    | GroupInfo
    | AddMember
    | RemoveMember
    | GroupAppend
    | GroupRead
    | GroupMark
    | GroupTips
    | InboxPage
    | BigGroups
    | InboxPut
    | BigJoined
    | ReadMarks
    | LeftGroup
)
WRITE_SHAS = {s.sha for s in (GROUP_CREATE, GROUP_ADD, GROUP_REMOVE, GROUP_SEND)}


def _members(chat: str, owner: str, names: list[str]) -> Group:
    return Group(chat, owner, sorted(names))


def _group_keys(chat: str) -> tuple[str, str]:
    return group_owner_key(chat), group_members_key(chat)


def _stream_keys(chat: str) -> tuple[str, str, str, str]:
    return messages_key(chat), group_owner_key(chat), group_members_key(chat), short_key(chat)


def group_commands(
    op: GroupOp, ttl_us: int, retry_ttl_us: int, short_max: int = 32, one_node: bool = True
) -> list[tuple[Any, ...]]:
    """The Redis commands of `op`: all in one slot, but GroupTips's (one command for every
    group when `one_node`, else one per group). A group keeps its first `short_max` - 1
    messages in one string (0: a stream from the first)."""
    match op:
        case GroupAppend(chat, sender, text, client_msg_id, retry_key):
            keys, member, ttl = idempotency_entry(
                chat, sender, client_msg_id, retry_key, ttl_us, retry_ttl_us
            )
            return [
                (
                    "EVALSHA", GROUP_SEND.sha, 6, messages_key(chat), keys,
                    group_owner_key(chat), group_members_key(chat), group_big_key(chat),
                    short_key(chat), sender, text, member, ttl, wake_channel(chat), chat,
                    "1" if one_node else "0", short_max,
                )
            ]  # fmt: skip
        case GroupRead(chat, actor, cursor, entries, reverse):
            if reverse:
                start, end = (entry_id(cursor) if cursor else "+"), "-"
            else:
                start, end = entry_id(cursor), "+"
            flag = "1" if reverse else "0"
            return [
                (
                    "EVALSHA",
                    GROUP_READ.sha,
                    4,
                    *_stream_keys(chat),
                    actor,
                    start,
                    end,
                    entries,
                    flag,
                )
            ]
        case GroupTips(user, chats):
            triples = [(messages_key(c), short_key(c), group_members_key(c)) for c in chats]
            if one_node:
                flat = [key for triple in triples for key in triple]
                return [("EVALSHA", GROUP_TIPS.sha, len(flat), *flat, user)]
            return [("EVALSHA", GROUP_TIPS.sha, 3, *triple, user) for triple in triples]
        case CreateGroup(chat, owner):
            return [("EVALSHA", GROUP_CREATE.sha, 2, *_group_keys(chat), owner)]
        case GroupInfo(chat, actor):
            return [("EVALSHA", GROUP_INFO.sha, 2, *_group_keys(chat), actor)]
        case AddMember(chat, user, member, max_members, fanout_max):
            add_keys = (
                *_group_keys(chat),
                messages_key(chat),
                group_big_key(chat),
                short_key(chat),
            )
            return [("EVALSHA", GROUP_ADD.sha, 5, *add_keys, user, member, max_members, fanout_max)]
        case RemoveMember(chat, user, member):
            return [("EVALSHA", GROUP_REMOVE.sha, 2, *_group_keys(chat), user, member)]
        case GroupMark(chat, user, at):
            return [("EVALSHA", GROUP_MARK.sha, 4, *_stream_keys(chat), user, at)]
        case ReadMarks(user, chats):
            return [("HMGET", reads_key(user), *chats)]
        case BigGroups(user):
            return [("SMEMBERS", user_bigs_key(user))]
        case InboxPage(user, below, skip, limit):
            page_keys = (inbox_key(user), reads_key(user), user_bigs_key(user))
            top, head = below or "+inf", skip + limit
            return [("EVALSHA", INBOX_PAGE.sha, 3, *page_keys, user, top, head + 1, head)]
        case InboxPut(user, chat, position):
            return [("ZADD", inbox_key(user), "GT", position, chat)]
        case BigJoined(user, chat):
            return [("SADD", user_bigs_key(user), chat), ("ZREM", inbox_key(user), chat)]
        case LeftGroup(user, chat):
            return [
                ("HDEL", reads_key(user), chat),
                ("ZREM", inbox_key(user), chat),
                ("SREM", user_bigs_key(user), chat),
            ]
    raise AssertionError(op)


def _pair_tip(entry_id_: str, name: str, value: str) -> Tip:
    """The newest entry of a 1:1 chat (field t: role, both tallies, text; or m: role, text)."""
    role = 1 if value[0] == "1" else 0
    sent, text = (0, 0), value[1:]
    if name == "t":
        sent0, sent1, text = value[1:].split(":", 2)
        sent = (int(sent0), int(sent1))
    ms, _, seq = entry_id_.partition("-")
    return Tip(Entry(int(ms) * 1000 + int(seq), role, text), sent)


def _inbox_page(reply: list[Any]) -> tuple[Any, ...]:
    rows_raw, bigs_raw = reply
    rows: list[InboxRow] = []
    tips: list[Tip | GroupTip | None] = []
    owns: list[int | None] = []
    for i in range(0, len(rows_raw), 7):
        chat, position, read, entry_id_, name, value, mine = rows_raw[i : i + 7]
        rows.append(InboxRow(chat, int(float(position)), _mark(read)))
        if not entry_id_:
            tips.append(None)
        elif name == "g":
            tips.append(_tip_and_own(entry_id_, value, mine.split(":", 1)[0] if mine else "")[0])
        else:
            tips.append(_pair_tip(entry_id_, name, value))
        owns.append(int(mine.split(":", 1)[0]) if mine else None)
    bigs = []
    for i in range(0, len(bigs_raw), 5):
        chat, read, entry_id_, value, mine = bigs_raw[i : i + 5]
        tip = _tip_and_own(entry_id_, value, "0")[0] if entry_id_ else None
        own = int(mine.split(":", 1)[0]) if mine else None
        bigs.append((chat, tip, own, _mark(read)))
    return rows, tips, owns, bigs


def _mark(value: str | None) -> ReadMark:
    if not value:
        return NO_READ
    send_time, messages, own = value.split(":")
    return ReadMark(int(send_time), (int(messages), int(own)))


def _tip_and_own(entry_id_: str, value: str, own: str) -> tuple[GroupTip | None, int | None]:
    if not entry_id_:
        return None, None
    messages, sender, text = value.split(":", 2)
    ms, _, seq = entry_id_.partition("-")
    entry = GroupEntry(int(ms) * 1000 + int(seq), sender, text)
    return GroupTip(entry, int(messages)), int(own)


def group_entries(rows: list[Any]) -> list[GroupEntry]:
    """The entries of a group's XRANGE reply (field g: "<count>:<sender>:<text>")."""
    entries = []
    for entry_id_, fields in rows:
        value = fields[1] if isinstance(fields, list) else next(iter(fields.values()))
        _count, sender, text = value.split(":", 2)
        ms, _, seq = entry_id_.partition("-")
        entries.append(GroupEntry(int(ms) * 1000 + int(seq), sender, text))
    return entries


def group_outcome(op: GroupOp, raw: list[Any]) -> Any:
    """What `op` answers, from the replies of its commands."""
    if isinstance(op, InboxPage):
        rows, tips, owns, bigs = _inbox_page(raw[0])
        head = op.skip + op.limit
        return rows, tips[:head], owns[:head], bigs
    if isinstance(op, GroupTips):
        flat = [value for reply in raw for value in reply]
        return [_tip_and_own(*flat[i : i + 3]) for i in range(0, len(flat), 3)]
    reply = raw[0]
    match op:
        case GroupAppend():
            code = int(reply[0])
            return code if code < 0 else (code, list(reply[1:]))
        case GroupRead():
            return int(reply) if isinstance(reply, int) else group_entries(reply)
        case CreateGroup():
            return bool(reply)
        case GroupInfo(chat):
            code = int(reply[0])
            return code if code < 0 else _members(chat, reply[1], reply[2:])
        case AddMember(chat):
            code = int(reply[0])
            if code < 0:
                return code, None, None, False, False
            tip = NO_READ
            if reply[2]:
                ms, _, seq = reply[2].partition("-")
                tip = ReadMark(int(ms) * 1000 + int(seq), (int(reply[3]), 0))
            group = _members(chat, reply[1], reply[6:])
            return code, group, tip, bool(int(reply[4])), bool(int(reply[5]))
        case RemoveMember(chat):
            code = int(reply[0])
            return (code, None) if code < 0 else (code, _members(chat, reply[1], reply[2:]))
        case GroupMark():
            code = int(reply[0])
            if code < 0:
                return code
            return ReadMark(int(reply[1]), (int(reply[2]), int(reply[3])))
        case BigGroups():
            return sorted(reply)
        case ReadMarks():
            return [_mark(value) for value in reply]
        case LeftGroup() | InboxPut() | BigJoined():
            return None
    raise AssertionError(op)
