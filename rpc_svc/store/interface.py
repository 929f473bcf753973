"""The store as the services see it: operations in, outcomes out (rpc_svc.store.ops), one
round trip for a batch where the backend can, and the wake-ups of long polls. Whether it
runs on one Redis or a Redis Cluster is the backend's business alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from rpc_svc.domain.errors import StoreError
from rpc_svc.store.commands.plan import Command, Plan
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

    async def erase(self, chat: str) -> bool:
        """Erase the recalled texts waiting in `chat`'s stream; False when another erasure
        holds it (or a recall came meanwhile)."""
        ...

    async def sync_key(self) -> bytes:
        """The key sync tokens are signed with, the same for every im-rpc of this store."""
        ...

    async def ping(self) -> bool:
        """True when Redis (every cluster master) answers; StoreError otherwise."""
        ...


class Backend(Protocol):
    """A cluster backend as its steps use it (rpc_svc.store.cluster_steps, sync_steps)."""

    plan: Plan

    async def direct(self, ops: Sequence[Op]) -> list[Outcome]:
        """The operations in one pipeline per master."""
        ...

    async def run_commands(self, commands: list[Command]) -> list[Any]:
        """The replies of raw commands; an error reply in place."""
        ...

    def as_error(self, exc: BaseException) -> StoreError:
        """The StoreError a Redis failure is."""
        ...
