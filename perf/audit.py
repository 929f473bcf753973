"""The correctness audit: every acknowledged message stored exactly once, in order.

Acks are "<chat> <send_time>" lines (from wrk and locust). Each chat is read back
through the public API, paging forward from cursor 0, and checked: every acked
send_time is there (else lost); no text is stored twice (every load text is
unique, so a repeat is a duplicate); send_times strictly increase.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Audit:
    """What the audit found."""

    chats: int = 0
    acked: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    acked_twice: int = 0
    stored_unacked: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing acknowledged was lost, duplicated or misordered."""
        return not (self.lost or self.duplicated or self.out_of_order or self.acked_twice)

    def line(self) -> str:
        """One line for logs and reports."""
        return (
            f"audit: {self.chats} chats, {self.acked} acked, {self.stored} stored, "
            f"{self.lost} lost, {self.duplicated} duplicated, {self.out_of_order} out of "
            f"order, {self.acked_twice} acked twice, {self.stored_unacked} stored but "
            f"unacknowledged -> {'OK' if self.ok else 'FAILED'}"
        )


def read_acks(paths: list[Path]) -> dict[str, list[int]]:
    """chat -> acknowledged send times, from every ack file that exists."""
    acks: dict[str, list[int]] = defaultdict(list)
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            chat, _, send_time = line.rpartition(" ")
            if chat:
                acks[chat].append(int(send_time))
    return acks


async def _read_chat(
    client: httpx.AsyncClient, chat: str, tokens: dict[str, str]
) -> list[dict[str, object]]:
    messages: list[dict[str, object]] = []
    cursor = 0
    member = chat.partition(":")[0]
    headers = {"Authorization": f"Bearer {tokens[member]}"} if member in tokens else {}
    for _ in range(100_000):
        r = await client.get(
            "/api/pull",
            params={"chat": chat, "cursor": cursor, "limit": 1000},
            headers=headers,
        )
        r.raise_for_status()
        page = r.json()
        messages.extend(page["messages"])
        if not page["has_more"]:
            return messages
        cursor = page["next_cursor"]
    raise RuntimeError(f"paging {chat} did not end")


def _check(audit: Audit, acked: list[int], stored: list[dict[str, object]]) -> None:
    times = [int(str(m["send_time"])) for m in stored]
    audit.acked += len(acked)
    audit.stored += len(stored)
    audit.acked_twice += len(acked) - len(set(acked))
    audit.lost += len(set(acked) - set(times))
    audit.stored_unacked += len(set(times) - set(acked))
    audit.out_of_order += sum(1 for a, b in itertools.pairwise(times) if a >= b)
    texts = Counter(str(m["text"]) for m in stored)
    audit.duplicated += sum(n - 1 for n in texts.values() if n > 1)


PROGRESS_EVERY = 10_000  # chats read between two progress lines


async def run_audit(
    base_url: str,
    ack_files: list[Path],
    concurrency: int = 16,
    tokens: dict[str, str] | None = None,
) -> Audit:
    """Read back every acknowledged chat of `ack_files` through `base_url` and check it
    (as a member of each chat, with `tokens` (user -> token) when authentication is on)."""
    return await audit_acks(base_url, read_acks(ack_files), concurrency, tokens)


async def audit_acks(
    base_url: str,
    acks: dict[str, list[int]],
    concurrency: int = 16,
    tokens: dict[str, str] | None = None,
) -> Audit:
    """Read back every chat of `acks` (chat -> acked send times) through `base_url`."""
    audit = Audit(chats=len(acks))
    gate = asyncio.Semaphore(concurrency)
    done = 0
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def one(chat: str) -> None:
            nonlocal done
            async with gate:
                _check(audit, acks[chat], await _read_chat(client, chat, tokens or {}))
            done += 1
            if done % PROGRESS_EVERY == 0:
                print(f"[audit] {done:,} of {len(acks):,} chats read", file=sys.stderr, flush=True)

        await asyncio.gather(*(one(chat) for chat in acks))
    return audit
