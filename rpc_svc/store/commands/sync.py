"""The commands of sync's operations and how their replies read.

A page of a user's sync feed is one script (SYNC): on one Redis it also catches the user's
big groups up and reads each record's messages; on a cluster (SyncStep) it answers the
records as stored, and the backend reads their messages after (Span) and which of the
user's groups are big (BigFlags; rpc_svc.store.sync_steps). A record's chat is kept from the
user's side (lua/feed.lua): the peer of a 1:1 chat, with its kind saying which member the
user is, or the group."""

from __future__ import annotations

from typing import Any

from rpc_svc.domain.values import FeedEvent, FeedPage
from rpc_svc.store import records
from rpc_svc.store.commands.plan import Command, Plan
from rpc_svc.store.keys import (
    BIG_CHANGES_KEY,
    BIG_KEYS,
    TURNED_BIG,
    change_log_key,
    changes_key,
    feed_key,
    group_big_key,
    messages_key,
    reads_key,
    short_key,
    sync_channel,
    user_groups_key,
)
from rpc_svc.store.lua import SYNC
from rpc_svc.store.ops import (
    BigFlags,
    ChangeLog,
    ChangeMarks,
    Span,
    SyncFeed,
    SyncStep,
    WakeSyncs,
)

OPS = (SyncFeed, SyncStep, Span, BigFlags, ChangeLog, ChangeMarks, WakeSyncs)
PAIR_FIRST, PAIR_SECOND = "aAcex", "bBdfy"
_KINDS = {"a": "message", "b": "message", "A": "message", "B": "message", "g": "message"}
_KINDS |= {"h": "message", "c": "read", "d": "read", "s": "read", "j": "joined", "l": "left"}
_KINDS |= {"e": "edit", "f": "edit", "E": "edit", "x": "recall", "y": "recall", "X": "recall"}


def commands(op: Any, plan: Plan) -> list[Command]:
    """The commands of a sync operation."""
    match op:
        case SyncFeed():
            return [_sync(op, plan, here=True)]
        case SyncStep(feed, seen, groups):
            return [_sync(feed, plan, False, seen, groups)]
        case Span(chat, low, high, most):
            return [
                ("HVALS", short_key(chat)),
                (
                    "XRANGE", messages_key(chat), records.entry_id(low), records.entry_id(high),
                    "COUNT", most,
                ),
                ("ZRANGEBYSCORE", changes_key(chat), low, high, "LIMIT", 0, most),
            ]  # fmt: skip
        case BigFlags(chats):
            return [("EXISTS", group_big_key(chat)) for chat in chats]
        case ChangeLog(group, start, stop):
            return [("LRANGE", change_log_key(group), start, stop)]
        case ChangeMarks(user, groups):
            return [("HMGET", reads_key(user), *(f"~{g}" for g in groups))]
        case WakeSyncs(users):
            return [("SPUBLISH", sync_channel(user), TURNED_BIG) for user in users]
    raise AssertionError(op)


def _sync(
    op: SyncFeed,
    plan: Plan,
    here: bool,
    seen: str = "",
    groups: tuple[tuple[str, int, int, str], ...] = (),
) -> Command:
    keys: tuple[str, ...] = (feed_key(op.user), reads_key(op.user), user_groups_key(op.user))
    if here:
        keys += (*BIG_KEYS, BIG_CHANGES_KEY)
    return (
        "EVALSHA", SYNC.sha, len(keys), *keys, op.user, op.epoch, op.position, op.place,
        op.limit, op.new_epoch, plan.sync_retain, plan.sync_idle_ms, sync_channel(op.user),
        "1" if op.listing else "0", "1" if here else "0", seen,
        *[value for group in groups for value in group],
    )  # fmt: skip


def outcome(op: Any, replies: list[Any]) -> Any:
    """What a sync operation answers: a FeedPage (SyncFeed); for a SyncStep ("make",),
    ("seen", counter) or (a FeedPage without events, the records as stored: (kind, name,
    number, start) each); entries (Span); bools (BigFlags); None (WakeSyncs)."""
    match op:
        case SyncFeed(user):
            return _page(user, replies[0], 6)[0]
        case SyncStep(feed):
            reply = replies[0]
            if reply[0] == "make":
                return ("make",)
            if reply[0] == "seen":
                return ("seen", reply[1], reply[2])
            return _page(feed.user, reply, 4)
        case Span(chat, low, high, most):
            rows = replies[1] or records.short_rows(replies[0], low, most, False, "")
            rows = [r for r in rows if records.send_time_of(r[0]) <= high]
            if chat.startswith("#") and ":" not in chat:
                return records.with_changes(records.group_entries(rows), replies[2])
            return records.with_changes(records.entries(rows), replies[2])
        case BigFlags():
            return tuple(int(r) == 1 for r in replies)
        case ChangeLog():
            return [
                (r[0], int(st), int(newest))
                for r in replies[0]
                for st, _, newest in [r[1:].partition(":")]
            ]
        case ChangeMarks():
            return [None if r is None else int(r) for r in replies[0]]
        case WakeSyncs():
            return None
    raise AssertionError(op)


def _page(user: str, reply: list[Any], width: int) -> tuple[FeedPage, list[tuple[Any, ...]]]:
    """The page of SYNC's answer (events of `width` values: 6, read; 4, records as stored)."""
    if reply[0] != "ok":
        return FeedPage(reply[0]), []
    _, epoch, position, place, more, n = reply[:6]
    end = 6 + int(n) * width
    rest = reply[end:]
    watch = tuple(
        (rest[i], int(float(rest[i + 1])), int(float(rest[i + 2]))) for i in range(0, len(rest), 3)
    )
    events: list[FeedEvent] = []
    rows: list[tuple[Any, ...]] = []
    if width == 6:
        for kind, ref, number, entry_id_, value, mark in zip(
            *(reply[6 + i : end : 6] for i in range(6)), strict=True
        ):
            event = decode(user, kind, ref, int(number), entry_id_, value, mark)
            if event is not None:
                events.append(event)
    else:
        rows = list(zip(*(reply[6 + i : end : width] for i in range(width)), strict=True))
    page = FeedPage("ok", epoch, int(position), int(place), bool(int(more)), tuple(events), watch)
    return page, rows


def chat_of(user: str, kind: str, ref: str) -> str:
    """The chat a record names, from its kind and its name on the user's side."""
    if kind in PAIR_FIRST:
        return f"{user}:{ref}"
    if kind in PAIR_SECOND:
        return f"{ref}:{user}"
    return ref


def decode(
    user: str, kind: str, ref: str, number: int, entry_id_: str, value: str, mark: str = ""
) -> FeedEvent | None:
    """The event of a record (and, for a message or an edit, its entry as it is now: `value`
    and its change's `mark`; its send time is the `number` the script gave, the entry's ID
    says only that it is there); None for a message whose entry is not there."""
    chat = chat_of(user, kind, ref)
    what = _KINDS[kind]
    if what not in ("message", "edit"):
        return tuple.__new__(FeedEvent, (what, chat, number, None))
    if not entry_id_:
        return None
    change = records.mark_of(mark)
    if kind in "ghE":
        entry: Any = records.group_entry(number, value, change)
    else:
        entry = records.pair_entry(number, value, change)
    return tuple.__new__(FeedEvent, (what, chat, number, entry))
