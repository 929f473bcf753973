"""Bearer tokens for a load's users, renewed as real clients renew theirs.

Each user's token is minted (ES256, with the run's private key set) on its first request
and again once it has lived half its `ttl_s`, so that no request carries a token about to
expire, and a long run keeps handing the gateways tokens they have not seen yet.
"""

from __future__ import annotations

import time
from pathlib import Path

from im_common.token_cli import mint


class Bearers:
    """The Authorization header of each user of a load; no header when `signing` is None
    (authentication off)."""

    def __init__(self, signing: Path | None, ttl_s: int) -> None:
        self.signing = signing
        self.ttl_s = ttl_s
        self.minted = 0
        self._held: dict[str, tuple[float, dict[str, str]]] = {}  # user -> (renew at, header)

    def headers(self, user: str) -> dict[str, str] | None:
        """`user`'s header: its token, minted anew when it has lived half its life."""
        if self.signing is None:
            return None
        now = time.monotonic()
        held = self._held.get(user)
        if held is not None and now < held[0]:
            return held[1]
        header = {"Authorization": f"Bearer {self.token(user, self.ttl_s)}"}
        self._held[user] = (now + self.ttl_s / 2, header)
        return header

    def token(self, user: str, ttl_s: int) -> str:
        """A new token for `user`, valid for `ttl_s` seconds from now (below 0: expired)."""
        assert self.signing is not None
        self.minted += 1
        return mint(user, ttl_s, private_path=self.signing)
