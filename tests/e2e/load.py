"""A bounded send load for the cluster tests: concurrent clients, unique texts, every answer kept.

Each client sends one message at a time until `seconds` pass (and at most
`max_requests` in all); a request without an answer within `timeout_s` counts as a
hang. The acknowledged sends go to perf.audit to check that each is stored once.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from perf.audit import Audit, audit_acks


@dataclass
class LoadResult:
    """What the load saw: answers by status ("hang"/"error" without one), acks by chat."""

    statuses: Counter[int | str] = field(default_factory=Counter)
    acks: dict[str, list[int]] = field(default_factory=dict)
    failed_at: list[float] = field(default_factory=list)  # time.monotonic() of each failure
    tried: set[str] = field(default_factory=set)  # the chats of every send, answered or not

    @property
    def requests(self) -> int:
        """Requests made."""
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        """Requests not answered 200."""
        return self.requests - self.statuses[200]

    def line(self) -> str:
        """One line for the test log."""
        rate = self.failed / self.requests if self.requests else 0.0
        statuses = dict(self.statuses)
        return f"load: {self.requests} requests, {self.failed} failed ({rate:.3%}) {statuses}"

    async def audit(self, base_url: str) -> Audit:
        """Check every acknowledged send through `base_url`."""
        return await audit_acks(base_url, self.acks)


async def send_load(
    base_url: str,
    *,
    clients: int = 20,
    seconds: float = 10.0,
    chats: int = 40,
    max_requests: int = 200_000,
    timeout_s: float = 10.0,
    tag: str = "load",
) -> LoadResult:
    """Run the load against `base_url` and return what it saw."""
    result = LoadResult()
    numbers = itertools.count()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base_url, timeout=timeout_s, limits=limits) as http:

        async def client(c: int) -> None:
            while time.monotonic() < deadline:
                n = next(numbers)
                if n >= max_requests:
                    return
                sender = f"{tag}{c}"
                chat = f"{sender}:peer{n % chats}"
                result.tried.add(chat)
                try:
                    r = await http.post(
                        "/api/send", json={"chat": chat, "sender": sender, "text": f"{tag}-{n}"}
                    )
                except httpx.TimeoutException:
                    result.statuses["hang"] += 1
                    result.failed_at.append(time.monotonic())
                    continue
                except httpx.TransportError:
                    result.statuses["error"] += 1
                    result.failed_at.append(time.monotonic())
                    await asyncio.sleep(0.01)
                    continue
                result.statuses[r.status_code] += 1
                if r.status_code != 200:
                    result.failed_at.append(time.monotonic())
                else:
                    body = r.json()
                    result.acks.setdefault(body["chat"], []).append(body["send_time"])

        await asyncio.gather(*(client(c) for c in range(clients)))
    return result
