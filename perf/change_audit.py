"""The change audit: mixed traffic of sends, edits and recalls in 1:1 chats, small groups and
big groups, while every member's sync is followed from a token taken before; then checked:
each acknowledged message seen once by every member's sync (in order within each chat), each
acknowledged edit and each recalled message seen once as a change by every member's sync,
after its message, and each chat's final pull showing every message as its last
acknowledged change left it.

    python -m perf.change_audit [--users 200] [--seconds 20] [--clients 32] [--out DIR]

One gateway and one im-rpc on one redis-server with AOF (IM_GROUP_FANOUT_MAX_MEMBERS 3:
groups of 3 are small, of 5 big). Users u0..u(N-1): a 1:1 chat for each pair (u2i, u2i+1),
a small group of 3 and a big group of 5 for each five users. Each client loops until the
time is up: a send (60%), an edit of an acknowledged message by its sender (25%) or a
recall (15%: by its sender, or in a group by the owner); an edit answered 409 `recalled`
(it raced a recall) is counted, not an error. Writes perf/reports/change_audit.md (or
`--out`); exits 1 when the audit fails.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from devtools.procs import start_trio
from devtools.rawhttp import Answer, Connection
from perf.lib.rounds import log
from perf.lib.stack import raise_fd_limit
from perf.report import write_table


@dataclass
class Chat:
    """One chat of the load: its members, owner (groups), and what was acknowledged."""

    name: str
    members: list[str]
    owner: str = ""
    sent: list[tuple[int, str]] = field(default_factory=list)  # (send_time, sender)
    edits: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # (at, text)
    recalled: set[int] = field(default_factory=set)


@dataclass
class Load:
    """Counts of the traffic."""

    answers: Counter[str] = field(default_factory=Counter)


def _json(answer: Answer) -> Any:
    return answer.json()


def _chats(users: int) -> list[Chat]:
    names = [f"u{i}" for i in range(users)]
    chats = [Chat(f"{names[i]}:{names[i + 1]}", names[i : i + 2]) for i in range(0, users - 1, 2)]
    for k in range(0, users - 4, 5):
        five = names[k : k + 5]
        chats.append(Chat(f"#s{k}", five[:3], five[0]))
        chats.append(Chat(f"#b{k}", five, five[0]))
    return chats


async def _setup(port: int, chats: list[Chat]) -> None:
    conn = await Connection.open(port)
    try:
        for chat in chats:
            if not chat.owner:
                continue
            await conn.post_json("/api/groups", {"chat": chat.name, "user": chat.owner})
            for m in chat.members[1:]:
                add = {"chat": chat.name, "user": chat.owner, "member": m}
                await conn.post_json("/api/groups/add", add)
    finally:
        await conn.close()


async def _tokens(port: int, users: list[str]) -> dict[str, str]:
    conn = await Connection.open(port)
    try:
        return {u: _json(await conn.get(f"/api/sync?user={u}"))["next"] for u in users}
    finally:
        await conn.close()


async def _client(port: int, chats: list[Chat], until: float, load: Load, seed: int) -> None:
    rnd = random.Random(seed)
    conn = await Connection.open(port)
    n = 0
    try:
        while time.monotonic() < until:
            n += 1
            chat = rnd.choice(chats)
            roll = rnd.random()
            if roll < 0.6 or not chat.sent:
                sender = rnd.choice(chat.members)
                body = {"chat": chat.name, "sender": sender, "text": f"s{seed}-{n}"}
                answer = await conn.post_json("/api/send", body)
                if answer.status == 200:
                    chat.sent.append((_json(answer)["send_time"], sender))
                load.answers[f"send {answer.status}"] += 1
                continue
            st, sender = rnd.choice(chat.sent)
            if roll < 0.85:
                text = f"e{seed}-{n}"
                edit = {"chat": chat.name, "sender": sender, "send_time": st, "text": text}
                answer = await conn.post_json("/api/edit", edit)
                if answer.status == 200:
                    at = _json(answer)["edited_at"]
                    chat.edits.setdefault(st, []).append((at, text))
                    load.answers["edit 200"] += 1
                else:
                    load.answers[f"edit {answer.status} {_json(answer)['error']}"] += 1
                continue
            who = chat.owner if chat.owner and rnd.random() < 0.5 else sender
            answer = await conn.post_json(
                "/api/recall", {"chat": chat.name, "user": who, "send_time": st}
            )
            if answer.status == 200:
                chat.recalled.add(st)
            load.answers[f"recall {answer.status}"] += 1
    finally:
        await conn.close()


async def _follow(port: int, user: str, since: str) -> list[dict[str, Any]]:
    conn = await Connection.open(port)
    events: list[dict[str, Any]] = []
    try:
        for _ in range(100_000):
            page = _json(await conn.get(f"/api/sync?user={user}&since={since}&limit=1000"))
            events += page["events"]
            since = page["next"]
            if not page["has_more"]:
                return events
    finally:
        await conn.close()
    raise RuntimeError(f"the sync of {user} did not end")


async def _pull_all(conn: Connection, chat: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    cursor = 0
    for _ in range(10_000):
        page = _json(await conn.get(f"/api/pull?chat={quote(chat)}&cursor={cursor}&limit=1000"))
        messages += page["messages"]
        if not page["has_more"]:
            return messages
        cursor = page["next_cursor"]
    raise RuntimeError(f"the pull of {chat} did not end")


def check_syncs(chats: list[Chat], seen: dict[str, list[dict[str, Any]]]) -> Counter[str]:
    """What every member's sync should have had, against what it had: counts of each defect
    ("missed", "duplicated", "out of order", "change missed", "change duplicated", "change
    before its message") and of what was checked ("messages", "changes")."""
    found: Counter[str] = Counter()
    for chat in chats:
        edits = {st: len(done) for st, done in chat.edits.items()}
        for member in chat.members:
            mine = [e for e in seen[member] if e["chat"] == chat.name]
            got = [e["message"]["send_time"] for e in mine if e["type"] == "message"]
            want = sorted(st for st, _ in chat.sent)
            found["messages"] += len(want)
            found["missed"] += len(set(want) - set(got))
            found["duplicated"] += len(got) - len(set(got))
            found["out of order"] += sum(b <= a for a, b in itertools.pairwise(got))
            at: dict[int, int] = {}  # a message's place among the chat's events
            for i, e in enumerate(mine):
                if e["type"] == "message":
                    at.setdefault(e["message"]["send_time"], i)
            changes: Counter[tuple[str, int]] = Counter()
            for i, e in enumerate(mine):
                if e["type"] in ("edit", "recall"):
                    st = e["message"]["send_time"] if e["type"] == "edit" else e["send_time"]
                    changes[(e["type"], st)] += 1
                    found["change before its message"] += st not in at or at[st] > i
            for st, count in edits.items():
                found["changes"] += count
                found["change missed"] += max(0, count - changes[("edit", st)])
                found["change duplicated"] += max(0, changes[("edit", st)] - count)
            for st in chat.recalled:
                found["changes"] += 1
                found["change missed"] += changes[("recall", st)] == 0
                found["change duplicated"] += max(0, changes[("recall", st)] - 1)
    return found


def check_pull(chat: Chat, messages: list[dict[str, Any]]) -> int:
    """How many of `chat`'s messages its final pull shows otherwise than its last
    acknowledged change left them (or not at all)."""
    wrong = abs(len(chat.sent) - len(messages))
    for m in messages:
        st = m["send_time"]
        if st in chat.recalled:
            wrong += not (m.get("recalled") is True and m["text"] == "")
        elif st in chat.edits:
            at, text = max(chat.edits[st])
            wrong += (m["text"], m.get("edited_at")) != (text, at)
        else:
            wrong += "edited_at" in m or "recalled" in m
    return wrong


async def audit(port: int, args: argparse.Namespace) -> list[str]:
    """Run the load and the checks: the report's lines."""
    chats = _chats(args.users)
    users = sorted({m for c in chats for m in c.members})
    await _setup(port, chats)
    tokens = await _tokens(port, users)
    load = Load()
    log("change_audit", f"{len(chats)} chats, {len(users)} users; load for {args.seconds:g} s")
    until = time.monotonic() + args.seconds
    await asyncio.gather(*(_client(port, chats, until, load, s) for s in range(args.clients)))
    log("change_audit", f"load done: {dict(load.answers)}; following every sync")
    seen: dict[str, list[dict[str, Any]]] = {}
    for at in range(0, len(users), 32):
        batch = users[at : at + 32]
        got = await asyncio.gather(*(_follow(port, u, tokens[u]) for u in batch))
        seen.update(zip(batch, got, strict=True))
    found = check_syncs(chats, seen)
    conn = await Connection.open(port)
    try:
        wrong = sum([check_pull(c, await _pull_all(conn, c.name)) for c in chats])
    finally:
        await conn.close()
    defects = ("missed", "duplicated", "out of order", "change missed", "change duplicated",
               "change before its message")  # fmt: skip
    ok = not any(found[d] for d in defects) and wrong == 0
    edited = sum(len(c.edits) for c in chats)
    recalled = sum(len(c.recalled) for c in chats)
    return [
        f"Mixed traffic for {args.seconds:g} s from {args.clients} clients over {len(chats)} "
        f"chats (1:1, small groups of 3, big groups of 5) of {len(users)} users, on one "
        "gateway, one im-rpc and redis-server with AOF (this 2-core machine):",
        "",
        f"- answers: {dict(sorted(load.answers.items()))}",
        f"- messages acknowledged: {sum(len(c.sent) for c in chats):,}; messages edited: "
        f"{edited:,} (edits acknowledged: {load.answers['edit 200']:,}); recalled: {recalled:,}",
        f"- every member's sync, followed from a token taken before: {found['messages']:,} "
        f"(member, message) pairs and {found['changes']:,} (member, change) pairs checked",
        f"- messages: **{found['missed']} missed, {found['duplicated']} duplicated, "
        f"{found['out of order']} out of order**; changes: **{found['change missed']} missed, "
        f"{found['change duplicated']} duplicated, {found['change before its message']} "
        "before their message**",
        f"- final pulls: **{wrong} messages** not as their last acknowledged change left them",
        f"- audit: **{'OK' if ok else 'FAILED'}**",
    ]


def main(argv: list[str] | None = None) -> int:
    """Start a stack, run the audit, write the report; 1 when it fails."""
    p = argparse.ArgumentParser(prog="python -m perf.change_audit", description=__doc__)
    p.add_argument("--users", type=int, default=200, help="users (a 1:1 chat per pair)")
    p.add_argument("--seconds", type=float, default=20, help="length of the load")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients")
    p.add_argument("--out", type=Path, help="report directory (default perf/reports)")
    args = p.parse_args(argv)
    raise_fd_limit()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-change-audit-")))
        settings = {"IM_GROUP_FANOUT_MAX_MEMBERS": "3", "IM_LOG_LEVEL": "WARNING"}
        trio = start_trio(work, fsync="everysec", rpc_settings=settings)
        stack.callback(trio.stop)
        lines = asyncio.run(audit(trio.gateways[0].port, args))
    write_table(args.out, "change_audit.md", lines)
    return 0 if lines[-1].endswith("**OK**") else 1


if __name__ == "__main__":
    raise SystemExit(main())
