"""What the commands of an operation depend on beyond the operation itself."""

from __future__ import annotations

from typing import Any, NamedTuple

Command = tuple[Any, ...]


class Plan(NamedTuple):
    """Lifetimes of the idempotency keys (µs), the most records of a short chat's hash, and
    whether the scripts write a member's side themselves (one Redis: every key is on it)."""

    ttl_us: int
    retry_ttl_us: int
    short_max: int
    user_side: bool
