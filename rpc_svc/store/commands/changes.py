"""The commands of edits and recalls and how their replies read: one script in the chat's
slot (CHANGE for a 1:1 chat, GROUP_CHANGE for a group) that on one Redis also writes the
members' sync feeds (a cluster's backend does that next: rpc_svc.store.cluster_steps), and
the steps that erase a recalled text from a stream (ERASE_STEP)."""

from __future__ import annotations

from typing import Any

from rpc_svc.store.commands.plan import Command, Plan
from rpc_svc.store.keys import (
    BIG_CHANGES_KEY,
    BIG_KEYS,
    ERASING_KEY,
    change_channel,
    change_log_key,
    changes_key,
    erase_lock_key,
    erasures_key,
    feed_key,
    group_big_key,
    group_members_key,
    group_owner_key,
    inbox_key,
    messages_key,
    short_key,
    stream_copy_key,
    sync_channel,
)
from rpc_svc.store.lua import CHANGE, ERASE_STEP, ERASE_TAIL, GROUP_CHANGE
from rpc_svc.store.ops import Change, Changed, EraseStep, EraseTail, Erasing, Erasures

OPS = (Change, EraseStep, EraseTail, Erasures, Erasing)
STREAM_NODE_ENTRIES = 128  # at least Redis's stream-node-max-entries (100 by default)


def commands(op: Any, plan: Plan) -> list[Command]:
    """The commands of an edit, a recall or an erasure's step."""
    match op:
        case Change(chat, who, send_time, kind, text, window_us, acting):
            own = (messages_key(chat), short_key(chat), changes_key(chat), erasures_key(chat))
            if chat.startswith("#") and ":" not in chat:
                keys = (
                    *own, group_owner_key(chat), group_members_key(chat), group_big_key(chat),
                    change_log_key(chat), *((*BIG_KEYS, BIG_CHANGES_KEY) if plan.user_side else ()),
                )  # fmt: skip
                return [
                    (
                        "EVALSHA", GROUP_CHANGE.sha, len(keys), *keys, kind, who, send_time,
                        text, window_us, chat, "1" if acting else "0", change_channel(chat),
                        plan.ttl_us,
                    )
                ]  # fmt: skip
            first, _, second = chat.partition(":")
            members = (first, second) if first != second else (first,)
            sides: tuple[str, ...] = ()
            channels: tuple[str, ...] = ()
            if plan.user_side:
                sides = tuple(k for m in members for k in (inbox_key(m), feed_key(m)))
                channels = tuple(sync_channel(m) for m in members)
            return [
                (
                    "EVALSHA", CHANGE.sha, 4 + len(sides), *own, *sides, kind, who, send_time,
                    text, window_us, chat, plan.ttl_us, *channels,
                )
            ]  # fmt: skip
        case EraseStep(chat, token, after, most, lock_ms, times):
            keys = (
                messages_key(chat), stream_copy_key(chat), erasures_key(chat),
                erase_lock_key(chat),
            )  # fmt: skip
            return [("EVALSHA", ERASE_STEP.sha, 4, *keys, token, after, most, lock_ms, *times)]
        case EraseTail(chat, most, times):
            keys = (messages_key(chat), erasures_key(chat), erase_lock_key(chat))
            return [("EVALSHA", ERASE_TAIL.sha, 3, *keys, STREAM_NODE_ENTRIES, most, *times)]
        case Erasures(chat):
            return [("SMEMBERS", erasures_key(chat))]
        case Erasing(chat, add):
            if not chat:
                return [("SMEMBERS", ERASING_KEY)]
            return [("SADD" if add else "SREM", ERASING_KEY, chat)]
    raise AssertionError(op)


def outcome(op: Any, replies: list[Any]) -> Any:
    """A Changed, or a refusal code (Change); the last entry copied, "done" or "busy"
    (EraseStep)."""
    reply = replies[0]
    if isinstance(op, EraseStep | EraseTail):
        return str(reply)
    if isinstance(op, Erasures | Erasing):
        return sorted(reply) if isinstance(reply, list | set) else int(reply)
    code = int(reply[0])
    if code < 0:
        return code
    at = int(reply[1])
    again = code == 0
    if len(reply) == 2:  # a recall of a recalled message, no step to run again
        return Changed(at, False, again=again)
    erasing, newest = reply[2] == "1", int(reply[3])
    if len(reply) == 4:  # a 1:1 chat (its cluster step follows: the service knows the chat)
        return Changed(at, erasing, "p", newest=newest, again=again)
    fanout = reply[4]
    if fanout == "b":
        return Changed(at, erasing, "b", records=int(reply[5]), newest=newest, again=again)
    return Changed(at, erasing, fanout, tuple(reply[5:]), newest=newest, again=again)
