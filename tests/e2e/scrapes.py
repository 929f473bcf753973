"""Reading Prometheus metrics in the tests: a scrape's samples, and waiting for one to show."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Samples = dict[str, float]


def samples(text: str) -> Samples:
    """A scrape's samples, by name and labels as written (comments left out)."""
    rows = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in rows}


async def until(
    scrape: Callable[[], Awaitable[Samples]], name: str, value: float, seconds: float = 5.0
) -> Samples:
    """Scrape until sample `name` is `value` (an AssertionError past `seconds`); the last
    scrape."""
    deadline = time.monotonic() + seconds
    while (seen := await scrape()).get(name) != value:
        assert time.monotonic() < deadline, (name, seen.get(name))
        await asyncio.sleep(0.05)
    return seen
