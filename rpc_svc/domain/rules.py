"""The bounds of a call's values: texts, idempotency keys, cursors, page sizes, waits."""

from __future__ import annotations

import re

from rpc_svc.domain.errors import InvalidArgument

MAX_CLIENT_MSG_ID_CHARS = 64
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
MAX_WAIT_MS = 30_000
INT64_MAX = 2**63 - 1

_CONTROL_CHAR = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_text(text: str, max_bytes: int) -> None:
    """Raise InvalidArgument unless `text` is 1..max_bytes bytes of UTF-8."""
    if not text:
        raise InvalidArgument("text must not be empty", "invalid_text")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidArgument(
            f"text is {size} bytes of UTF-8; the limit is {max_bytes}", "text_too_long"
        )


def check_client_msg_id(value: str, name: str = "client_msg_id") -> None:
    """Raise InvalidArgument unless `value` is empty (none) or 1..64 printable characters."""
    if len(value) > MAX_CLIENT_MSG_ID_CHARS or _CONTROL_CHAR.search(value):
        raise InvalidArgument(
            f"{name} must be 1..{MAX_CLIENT_MSG_ID_CHARS} characters without control characters",
            f"invalid_{name}",
        )


def check_wait_ms(wait_ms: int) -> None:
    """Raise InvalidArgument unless 0 <= wait_ms <= MAX_WAIT_MS."""
    if not 0 <= wait_ms <= MAX_WAIT_MS:
        raise InvalidArgument(f"wait_ms must be 0..{MAX_WAIT_MS}", "invalid_wait_ms")


def page_limit(limit: int) -> int:
    """The page size for a requested `limit`: 0 means the default; 1..MAX_LIMIT."""
    if limit == 0:
        return DEFAULT_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be 1..{MAX_LIMIT} (0 for the default)", "invalid_limit")
    return limit


SYNC_LIMIT = 100  # a sync's default page of events


def sync_limit(limit: int) -> int:
    """The events of a sync page for a requested `limit`: 0 means SYNC_LIMIT; 1..MAX_LIMIT."""
    if limit == 0:
        return SYNC_LIMIT
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be 1..{MAX_LIMIT} (0 for the default)", "invalid_limit")
    return limit


def check_cursor(cursor: int, name: str = "cursor") -> None:
    """Raise InvalidArgument unless 0 <= cursor <= 2**63-1."""
    if not 0 <= cursor <= INT64_MAX:
        raise InvalidArgument(f"{name} must be an integer 0..2^63-1", f"invalid_{name}")
