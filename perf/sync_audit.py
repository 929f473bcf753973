"""The sync audit: every user of the load follows its sync from a token taken before the
load, and must have seen each acknowledged message of its chats exactly once, in order
within each chat (acks: perf.audit's "<chat> <send_time>" lines; a 1:1 chat's members are
its two names)."""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from dataclasses import dataclass

import httpx

PROGRESS_EVERY = 20_000  # users between two progress lines


@dataclass
class SyncAudit:
    """What following every user's sync found."""

    users: int = 0
    expected: int = 0  # (user, acknowledged message) pairs
    events: int = 0  # message events seen
    missed: int = 0
    duplicated: int = 0
    out_of_order: int = 0

    @property
    def ok(self) -> bool:
        """True when each member saw each acknowledged message once, in order."""
        return not (self.missed or self.duplicated or self.out_of_order)

    def line(self) -> str:
        """One line for logs and reports."""
        return (
            f"sync audit: {self.users} users followed from tokens taken before the load, "
            f"{self.expected} (member, acknowledged message) pairs, {self.events} message "
            f"events, {self.missed} missed, {self.duplicated} duplicated, {self.out_of_order} "
            f"out of order -> {'OK' if self.ok else 'FAILED'}"
        )


def _progress(text: str) -> None:
    print(f"[sync audit] {text}", file=sys.stderr, flush=True)


def _headers(user: str, tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[user]}"} if user in tokens else {}


async def take_tokens(
    base_url: str, users: list[str], tokens: dict[str, str] | None = None, concurrency: int = 64
) -> dict[str, str]:
    """A sync token "from now" for each of `users` (user -> token)."""
    taken: dict[str, str] = {}
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(user: str) -> None:
            async with gate:
                r = await client.get(
                    "/api/sync", params={"user": user}, headers=_headers(user, tokens or {})
                )
                r.raise_for_status()
                taken[user] = r.json()["next"]
            if len(taken) % PROGRESS_EVERY == 0:
                print(
                    f"[sync audit] {len(taken):,} of {len(users):,} tokens taken",
                    file=sys.stderr,
                    flush=True,
                )

        await asyncio.gather(*(one(u) for u in users))
    return taken


async def _follow(
    client: httpx.AsyncClient, user: str, since: str, tokens: dict[str, str]
) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for _ in range(1_000_000):
        r = await client.get(
            "/api/sync",
            params={"user": user, "since": since, "limit": 1000},
            headers=_headers(user, tokens),
        )
        r.raise_for_status()
        page = r.json()
        seen += [
            (e["chat"], e["message"]["send_time"]) for e in page["events"] if e["type"] == "message"
        ]
        since = page["next"]
        if not page["has_more"]:
            return seen
    raise RuntimeError(f"the sync of {user} did not end")


async def audit_syncs(
    base_url: str,
    acks: dict[str, list[int]],
    since: dict[str, str],
    tokens: dict[str, str] | None = None,
    concurrency: int = 16,
) -> SyncAudit:
    """Follow the sync of every member of every acknowledged chat from `since` (its token)."""
    wanted: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for chat, times in acks.items():
        for member in set(chat.split(":")):
            wanted[member].update((chat, t) for t in times)
    audit = SyncAudit(users=len(wanted))
    gate = asyncio.Semaphore(concurrency)
    done = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(user: str) -> None:
            nonlocal done
            async with gate:
                seen = await _follow(client, user, since[user], tokens or {})
            mine = wanted[user]
            audit.expected += len(mine)
            audit.events += len(seen)
            audit.missed += len(mine - set(seen))
            audit.duplicated += len(seen) - len(set(seen))
            last: dict[str, int] = {}
            for chat, t in seen:
                audit.out_of_order += t <= last.get(chat, 0)
                last[chat] = t
            done += 1
            if done % PROGRESS_EVERY == 0:
                print(
                    f"[sync audit] {done:,} of {len(wanted):,} users followed",
                    file=sys.stderr,
                    flush=True,
                )

        await asyncio.gather(*(one(u) for u in wanted))
    return audit
