"""The store's group operations: what each asks of Redis and how its answer reads.

RedisStore runs them like its other operations (one pipeline, one round trip per node).
On one Redis a membership change writes the group and the member's side (its groups, inbox
and read position) in one script. On a cluster they are in two slots: the group's script
runs first, then the service makes the member's side agree with it (rpc_svc.memberships).
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
    BIG_KEYS,
    entry_id,
    group_big_key,
    group_members_key,
    group_owner_key,
    idempotency_entry,
    inbox_key,
    messages_key,
    own_times_key,
    reads_key,
    short_key,
    user_groups_key,
    wake_channel,
)

DEFAULT_MAX_GROUPS = 500


class CreateGroup(NamedTuple):
    """Make group `chat` with `owner` its only member: 1, 0 when it exists, or -6 when the
    owner is in `max_groups` groups already (on a cluster: when not `fits`, the service's
    reservation on the owner's side)."""

    chat: str
    owner: str
    max_groups: int = DEFAULT_MAX_GROUPS
    fits: bool = True


class GroupInfo(NamedTuple):
    """The group (or a refusal code); with `actor`, only for a member."""

    chat: str
    actor: str = ""


class AddMember(NamedTuple):
    """`user` (a member) adds `member`: (code, group, a ReadMark at the newest entry: the
    member's read position on joining).
    `acting`: an acting user is set (a non-member then gets -2 for a missing group too)."""

    chat: str
    user: str
    member: str
    max_members: int
    fanout_max: int = 100
    max_groups: int = DEFAULT_MAX_GROUPS
    acting: bool = False
    fits: bool = True


class RemoveMember(NamedTuple):
    """`user` removes `member` (itself: leaves): (code, group)."""

    chat: str
    user: str
    member: str
    acting: bool = False


class Posted(NamedTuple):
    """A group send's answer: its send time, and on a cluster what the second step writes:
    `kind` "s" (a small group: each of `members`' inboxes) or "b" (a big group: its
    activity); "" when nothing is left to do (one Redis)."""

    send_time: int
    kind: str = ""
    members: tuple[str, ...] = ()


class GroupAppend(NamedTuple):
    """Store a message of `sender` in group `chat`: a Posted, or a refusal code."""

    chat: str
    sender: str
    text: str
    client_msg_id: str = ""
    retry_key: str = ""
    acting: bool = False


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
    acting: bool = False


class GroupTips(NamedTuple):
    """For each of `chats`: its newest message with its count, and `user`'s own count there
    ((None, None) when it has no message or the user is not a member)."""

    user: str
    chats: tuple[str, ...]


class InboxPage(NamedTuple):
    """One Redis only: `user`'s inbox rows at or below `below` (0: the top) for a page of
    `limit` after `skip` rows, and the newest message of each row the page may show (with
    the user's own count in a group): (rows, tips, owns), one call. The user's big groups
    with messages since its last inbox read move in its inbox first."""

    user: str
    below: int
    skip: int
    limit: int


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
)
WRITE_SHAS = {s.sha for s in (GROUP_CREATE, GROUP_ADD, GROUP_REMOVE, GROUP_SEND, INBOX_PAGE)}


def _members(chat: str, owner: str, names: list[str]) -> Group:
    return Group(chat, owner, sorted(names))


def _group_keys(chat: str) -> tuple[str, str]:
    return group_owner_key(chat), group_members_key(chat)


def _stream_keys(chat: str) -> tuple[str, str, str, str]:
    return messages_key(chat), group_owner_key(chat), group_members_key(chat), short_key(chat)


def _user_side(user: str, one_node: bool) -> tuple[str, ...]:
    """A user's groups, inbox and read positions, for a script on one Redis (a cluster's
    scripts do not get them: the service writes them in their own slot)."""
    return (user_groups_key(user), inbox_key(user), reads_key(user)) if one_node else ()


def _flag(value: bool) -> str:
    return "1" if value else "0"


def group_commands(
    op: GroupOp, ttl_us: int, retry_ttl_us: int, short_max: int = 32, one_node: bool = True
) -> list[tuple[Any, ...]]:
    """The Redis commands of `op`: all in one slot, but GroupTips's (one command for every
    group when `one_node`, else one per group) and, on one Redis, the member's side of a
    membership change. A group keeps its first `short_max` - 1 messages in one hash (0: a
    stream from the first)."""
    match op:
        case GroupAppend(chat, sender, text, client_msg_id, retry_key, acting):
            idem_key, member, ttl = idempotency_entry(
                chat, sender, client_msg_id, retry_key, ttl_us, retry_ttl_us
            )
            all_keys = (
                messages_key(chat), idem_key, group_owner_key(chat), group_members_key(chat),
                group_big_key(chat), short_key(chat), own_times_key(chat, sender),
                *(BIG_KEYS if one_node else ()),
            )  # fmt: skip
            return [
                (
                    "EVALSHA", GROUP_SEND.sha, len(all_keys), *all_keys, sender, text, member,
                    ttl, wake_channel(chat), chat, _flag(one_node), short_max, _flag(acting),
                )
            ]  # fmt: skip
        case GroupRead(chat, actor, cursor, entries, reverse):
            if reverse:
                start, end = (entry_id(cursor) if cursor else "+"), "-"
            else:
                start, end = entry_id(cursor), "+"
            keys = _stream_keys(chat)
            flag = _flag(reverse)
            return [("EVALSHA", GROUP_READ.sha, 4, *keys, actor, start, end, entries, flag)]
        case GroupTips(user, chats):
            triples = [(messages_key(c), short_key(c), group_members_key(c)) for c in chats]
            if one_node:
                flat = [key for triple in triples for key in triple]
                return [("EVALSHA", GROUP_TIPS.sha, len(flat), *flat, user)]
            return [("EVALSHA", GROUP_TIPS.sha, 3, *triple, user) for triple in triples]
        case CreateGroup(chat, owner, max_groups, fits):
            made = (*_group_keys(chat), *_user_side(owner, one_node)[:1])
            return [
                (
                    "EVALSHA", GROUP_CREATE.sha, len(made), *made, owner, chat, max_groups,
                    _flag(fits),
                )
            ]  # fmt: skip
        case GroupInfo(chat, actor):
            return [("EVALSHA", GROUP_INFO.sha, 2, *_group_keys(chat), actor)]
        case AddMember(chat, user, member, max_members, fanout_max, max_groups, acting, fits):
            add_keys = (
                *_group_keys(chat), messages_key(chat), group_big_key(chat), short_key(chat),
                *_user_side(member, one_node),
            )  # fmt: skip
            return [
                (
                    "EVALSHA", GROUP_ADD.sha, len(add_keys), *add_keys, user, member, max_members,
                    fanout_max, _flag(acting), chat, max_groups, _flag(fits),
                )
            ]  # fmt: skip
        case RemoveMember(chat, user, member, acting):
            gone = (*_group_keys(chat), *_user_side(member, one_node))
            return [
                ("EVALSHA", GROUP_REMOVE.sha, len(gone), *gone, user, member, _flag(acting), chat)
            ]
        case GroupMark(chat, user, at, acting):
            mark_keys = (*_stream_keys(chat), own_times_key(chat, user))
            return [("EVALSHA", GROUP_MARK.sha, 5, *mark_keys, user, at, _flag(acting))]
        case InboxPage(user, below, skip, limit):
            page_keys = (inbox_key(user), reads_key(user), user_groups_key(user), *BIG_KEYS)
            top, head = below or "+inf", skip + limit
            return [("EVALSHA", INBOX_PAGE.sha, 6, *page_keys, user, top, head + 1, head)]
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
    """The rows, newest messages and own counts of INBOX_PAGE's answer. A group row
    without the user's members-hash value (it is no member there) has neither."""
    rows: list[InboxRow] = []
    tips: list[Tip | GroupTip | None] = []
    owns: list[int | None] = []
    for i in range(0, len(reply), 7):
        chat, position, read, entry_id_, name, value, mine = reply[i : i + 7]
        rows.append(InboxRow(chat, int(float(position)), _mark(read)))
        own = int(mine.split(":", 1)[0]) if mine else None
        if not entry_id_:
            tips.append(None)
        elif name == "g":
            tips.append(_group_tip(entry_id_, value) if own is not None else None)
        else:
            tips.append(_pair_tip(entry_id_, name, value))
        owns.append(own)
    return rows, tips, owns


def _mark(value: str | None) -> ReadMark:
    if not value:
        return NO_READ
    send_time, messages, own = value.split(":")
    return ReadMark(int(send_time), (int(messages), int(own)))


def _group_tip(entry_id_: str, value: str) -> GroupTip:
    messages, sender, text = value.split(":", 2)
    ms, _, seq = entry_id_.partition("-")
    return GroupTip(GroupEntry(int(ms) * 1000 + int(seq), sender, text), int(messages))


def _tip_and_own(entry_id_: str, value: str, own: str) -> tuple[GroupTip | None, int | None]:
    if not entry_id_ or not own:
        return None, None
    return _group_tip(entry_id_, value), int(own)


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
        rows, tips, owns = _inbox_page(raw[0])
        head = op.skip + op.limit
        return rows, tips[:head], owns[:head]
    if isinstance(op, GroupTips):
        flat = [value for reply in raw for value in reply]
        return [_tip_and_own(*flat[i : i + 3]) for i in range(0, len(flat), 3)]
    reply = raw[0]
    match op:
        case GroupAppend():
            code = int(reply[0])
            if code < 0:
                return code
            kind = reply[1] if len(reply) > 1 else ""
            return Posted(code, kind, tuple(reply[2:]))
        case GroupRead():
            return int(reply) if isinstance(reply, int) else group_entries(reply)
        case CreateGroup():
            return int(reply)
        case GroupInfo(chat):
            code = int(reply[0])
            return code if code < 0 else _members(chat, reply[1], reply[2:])
        case AddMember(chat):
            code = int(reply[0])
            if code < 0:
                return code, None, None
            tip = NO_READ
            if reply[2]:
                ms, _, seq = reply[2].partition("-")
                tip = ReadMark(int(ms) * 1000 + int(seq), (int(reply[3]), 0))
            return code, _members(chat, reply[1], reply[4:]), tip
        case RemoveMember(chat):
            code = int(reply[0])
            return (code, None) if code < 0 else (code, _members(chat, reply[1], reply[2:]))
        case GroupMark():
            code = int(reply[0])
            if code < 0:
                return code
            return ReadMark(int(reply[1]), (int(reply[2]), int(reply[3])))
    raise AssertionError(op)
