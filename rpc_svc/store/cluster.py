"""The store on a Redis Cluster: a chat's keys in its slot, a user's in another, so a batch
is one pipeline per master (sent in parallel), and what one Redis does in one script takes
steps here (rpc_svc.store.cluster_steps): a send's second step (the members' inboxes and
sync feeds, a big group's activity), a membership change's member side, an inbox page, a
user's groups; and a page of a user's sync feed (rpc_svc.store.sync_steps)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from im_common.tasks import cancel_and_wait
from rpc_svc.domain.errors import StoreError, StoreUnavailable
from rpc_svc.store import cluster_steps, sync_steps
from rpc_svc.store.base import COMPACT_LIMIT, LOST, RedisStore, guard
from rpc_svc.store.commands.plan import Command, Plan
from rpc_svc.store.interface import Outcome
from rpc_svc.store.ops import Op, SyncFeed
from rpc_svc.store.slots import Slots
from rpc_svc.store.wakeups import Node, Wakeups

log = logging.getLogger(__name__)


class ClusterTopology:
    """Has a cluster client learn the slots again, in the background, one refresh at a
    time: after a failover the slots of the lost master belong to its replica. Bounds the
    pipelines under way, since the cluster client does not wait for a free connection."""

    def __init__(self, cluster: RedisCluster, max_connections: int, wait_s: float) -> None:
        self.cluster = cluster
        self._task: asyncio.Task[None] | None = None
        # a pipeline holds at most one connection per node; one stays for slot refreshes
        self._pipelines = Slots(max(1, max_connections - 1))
        self._wait_s = wait_s

    @asynccontextmanager
    async def pipeline_slot(self) -> AsyncIterator[None]:
        """Run the block as one of the pipelines under way, waiting up to `wait_s` for a
        turn (StoreUnavailable then): past its `max_connections` per node, redis-py's
        cluster client fails a command at once (MaxConnectionsError) instead of waiting,
        as the single-Redis pool does."""
        try:
            async with asyncio.timeout(self._wait_s):
                await self._pipelines.acquire()
        except TimeoutError:
            raise StoreUnavailable(
                f"no connection to redis came free within {self._wait_s:g}s"
            ) from None
        try:
            yield
        finally:
            self._pipelines.release()

    def refresh(self) -> None:
        """Start a refresh unless one is under way."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._refresh())

    async def locate(self, channel: str) -> Node:
        """The master that serves `channel`'s slot (the slots read on first use)."""
        await self.cluster.initialize()
        node = self.cluster.get_node_from_key(channel)
        assert node is not None
        return Node(str(node.name), partial(node.connection_class, **node.connection_kwargs))

    async def close(self) -> None:
        """Stop a refresh under way."""
        await cancel_and_wait(self._task)

    async def _refresh(self) -> None:
        try:
            await self.cluster.nodes_manager.initialize()
        except (rexc.RedisError, OSError) as exc:
            log.warning("cannot read the cluster's slots: %s", exc)
        await asyncio.sleep(0.2)  # at most five refreshes a second


class ClusterStore(RedisStore):
    """The store on the Redis Cluster that a seed URL names."""

    def __init__(
        self, topology: ClusterTopology, wakeups: Wakeups, plan: Plan, **rest: Any
    ) -> None:
        super().__init__(wakeups, plan, **rest)
        self.topology = topology

    @classmethod
    def from_url(
        cls, url: str, plan: Plan, max_connections: int, timeout_s: float, **rest: Any
    ) -> ClusterStore:
        """A store on the cluster whose seed node `url` names (the slots read from it)."""
        cluster = RedisCluster.from_url(
            url,
            max_connections=max_connections,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),  # a command is never sent twice
        )
        topology = ClusterTopology(cluster, max_connections, timeout_s)
        wakeups = Wakeups(topology.locate, topology.refresh, timeout_s)
        return cls(topology, wakeups, plan._replace(user_side=False), timeout_s=timeout_s, **rest)

    async def execute(self, ops: Sequence[Op]) -> list[Outcome]:
        """The operations that one Redis answers in one script and a cluster in steps run
        their steps (together); the others go in one pipeline per master, beside them."""
        steps = {
            i: op for i, op in enumerate(ops) if cluster_steps.takes(op) or type(op) is SyncFeed
        }
        if not steps:
            return await self.direct(ops)
        rest = [op for i, op in enumerate(ops) if i not in steps]
        done = await asyncio.gather(
            self.direct(rest),
            *(
                sync_steps.run(self, op) if type(op) is SyncFeed else cluster_steps.run(self, op)
                for op in steps.values()
            ),
        )
        direct = iter(done[0])
        stepped = dict(zip(steps, done[1:], strict=True))
        return [stepped[i] if i in stepped else next(direct) for i in range(len(ops))]

    async def after(self, ops: Sequence[Op], results: list[Outcome]) -> None:
        """The sends' second steps: each member's inbox, a big group's activity."""
        await cluster_steps.second_steps(self, ops, results)

    async def pipeline(
        self, commands: list[Command], extra: list[tuple[Command, Any]]
    ) -> list[Any]:
        """One round trip per master: `commands`, then each `extra` command on its node."""
        pipe = self.topology.cluster.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        for command, node in extra:
            pipe.execute_command(*command, target_nodes=node)
        async with self.topology.pipeline_slot():
            try:
                replies = await guard(pipe.execute(raise_on_error=False))
            except StoreUnavailable:
                self.topology.refresh()
                raise
        if any(isinstance(r, LOST) for r in replies):
            self.topology.refresh()
        return replies

    async def nodes_of(self, commands: dict[int, Command]) -> dict[int, Any]:
        """The master of each command's (first) key."""
        cluster = self.topology.cluster
        await guard(cluster.initialize())
        return {i: cluster.get_node_from_key(_key_of(c)) for i, c in commands.items()}

    async def load(self, script: str) -> None:
        """Load `script` into every master."""
        async with self.topology.pipeline_slot():  # a connection on every master
            await guard(self.topology.cluster.script_load(script))

    async def ping(self) -> bool:
        """True when every master answers; StoreError otherwise."""
        async with self.topology.pipeline_slot():
            return bool(await guard(self.topology.cluster.ping()))

    async def compact_record_limit(self) -> int | None:
        """The lowest `hash-max-listpack-value` of the masters, or None."""
        try:
            async with self.topology.pipeline_slot():
                replies: dict[Any, Any] = await guard(
                    self.topology.cluster.config_get(
                        COMPACT_LIMIT, target_nodes=RedisCluster.PRIMARIES
                    )
                )
            if COMPACT_LIMIT in replies:  # one master: its reply itself
                return int(replies[COMPACT_LIMIT])
            return min(int(r[COMPACT_LIMIT]) for r in replies.values())
        except (StoreError, rexc.RedisError, LookupError, ValueError):
            return None

    async def close(self) -> None:
        """Close every connection and the subscriptions."""
        await self.wakeups.close()
        await self.topology.close()
        await self.topology.cluster.aclose()


def _key_of(command: Command) -> str:
    """The (first) key a command names: an EVALSHA's after its script and key count."""
    return str(command[3] if command[0] == "EVALSHA" else command[1])
