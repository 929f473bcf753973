"""What the commands of an operation depend on beyond the operation itself."""

from __future__ import annotations

from typing import Any, NamedTuple

Command = tuple[Any, ...]


class Plan(NamedTuple):
    """Lifetimes of the idempotency keys (µs), the most records of a short chat's hash,
    whether the scripts write a member's side themselves (one Redis: every key is on it),
    and the records a sync feed keeps and its idle lifetime (ms)."""

    ttl_us: int
    retry_ttl_us: int
    short_max: int
    user_side: bool
    sync_retain: int = 10_000
    sync_idle_ms: int = 30 * 86_400_000
