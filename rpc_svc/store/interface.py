"""The store as the services see it: operations in, outcomes out (rpc_svc.store.ops), one
round trip for a batch where the backend can, and the wake-ups of long polls. Whether it
runs on one Redis or a Redis Cluster is the backend's business alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from rpc_svc.store.ops import Op
from rpc_svc.store.wakeups import Wakeups

Outcome = Any  # as each operation's docstring says; a failure is a StoreError in its place


class Store(Protocol):
    """What the services may ask of the store."""

    wakeups: Wakeups

    async def execute(self, ops: Sequence[Op]) -> list[Outcome]:
        """One outcome per operation, in order; a failure is a StoreError in its place
        (that operation's alone)."""
        ...

    async def one(self, op: Op) -> Outcome:
        """The outcome of one operation; a StoreError raised."""
        ...

    async def ping(self) -> bool:
        """True when Redis (every cluster master) answers; StoreError otherwise."""
        ...
