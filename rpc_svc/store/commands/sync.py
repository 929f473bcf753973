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
from rpc_svc.store.lua import SPAN, SYNC
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
FIRST, SECOND, GROUP = 0, 1, 2  # whose side a record's name is on (its chat: chat_of)
NO_ENTRY, PAIR_ENTRY, GROUP_ENTRY = 0, 1, 2  # what a record's message value is
KINDS: dict[str, tuple[str, int, int]] = {  # a record's kind: its event, side, entry
    **dict.fromkeys("aA", ("message", FIRST, PAIR_ENTRY)),
    **dict.fromkeys("bB", ("message", SECOND, PAIR_ENTRY)),
    **dict.fromkeys("gh", ("message", GROUP, GROUP_ENTRY)),
    "e": ("edit", FIRST, PAIR_ENTRY),
    "f": ("edit", SECOND, PAIR_ENTRY),
    "E": ("edit", GROUP, GROUP_ENTRY),
    "c": ("read", FIRST, NO_ENTRY),
    "d": ("read", SECOND, NO_ENTRY),
    "s": ("read", GROUP, NO_ENTRY),
    "x": ("recall", FIRST, NO_ENTRY),
    "y": ("recall", SECOND, NO_ENTRY),
    "X": ("recall", GROUP, NO_ENTRY),
    "j": ("joined", GROUP, NO_ENTRY),
    "l": ("left", GROUP, NO_ENTRY),
    "k": ("", GROUP, NO_ENTRY),  # a big group's changes: a range of the events above
}
RANGES = frozenset("ABhk")  # the kinds with a start (lua/feed.lua's REC_RANGE)
READ, STORED = 5, 4  # values an event of SYNC's answer takes: read (one Redis), as stored
HEAD = 7  # values before them: 'ok', epoch, position, place, more, n, check


def commands(op: Any, plan: Plan) -> list[Command]:
    """The commands of a sync operation."""
    match op:
        case SyncFeed():
            return [_sync(op, plan, here=True)]
        case SyncStep(feed, seen, groups):
            return [_sync(feed, plan, False, seen, groups)]
        case Span(chat, low, high, most):
            return [
                ("EVALSHA", SPAN.sha, 2, messages_key(chat), short_key(chat), low, high, most),
                ("ZRANGEBYSCORE", changes_key(chat), low, high, "LIMIT", 0, most),
            ]
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
        "1" if op.listing else "0", "1" if here else "0", seen, op.check,
        *[value for group in groups for value in group],
    )  # fmt: skip


def outcome(op: Any, replies: list[Any]) -> Any:
    """What a sync operation answers: a FeedPage (SyncFeed); for a SyncStep ("make",),
    ("seen", counter) or (a FeedPage without events, the records as stored: (kind, name,
    number, start) each); entries (Span); bools (BigFlags); None (WakeSyncs)."""
    match op:
        case SyncFeed(user):
            return _page(user, replies[0], READ)[0]
        case SyncStep(feed):
            reply = replies[0]
            if reply[0] == "make":
                return ("make",)
            if reply[0] == "seen":
                return ("seen", reply[1], reply[2])
            return _page(feed.user, reply, STORED)
        case Span(chat):
            rows, changes = replies
            if chat.startswith("#") and ":" not in chat:
                return records.with_changes(records.group_entries(rows), changes)
            return records.with_changes(records.entries(rows), changes)
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
    """The page of SYNC's answer (events of `width` values: READ or STORED)."""
    if reply[0] != "ok":
        return FeedPage(reply[0]), []
    _, epoch, position, place, more, n, check = reply[:HEAD]
    end = HEAD + int(n) * width
    rest = reply[end:]
    watch = tuple(
        (rest[i], int(float(rest[i + 1])), int(float(rest[i + 2]))) for i in range(0, len(rest), 3)
    )
    rows: list[tuple[Any, ...]] = []
    if width == READ:
        events = _events(user, reply, end)
    else:
        events = ()
        rows = list(zip(*(reply[HEAD + i : end : width] for i in range(width)), strict=True))
    page = FeedPage("ok", epoch, int(position), int(place), bool(int(more)), events, watch, check)
    return page, rows


def _events(user: str, reply: list[Any], end: int) -> tuple[FeedEvent, ...]:
    """The events of SYNC's answer read on one Redis: READ values each (kind, name, number,
    its message's value as it is now, its change's mark). A message's send time is the
    number the script gave; a message whose entry is gone has no value (None), and no event.
    One loop, without the named tuples' constructors: a sync's hot path."""
    new = tuple.__new__
    events: list[FeedEvent] = []
    append = events.append
    for kind, ref, number, value, mark in zip(
        *(reply[HEAD + i : end : READ] for i in range(READ)), strict=True
    ):
        what, side, form = KINDS[kind]
        chat = _chat(user, side, ref)
        if form == NO_ENTRY:
            append(new(FeedEvent, (what, chat, number, None)))
        elif value is not None:
            change = records.mark_of(mark) if mark else 0
            if form == PAIR_ENTRY:
                entry: Any = records.pair_entry(number, value, change)
            else:
                entry = records.group_entry(number, value, change)
            append(new(FeedEvent, (what, chat, number, entry)))
    return tuple(events)


def chat_of(user: str, kind: str, ref: str) -> str:
    """The chat a record names, from its kind and its name on the user's side."""
    return _chat(user, KINDS[kind][1], ref)


def _chat(user: str, side: int, ref: str) -> str:
    if side == FIRST:
        return f"{user}:{ref}"
    if side == SECOND:
        return f"{ref}:{user}"
    return ref
