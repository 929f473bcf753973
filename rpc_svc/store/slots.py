"""A bound on the store's round trips under way (connections, pipelines) whose every step is
O(1) however many callers wait.

asyncio.Semaphore scans its waiters: `locked()` (called by every `acquire`) looks for one
not cancelled, a woken waiter removes itself from the middle of the queue, and a release
walks past the waiters already woken. When one message wakes thousands of long polls (or
syncs) and each queues for a connection, that is quadratic: measured in perf.sync_waits, a
sixth of im-rpc's time went to it (perf/README.md, "Sync").
"""

from __future__ import annotations

import asyncio
from collections import deque


class Slots:
    """At most `limit` holders at once; the others wait in order of arrival. A slot
    released goes straight to the first waiter still waiting; a waiter that gave up (its
    timeout, a cancellation) is skipped when its turn comes."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> bool:
        """Whether `acquire` returns without waiting."""
        return self._free > 0

    async def acquire(self) -> None:
        """Take a slot, waiting for one when none is free."""
        if self._free > 0:
            self._free -= 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # given the slot as it gave up
                self.release()
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter still waiting, else to the free ones."""
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._free += 1
