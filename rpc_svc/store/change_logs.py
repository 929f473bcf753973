"""What a Redis Cluster's big-group catch-up needs from other slots before the user's feed
script runs (one Redis reads it in that script): which change log records the feed has not
had, and the newest send time each names, so that every change goes in after exactly the
messages its group accepted before it (lua/feed.lua's feed_catch_up, docs/store.md "Edit and
recall")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rpc_svc.domain.errors import StoreError
from rpc_svc.store.ops import ChangeLog, ChangeMarks, Op

Direct = Callable[[Sequence[Op]], Awaitable[list[Any]]]  # a backend's `direct`


async def change_logs(direct: Direct, user: str, counts: dict[str, int]) -> dict[str, str]:
    """For each big group of `counts` (its change log's length) whose records `user`'s feed
    has not all had: the newest send times those records name, as lua/feed.lua's log_newest
    reads them ("<records had>;<newest>,<newest>,...")."""
    groups = tuple(g for g, count in counts.items() if count > 0)
    if not groups:
        return {}
    (marks,) = _raised(await direct([ChangeMarks(user, groups)]))
    behind = [(g, m, counts[g]) for g, m in zip(groups, marks, strict=True) if m is not None
              and m < counts[g]]  # fmt: skip
    if not behind:
        return {}
    logs = _raised(await direct([ChangeLog(g, m, count - 1) for g, m, count in behind]))
    return {
        g: f"{m};" + ",".join(str(newest) for _, _, newest in log)
        for (g, m, _), log in zip(behind, logs, strict=True)
    }


def _raised(outcomes: list[Any]) -> list[Any]:
    for outcome in outcomes:
        if isinstance(outcome, StoreError):
            raise outcome
    return outcomes
