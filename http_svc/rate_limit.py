"""A per-key token bucket: at most `rate` events per second per key, bursts of `burst`.

The gateway keys it by sender (IM_HTTP_SENDER_RATE). State is per gateway process;
keys idle long enough to have refilled are forgotten when the table grows large.
"""

from __future__ import annotations

import math
import time


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
