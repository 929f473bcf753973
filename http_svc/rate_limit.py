"""Per-key bounds of the gateway: a token bucket (at most `rate` events per second per key,
bursts of `burst`; keyed by sender, IM_HTTP_SENDER_RATE) and a share of the long-poll slots
(at most `limit` waiting per key: the authenticated user, else the client's address;
IM_HTTP_MAX_WAITING_PER_USER). State is per gateway process; a bucket idle long enough to
have refilled is forgotten when the table grows large, a share as soon as it holds nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager


class RateLimiter:
    """Token buckets by key."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def allow(self, key: str, now: float | None = None) -> float:
        """Take a token for `key`: 0.0 if allowed, else seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, when = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - when) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self._max_keys:
            self._forget_idle(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        full_after = self._burst / self._rate
        self._buckets = {k: (t, w) for k, (t, w) in self._buckets.items() if now - w < full_after}


def retry_after(wait_s: float) -> str:
    """A Retry-After value (whole seconds, at least 1) for a wait of `wait_s` seconds."""
    return str(max(1, math.ceil(wait_s)))


class Shares:
    """At most `limit` of a thing held at once per key."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[bool]:
        """Hold one for `key` while the block runs: yields False (holding nothing) when
        `key` holds `limit` already."""
        held = self._held.get(key, 0)
        if held >= self.limit:
            yield False
            return
        self._held[key] = held + 1
        try:
            yield True
        finally:
            left = self._held[key] - 1
            if left:
                self._held[key] = left
            else:
                del self._held[key]

    def held(self, key: str) -> int:
        """How many `key` holds now."""
        return self._held.get(key, 0)
