"""A page of a user's sync feed on a Redis Cluster, in steps (one Redis runs it as one
script, lua/sync.lua): the feed's script in the user's slot, given first what it needs from
other slots (for a feed to make: each of the user's groups' newest message and the big
groups' counter; to catch the user's big groups up: which changed since its last sync),
then each record's messages read from their chats' slots, and for a wait which of the
user's groups are big.

A record is written in the user's slot after its message is stored in the chat's (a send's
second step, lua/user_note.lua) and before the send is acknowledged, so a page never names
a message that is not stored; a step that comes late finds its message covered by a range
an earlier one wrote (docs/store.md, "Sync")."""

from __future__ import annotations

from typing import Any, cast

from rpc_svc.domain.errors import StoreError
from rpc_svc.domain.values import Entry, FeedEvent, FeedPage, GroupEntry
from rpc_svc.store.change_logs import change_logs
from rpc_svc.store.commands.sync import KINDS, NO_ENTRY, RANGES, chat_of
from rpc_svc.store.interface import Backend
from rpc_svc.store.ops import (
    BigChanged,
    BigFlags,
    ChangeLog,
    GroupState,
    GroupTruth,
    Op,
    Span,
    SyncFeed,
    SyncStep,
    UserGroupSet,
)

_NEVER = 1 << 62  # a counter no big group reaches: BigChanged answers the counter alone
# a record of one message to read (a send, an edit): a kind with an entry and no start
_READ_ONE = frozenset(k for k, (_, _, entry) in KINDS.items() if entry != NO_ENTRY) - RANGES


async def _one(store: Backend, op: Op) -> Any:
    (outcome,) = await store.direct([op])
    if isinstance(outcome, StoreError):
        raise outcome
    return outcome


async def run(store: Backend, op: SyncFeed) -> FeedPage | StoreError:
    """The page `op` asks for, or the StoreError in its place."""
    try:
        return await _run(store, op)
    except StoreError as exc:
        return exc


async def _run(store: Backend, op: SyncFeed) -> FeedPage:
    step = await _one(store, SyncStep(op))
    if step == ("make",):
        groups = cast(list[str], await _one(store, UserGroupSet(op.user)))
        truths = await store.direct([GroupState(g, op.user) for g in groups])
        for truth in truths:
            if isinstance(truth, StoreError):
                raise truth
        top, _ = await _one(store, BigChanged(_NEVER, 0))
        made = tuple(
            (g, t.newest, t.changes, "")
            for g, t in zip(groups, cast(list[GroupTruth], truths), strict=True)
            if t.member
        )  # fmt: skip
        step = await _one(store, SyncStep(op, str(top), made))
    elif step[0] == "seen":
        seen, mine = int(step[1]), int(step[2])
        top, moved = await _one(store, BigChanged(seen, mine))
        if moved is None:  # more changed than the user's groups: look at those
            groups = cast(list[str], await _one(store, UserGroupSet(op.user)))
            _, moved = await _one(store, BigChanged(seen, mine, tuple(groups)))
        counts = {g: count for g, (_, count) in moved.items()}
        logs = await change_logs(store.direct, op.user, counts)
        moves = tuple((g, at, count, logs.get(g, "")) for g, (at, count) in moved.items())
        step = await _one(store, SyncStep(op, str(max(top, seen)), moves))
    page, rows = cast(tuple[FeedPage, list[tuple[Any, ...]]], step)
    if page.status != "ok":
        return page
    page = await _expand(store, op, page, rows)
    if op.listing and page.watch:
        flags = await _one(store, BigFlags(tuple(w[0] for w in page.watch)))
        page = page._replace(
            watch=tuple(w for w, big in zip(page.watch, flags, strict=True) if big)
        )
    return page


async def _expand(
    store: Backend, op: SyncFeed, page: FeedPage, rows: list[tuple[Any, ...]]
) -> FeedPage:
    """The page's events: each record's message read (a range's, up to what the page has
    room for; a big group's change range's records from its change log, then the edited
    messages), the position after them and the check of the record read last."""
    if not rows:  # (a page from now, or nothing new: the position as the script said)
        return page
    reads: list[Span | ChangeLog | None] = []
    for i, (kind, ref, number, start) in enumerate(rows):
        chat, top, low = chat_of(op.user, kind, ref), int(float(number)), int(float(start))
        room = op.limit - i
        if kind == "k":
            reads.append(ChangeLog(chat, low, min(top, low + room) - 1))
        elif kind in RANGES:
            reads.append(Span(chat, low + 1, top, room + 1))
        elif kind in _READ_ONE:
            reads.append(Span(chat, top, top, 1))
        else:
            reads.append(None)
    wanted = [r for r in reads if r is not None]
    got = iter(await _all(store, wanted))
    found: list[Any] = [next(got) if r is not None else None for r in reads]
    edited = [  # the messages a big group's change log names as edited
        Span(r.group, st, st, 1)
        for r, logged in zip(reads, found, strict=True)
        if isinstance(r, ChangeLog)
        for kind, st, _ in logged
        if kind == "E"
    ]
    now = iter(await _all(store, edited))
    events: list[FeedEvent] = []
    position, place, more = op.position, 0, page.more
    for (kind, ref, number, start), read, result in zip(rows, reads, found, strict=True):
        if len(events) == op.limit:
            more = True
            break
        chat = chat_of(op.user, kind, ref)
        if read is None:
            events.append(FeedEvent(KINDS[kind][0], chat, int(float(number))))
            position += 1
        elif isinstance(read, ChangeLog):
            place = int(float(start))
            for log_kind, st, _ in result:
                if len(events) == op.limit:
                    break
                if log_kind == "E":
                    entry = next(iter(next(now)), None)
                    if entry is not None:
                        events.append(FeedEvent("edit", chat, st, entry))
                else:
                    events.append(FeedEvent("recall", chat, st))
                place += 1
            if place < int(float(number)):  # the page is full inside the range
                more = True
                break
            position, place = position + 1, 0
        elif kind in RANGES:
            stopped = False
            for entry in cast(list[Entry | GroupEntry], result):
                if len(events) == op.limit:
                    stopped = more = True
                    break
                events.append(FeedEvent("message", read.chat, entry.send_time, entry))
                place = entry.send_time
            if stopped:
                break
            position, place = position + 1, 0
        else:
            entry = next(iter(result), None)
            if entry is not None:
                events.append(FeedEvent(KINDS[kind][0], read.chat, entry.send_time, entry))
            position += 1
    last = position + (1 if place else 0)  # the record read last, in full or in part
    check = page.check  # (the token's: nothing read)
    if last > op.position + (1 if op.place else 0):
        kind, _, number, _ = rows[last - op.position - 1]
        check = f"{kind}{number}"
    return page._replace(
        position=position, place=place, more=more, events=tuple(events), check=check
    )


async def _all(store: Backend, ops: list[Any]) -> list[Any]:
    outcomes = await store.direct(ops) if ops else []
    for outcome in outcomes:
        if isinstance(outcome, StoreError):
            raise outcome
    return outcomes
