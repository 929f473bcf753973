"""What one Redis does in one script and a Redis Cluster in steps, since a chat's (or
group's) keys and a user's are in different slots (docs/store.md, "Membership").

- A send's second step: each member's inbox and sync feed (a 1:1 chat, a small group), or a
  big group's activity note. Idempotent and monotonic (ZADD GT; a feed record only past the
  member's position there), so a retried send (same key) runs it again and converges.
- A membership change: for a join a place reserved among the user's groups (the bound), the
  group's script (the truth: who may send, pull and read), then `settle`: the member's side
  written as the group says, the group read again, until a read agrees with what was
  written. Whatever ran in between, the last write to a member's side agrees with the
  group's last change: every change ends with a read after its own last write, and a later
  change of the group writes the side after its own group step.
- An inbox page: the rows (and what the user's inbox has seen of big groups' activity), the
  big groups changed since moved in the inbox as the rows are read again, the newest entry
  of each row shown; a group row of a user who is no member (a change cut short) settled.
- A user's groups: its set, each group checked, those that disagree settled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, cast

from rpc_svc.domain.errors import StoreError
from rpc_svc.domain.names import is_group
from rpc_svc.domain.values import InboxRow
from rpc_svc.store.change_logs import change_logs
from rpc_svc.store.commands.plan import Command
from rpc_svc.store.interface import Backend, Outcome
from rpc_svc.store.keys import (
    BIG_CHANGES_KEY,
    BIG_KEYS,
    changes_key,
    feed_key,
    inbox_key,
    reads_key,
    recalls_key,
    sync_channel,
)
from rpc_svc.store.lua import BIG_NOTE, CHANGE_NOTE, RECALL_DONE, USER_NOTE
from rpc_svc.store.ops import (
    AddMember,
    Append,
    BigChanged,
    Change,
    Changed,
    CreateGroup,
    GroupAppend,
    GroupState,
    GroupTips,
    GroupTruth,
    InboxRange,
    InboxRows,
    Latest,
    MarkRead,
    Op,
    Posted,
    RemoveMember,
    ReserveGroup,
    UserGroups,
    UserGroupSet,
    UserSide,
    WakeSyncs,
)

SETTLE_ROUNDS = 4  # a member's side written at most this often per change (a later one settles)
_STEPPED = (CreateGroup, AddMember, RemoveMember, InboxRows, UserGroups)


def takes(op: Op) -> bool:
    """Whether a cluster answers `op` in steps (not in one pipeline with the others): a
    group's read after changes takes the change log's records its user's feed lacks."""
    return isinstance(op, _STEPPED) or (isinstance(op, MarkRead) and op.changes > 0)


async def run(store: Backend, op: Op) -> Outcome:
    """The outcome of `op` (one that `takes`), by its steps; a StoreError in its place."""
    try:
        if isinstance(op, CreateGroup):
            return await _create(store, op)
        if isinstance(op, AddMember):
            return await _add(store, op)
        if isinstance(op, RemoveMember):
            return await _remove(store, op)
        if isinstance(op, InboxRows):
            return await _inbox(store, op)
        if isinstance(op, MarkRead):
            logs = await change_logs(store.direct, op.user, {op.chat: op.changes})
            return await _one(store, op._replace(log=logs.get(op.chat, "")))
        assert isinstance(op, UserGroups)
        return await _groups_of(store, op.user)
    except StoreError as exc:
        return exc


async def _one(store: Backend, op: Op) -> Any:
    (outcome,) = await store.direct([op])
    if isinstance(outcome, StoreError):
        raise outcome
    return outcome


async def _create(store: Backend, op: CreateGroup) -> int:
    fits = bool(await _one(store, ReserveGroup(op.owner, op.chat, op.max_groups)))
    code = cast(int, await _one(store, op._replace(fits=fits)))
    await settle(store, op.owner, op.chat)  # (a refusal: the place reserved goes)
    return code


async def _add(store: Backend, op: AddMember) -> Any:
    fits = bool(await _one(store, ReserveGroup(op.member, op.chat, op.max_groups)))
    code, group, joined, changes, turned = await _one(store, op._replace(fits=fits))
    if turned:  # (in the members' slots: the script could not; a wait not woken times out)
        await store.direct([WakeSyncs(tuple(group.members))])
    if code == 1 and joined.send_time:  # on joining: its read position at the newest
        await _one(store, MarkRead(op.member, op.chat, joined, event=False))
    # also when refused: the place reserved goes
    if code == 1:
        await settle(store, op.member, op.chat, joined.send_time, changes)
    else:
        await settle(store, op.member, op.chat)
    return code, group, joined, changes, turned


async def _remove(store: Backend, op: RemoveMember) -> Any:
    code, group, newest, changes = await _one(store, op)
    if code == 1:
        await settle(store, op.member, op.chat, newest, changes)
    elif code == 0:  # it was no member: a side left over heals
        await settle(store, op.member, op.chat)
    return code, group, newest, changes


async def settle(store: Backend, user: str, chat: str, at: int = 0, changes: int = -1) -> None:
    """Make `user`'s side of group `chat` what the group says: write it, read the group
    again, until the two agree (or SETTLE_ROUNDS: then a change under way writes after
    this, and settles it itself). `at`, `changes`: the group's newest message and change
    log's length when the user joined or left (where its sync feed starts or stops; 0, -1:
    not known)."""
    truth = cast(GroupTruth, await _one(store, GroupState(chat, user)))
    for _ in range(SETTLE_ROUNDS):
        log = ""
        if not truth.member:  # its feed's last changes after the messages before each
            count = changes if changes >= 0 else truth.changes
            log = (await change_logs(store.direct, user, {chat: count})).get(chat, "")
        await _one(store, UserSide(user, chat, truth, at, changes, log))
        again = cast(GroupTruth, await _one(store, GroupState(chat, user)))
        if again == truth:
            return
        truth = again


async def _settle_all(store: Backend, user: str, chats: list[str]) -> None:
    if chats:
        await asyncio.gather(*(settle(store, user, chat) for chat in chats))


async def _groups_of(store: Backend, user: str) -> list[str]:
    listed = cast(list[str], await _one(store, UserGroupSet(user)))
    if not listed:
        return listed
    truths = await store.direct([GroupState(g, user) for g in listed])
    for truth in truths:
        if isinstance(truth, StoreError):
            raise truth
    stale = [g for g, t in zip(listed, truths, strict=True) if not t.member]
    await _settle_all(store, user, stale)
    return [g for g in listed if g not in stale]


async def _inbox(store: Backend, op: InboxRows) -> tuple[Any, ...]:
    head = op.skip + op.limit
    page = InboxRange(op.user, op.below, 0, head + 1)
    seen, groups, rows = cast(tuple[int, int, list[InboxRow]], await _one(store, page))
    if groups:
        top, moved = await _one(store, BigChanged(seen, groups))
        if top > seen:
            if moved is None:  # more changed than the user's groups: look at those
                mine = cast(list[str], await _one(store, UserGroupSet(op.user)))
                _, moved = await _one(store, BigChanged(seen, groups, tuple(mine)))
            moves = tuple((g, at) for g, (at, _) in moved.items() if at)
            caught_up = page._replace(caught_up=top, moves=moves)
            _, _, rows = await _one(store, caught_up)
    shown = rows[:head]
    group_rows = tuple(r.chat for r in shown if is_group(r.chat))
    reads: list[Latest | GroupTips] = [Latest(r.chat) for r in shown if not is_group(r.chat)]
    if group_rows:
        reads.append(GroupTips(op.user, group_rows))
    outcomes = await store.direct(reads) if reads else []
    for outcome in outcomes:
        if isinstance(outcome, StoreError):
            raise outcome
    pair_tips = iter(outcomes)
    group_tips = iter(cast(list[Any], outcomes[-1]) if group_rows else [])
    tips: list[Any] = []
    owns: list[int | None] = []
    stale = []
    for row in shown:
        if is_group(row.chat):
            tip, own = next(group_tips)
            if own is None:
                stale.append(row.chat)
            tips.append(tip)
            owns.append(own)
        else:
            tips.append(next(pair_tips))
            owns.append(None)
    await _settle_all(store, op.user, stale)
    return rows, tips, owns


async def second_steps(store: Backend, ops: Sequence[Op], results: list[Outcome]) -> None:
    """The sends' second steps (each member's inbox and sync feed, a big group's activity);
    a send whose step failed answers that failure (its message is stored: a retry with its
    key runs the step again). A 1:1 send answers its send time once its step is done."""
    steps: list[tuple[int, Command]] = []
    recalls: list[int] = []  # small groups' recalls: marked done once every member had it
    for i, op in enumerate(ops):
        result = results[i]
        if isinstance(op, Append) and isinstance(result, Posted):
            sent = result.send_time
            first, _, second = op.chat.partition(":")
            sides = [(first, "1", second)] + ([(second, "2", first)] if second != first else [])
            steps += [(i, _note(m, op.chat, way, ref, sent, result.prev)) for m, way, ref in sides]
            results[i] = sent
        elif isinstance(op, GroupAppend) and isinstance(result, Posted):
            sent = result.send_time
            if result.kind == "b":
                steps.append((i, ("EVALSHA", BIG_NOTE.sha, 3, *BIG_KEYS, op.chat, sent)))
            steps += [
                (i, _note(m, op.chat, "g", op.chat, sent, result.prev)) for m in result.members
            ]
        elif isinstance(op, Change) and isinstance(result, Changed) and result.fanout:
            steps += _change_steps(i, op, result, store.plan.ttl_us)
            results[i] = result._replace(fanout="", members=())
            if op.kind == "r" and result.fanout == "s":
                recalls.append(i)
    if not steps:
        return
    try:
        replies = await store.run_commands([c for _, c in steps])
    except StoreError as exc:
        replies = [exc] * len(steps)
    for (i, _), reply in zip(steps, replies, strict=True):
        if isinstance(reply, BaseException):
            results[i] = store.as_error(reply)
    done = [cast(Change, ops[i]) for i in recalls if not isinstance(results[i], StoreError)]
    await _recalls_done(store, done)


async def _recalls_done(store: Backend, recalls: list[Change]) -> None:
    """Mark the small groups' recalls every member had (lua/recall_done.lua): a recall of
    one again then runs no second step, so a member added since gets nothing. A mark that
    fails is left out: a recall again then runs the steps again, which each feed takes once
    (a member added since would then get it too)."""
    if not recalls:
        return
    commands: list[Command] = [
        ("EVALSHA", RECALL_DONE.sha, 1, changes_key(op.chat), op.send_time) for op in recalls
    ]
    with contextlib.suppress(StoreError):
        await store.run_commands(commands)


def _change_steps(i: int, op: Change, result: Changed, ttl_us: int) -> list[tuple[int, Command]]:
    """An edit's or recall's second steps: each member's sync feed (after the message, which
    a late send step may not have written yet), or a big group's activity. A recall's again
    (a retry: a step may have failed before) too: each feed takes it once, within `ttl_us`
    of the recall."""
    edit = op.kind == "e"
    if result.fanout == "b":
        keys = (BIG_KEYS[0], BIG_KEYS[1], BIG_CHANGES_KEY)
        return [(i, ("EVALSHA", CHANGE_NOTE.sha, 3, *keys, op.chat, result.records))]
    if result.fanout == "s":
        kind = "E" if edit else "X"
        return [
            (i, _note(m, op.chat, "g", op.chat, result.newest, -1, kind, op.send_time, ttl_us))
            for m in result.members
        ]
    first, _, second = op.chat.partition(":")
    sides = [(first, "1", second)] + ([(second, "2", first)] if second != first else [])
    return [
        (i, _note(m, op.chat, way, ref, result.newest, -1, ("e" if edit else "x") if way == "1"
                  else ("f" if edit else "y"), op.send_time, ttl_us))
        for m, way, ref in sides
    ]  # fmt: skip


def _note(
    member: str,
    chat: str,
    way: str,
    ref: str,
    sent: int,
    prev: int,
    change: str = "",
    changed: int = 0,
    ttl_us: int = 0,
) -> Command:
    """A send's second step for one member (lua/user_note.lua); or a change's (of `change`
    kind, of the message at `changed`), after the chat's messages up to `sent` (a recall's
    remembered `ttl_us`)."""
    keys = (inbox_key(member), reads_key(member), feed_key(member), recalls_key(member))
    return (
        "EVALSHA", USER_NOTE.sha, 4, *keys, chat, way, ref, sent, prev, sync_channel(member),
        change, changed, ttl_us,
    )  # fmt: skip
