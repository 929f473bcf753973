"""Tokens per simulated user, for load with authentication on.

The load's users are "<prefix>a<i>" and "<prefix>b<i>" (wrk: i in 1..chats; locust: i in
0..chats-1). `write_tokens` mints one token per user with im-token's own function and
writes "<user> <token>" lines, which perf/wrk/im.lua, perf/locustfile.py and the audit read.
"""

from __future__ import annotations

from pathlib import Path

from im_common.token_cli import mint


def load_users(prefix: str, chats: int) -> list[str]:
    """Every user the load of `prefix` with `chats` chats may act as."""
    return [f"{prefix}{side}{i}" for i in range(chats + 1) for side in "ab"]


def write_tokens(path: Path, users: list[str], private_jwks: Path, ttl_s: int = 3600) -> Path:
    """Mint a token per user (the key set's newest key) into `path`; `path`."""
    lines = [f"{user} {mint(user, ttl_s, private_path=private_jwks)}\n" for user in users]
    path.write_text("".join(lines))
    return path


def read_tokens(path: Path | None) -> dict[str, str]:
    """user -> token from a file of write_tokens ({} for None)."""
    if path is None:
        return {}
    pairs = (line.split(" ", 1) for line in path.read_text().splitlines() if line)
    return {user: token for user, token in pairs}
