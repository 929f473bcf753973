"""The commands of 1:1 chats' operations and how their replies read.

A send is one script (SEND). A read asks for the chat's short hash and its stream in one
round trip (a chat is one or the other; a send that moves the hash into the stream between
the two replies leaves both holding the entries, and the stream's win). A send moves the
chat in both members' inboxes in its script on one Redis; on a cluster, where a user's keys
live in other slots, the backend does it as a second step."""

from __future__ import annotations

from typing import Any

from rpc_svc.domain.values import InboxRow
from rpc_svc.store import records
from rpc_svc.store.commands.plan import Command, Plan
from rpc_svc.store.keys import (
    change_log_key,
    changes_key,
    feed_key,
    idempotency_entry,
    inbox_key,
    messages_key,
    reads_key,
    short_key,
    sync_channel,
    user_groups_key,
    wake_channel,
)
from rpc_svc.store.lua import INBOX, MARK_READ, SEND
from rpc_svc.store.ops import Append, InboxRange, Latest, MarkRead, Posted, Read

OPS = (Append, Read, Latest, MarkRead, InboxRange)


def commands(op: Any, plan: Plan) -> list[Command]:
    """The commands of a 1:1 chat's operation."""
    if type(op) is Read:  # the hot path first, without pattern matching
        short, key, count = ("HVALS", short_key(op.chat)), messages_key(op.chat), op.entries
        changes = changes_key(op.chat)
        if op.reverse:
            start = records.entry_id(op.cursor) if op.cursor else "+"
            top = op.cursor or "+inf"
            return [
                short,
                ("XREVRANGE", key, start, "-", "COUNT", count),
                ("ZREVRANGEBYSCORE", changes, top, "-inf", "LIMIT", 0, count),
            ]
        return [
            short,
            ("XRANGE", key, records.entry_id(op.cursor), "+", "COUNT", count),
            ("ZRANGEBYSCORE", changes, op.cursor, "+inf", "LIMIT", 0, count),
        ]
    if type(op) is Append:
        return [_append(op, plan)]
    match op:
        case Latest(chat, at):
            start = records.entry_id(at) if at else "+"
            return [
                ("HVALS", short_key(chat)),
                ("XREVRANGE", messages_key(chat), start, "-", "COUNT", 1),
                ("ZREVRANGEBYSCORE", changes_key(chat), at or "+inf", "-inf", "LIMIT", 0, 1),
            ]
        case MarkRead(user, chat, mark, event, newest, logged, log):
            value = f"{mark.send_time}:{mark.sent[0]}:{mark.sent[1]}"
            kind, ref = read_record(user, chat) if event else ("", "")
            keys: tuple[str, ...] = (reads_key(user), feed_key(user))
            if kind == "s" and plan.user_side:  # (one Redis: the change log read in place)
                keys += (change_log_key(chat),)
            return [
                (
                    "EVALSHA", MARK_READ.sha, len(keys), *keys, chat, value, kind, ref,
                    sync_channel(user), newest, logged, log,
                )
            ]  # fmt: skip
        case InboxRange(user, below, skip, count, caught_up, moves):
            keys = (inbox_key(user), reads_key(user), user_groups_key(user))
            more = (caught_up, *[v for move in moves for v in move]) if caught_up else ()
            top = below or "+inf"
            return [("EVALSHA", INBOX.sha, 3, *keys, top, skip, count, *more)]
    raise AssertionError(op)


def read_record(user: str, chat: str) -> tuple[str, str]:
    """The kind and name of a read event's record in `user`'s sync feed (lua/feed.lua)."""
    if chat.startswith("#") and ":" not in chat:
        return "s", chat
    first, _, second = chat.partition(":")
    return ("c", second) if user == first else ("d", first)


def _append(op: Append, plan: Plan) -> Command:
    keys, member, ttl = idempotency_entry(
        op.chat, str(op.role), op.client_msg_id, op.retry_key, plan.ttl_us, plan.retry_ttl_us
    )
    sides: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    if plan.user_side:  # on a cluster the inboxes and feeds follow in a second step
        first, _, second = op.chat.partition(":")
        members = (first, second) if first != second else (first,)
        sides = tuple(key for m in members for key in (inbox_key(m), feed_key(m)))
        channels = tuple(sync_channel(m) for m in members)
    return (
        "EVALSHA", SEND.sha, 3 + len(sides), messages_key(op.chat), short_key(op.chat),
        keys, *sides, "1" if op.role else "0", op.text, member, ttl,
        wake_channel(op.chat), op.chat, plan.short_max, *channels,
    )  # fmt: skip


def outcome(op: Any, replies: list[Any]) -> Any:
    """What a 1:1 chat's operation answers."""
    if type(op) is Read:  # the hash's reply, the stream's, the changes'
        raw = replies[1]
        if raw or not replies[0]:
            got = records.entries(raw)
        else:
            got = records.entries(
                records.short_rows(replies[0], op.cursor, op.entries, op.reverse, "t")
            )
        return records.with_changes(got, replies[2]) if replies[2] else got
    raw = replies[-1]
    match op:
        case Append():
            if type(raw) is list:  # a cluster: what the second step needs
                return Posted(int(raw[0]), "p", (), int(raw[1]))
            return int(raw)
        case Latest(_, at):
            rows = replies[1] or records.short_rows(replies[0], at, 1, True, "t")
            if not rows:
                return None
            tip = records.pair_tip(rows[0][0], records.value_of(rows[0][1]))
            if replies[2]:
                (entry,) = records.with_changes([tip.entry], replies[2])
                tip = tip._replace(entry=entry)
            return tip
        case InboxRange():
            rows = [
                InboxRow(raw[i], int(float(raw[i + 1])), records.mark(raw[i + 2]))
                for i in range(2, len(raw), 3)
            ]
            return int(raw[0]), int(raw[1]), rows
        case MarkRead():
            return records.mark(raw)
    raise AssertionError(op)
