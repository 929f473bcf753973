"""Operations asked for in one turn of the event loop, sent to the store together: one round
trip (per Redis) for all of them where each would have taken its own.

The syncs that one message wakes (each member's) wake in the same turn, as do the waiting
syncs a gateway's batch brings: each reads its own page, and they share the trip. An
operation waits only for the turn to end (no timer): one alone goes at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence

from rpc_svc.store.interface import Outcome
from rpc_svc.store.ops import Op

MAX_OPS = 256  # a trip's most operations (more in one turn: several trips at once)

Execute = Callable[[Sequence[Op]], Awaitable[list[Outcome]]]
_Waiting = list[tuple[Op, "asyncio.Future[Outcome]"]]


class OneTrip:
    """Sends the operations of each turn of the loop as one batch (`execute`: the store's)."""

    def __init__(self, execute: Execute) -> None:
        self._execute = execute
        self._waiting: _Waiting = []
        self._trips: set[asyncio.Task[list[Outcome]]] = set()
        self.trips = 0  # batches sent (for the tests and the curious)

    async def one(self, op: Op) -> Outcome:
        """The outcome of `op`, from the round trip of this turn's operations."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._send)
        self._waiting.append((op, future))
        return await future

    def _send(self) -> None:
        waiting, self._waiting = self._waiting, []
        for at in range(0, len(waiting), MAX_OPS):
            batch = waiting[at : at + MAX_OPS]
            trip = asyncio.get_running_loop().create_task(self._trip([op for op, _ in batch]))
            self._trips.add(trip)  # (the loop holds a task weakly)
            self.trips += 1
            trip.add_done_callback(functools.partial(self._deliver, batch))

    async def _trip(self, ops: list[Op]) -> list[Outcome]:
        return await self._execute(ops)

    def _deliver(self, batch: _Waiting, done: asyncio.Task[list[Outcome]]) -> None:
        self._trips.discard(done)
        if done.cancelled():
            for _, future in batch:
                future.cancel()
            return
        failed = done.exception()
        if failed is not None:
            for _, future in batch:
                if not future.done():
                    future.set_exception(failed)
            return
        for (_, future), outcome in zip(batch, done.result(), strict=True):
            if not future.done():  # (a caller that left: its future was cancelled)
                future.set_result(outcome)
