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
from rpc_svc.store.commands.sync import chat_of
from rpc_svc.store.interface import Backend
from rpc_svc.store.ops import (
    BigChanged,
    BigFlags,
    GroupState,
    GroupTruth,
    Op,
    Span,
    SyncFeed,
    SyncStep,
    UserGroupSet,
)

_NEVER = 1 << 62  # a counter no big group reaches: BigChanged answers the counter alone
_RANGES = "ABh"


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
        pairs = tuple(
            (g, t.newest) for g, t in zip(groups, cast(list[GroupTruth], truths), strict=True)
            if t.member
        )  # fmt: skip
        step = await _one(store, SyncStep(op, str(top), pairs))
    elif step[0] == "seen":
        seen, mine = int(step[1]), int(step[2])
        top, moved = await _one(store, BigChanged(seen, mine))
        if moved is None:  # more changed than the user's groups: look at those
            groups = cast(list[str], await _one(store, UserGroupSet(op.user)))
            _, moved = await _one(store, BigChanged(seen, mine, tuple(groups)))
        step = await _one(store, SyncStep(op, str(max(top, seen)), tuple(moved.items())))
    page, rows = cast(tuple[FeedPage, list[tuple[Any, ...]]], step)
    if page.status != "ok":
        return page
    page = await _expand(store, op, page, rows)
    if op.listing and page.watch:
        flags = await _one(store, BigFlags(tuple(g for g, _ in page.watch)))
        page = page._replace(
            watch=tuple(w for w, big in zip(page.watch, flags, strict=True) if big)
        )
    return page


async def _expand(
    store: Backend, op: SyncFeed, page: FeedPage, rows: list[tuple[Any, ...]]
) -> FeedPage:
    """The page's events: each record's message read (a range's, up to what the page has
    room for), and the position after them."""
    if not rows:  # (a page from now, or nothing new: the position as the script said)
        return page
    spans: list[Span | None] = []
    for i, (kind, ref, number, start) in enumerate(rows):
        chat = chat_of(op.user, kind, ref)
        if kind in _RANGES:
            spans.append(Span(chat, int(float(start)) + 1, int(float(number)), op.limit - i + 1))
        elif kind in "abg":
            spans.append(Span(chat, int(float(number)), int(float(number)), 1))
        else:
            spans.append(None)
    wanted = [s for s in spans if s is not None]
    read = iter(await store.direct(wanted) if wanted else [])
    events: list[FeedEvent] = []
    position, place, more = op.position, 0, page.more
    for (kind, ref, number, _), span in zip(rows, spans, strict=True):
        if len(events) == op.limit:
            more = True
            break
        if span is None:
            events.append(FeedEvent(_what(kind), chat_of(op.user, kind, ref), int(float(number))))
            position += 1
            continue
        entries = next(read)
        if isinstance(entries, StoreError):
            raise entries
        stopped = False
        for entry in cast(list[Entry | GroupEntry], entries):
            if len(events) == op.limit:
                stopped = more = True
                break
            events.append(FeedEvent("message", span.chat, entry.send_time, entry))
            place = entry.send_time
        if stopped:
            break
        position, place = position + 1, 0
    return page._replace(position=position, place=place, more=more, events=tuple(events))


def _what(kind: str) -> str:
    if kind in "abgABh":
        return "message"
    if kind in "cds":
        return "read"
    return "joined" if kind == "j" else "left"
