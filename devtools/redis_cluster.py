"""A real Redis Cluster on loopback for tests and benchmarks: masters with a replica each,
made with `redis-cli --cluster create`, one redis-server process per node."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import redis

from devtools.binaries import system_exe
from devtools.procs import HOST, Process, free_port, redis_server


@dataclass
class RedisClusterNodes:
    """The started nodes of a cluster; `stop` stops them all."""

    nodes: list[Process]
    admin_password: str = ""

    @property
    def url(self) -> str:
        """A seed node's URL, as IM_REDIS_URL takes it with IM_REDIS_CLUSTER=1."""
        return f"redis://{HOST}:{self.nodes[0].port}/0"

    def masters(self) -> list[Process]:
        """The nodes that are masters now (a failover changes which)."""
        return [
            n
            for n in self.nodes
            if n.running and _info(self.admin(n), "replication").get("role") == "master"
        ]

    def admin(self, node: Process) -> redis.Redis:
        """A client of `node` as its default (admin) user."""
        return redis.Redis(port=node.port, password=self.admin_password or None, socket_timeout=1)

    def node_of(self, key: str) -> Process:
        """The master that serves `key`'s slot now."""
        for node in self.masters():
            with self.admin(node) as client:
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                owners = client.execute_command("CLUSTER", "SLOTS")
            for start, end, master, *_ in owners:
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == int(master[1]))
        raise RuntimeError(f"no master serves {key!r}")

    def flush(self) -> None:
        """Empty every master (their replicas follow)."""
        for node in self.masters():
            with self.admin(node) as client:
                client.flushall()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node sees the cluster as ok with all slots served, and
        every running replica is in sync with its master."""
        deadline = time.monotonic() + timeout
        while not all(_ok(self.admin(n)) for n in self.nodes if n.running):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not become ok:\n" + self._logs())
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop(sig)

    def _logs(self) -> str:
        return "\n".join(f"{n.port}: {n.log_tail(5)}" for n in self.nodes)


def _info(client: redis.Redis, section: str) -> dict[str, str]:
    try:
        with client:
            if section == "cluster":
                raw = client.execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
                return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            return {k: str(v) for k, v in client.info(section).items()}
    except redis.RedisError:
        return {}


def _ok(client: redis.Redis) -> bool:
    """The cluster is ok with all slots served, as this node sees it, and the node, when a
    replica, is in sync with its master."""
    info = _info(client, "cluster")
    replication = _info(client, "replication")
    return (
        info.get("cluster_state") == "ok"
        and info.get("cluster_slots_ok") == "16384"
        and (replication.get("role") == "master" or replication.get("master_link_status") == "up")
    )


def start_redis_cluster(
    workdir: Path,
    *extra: str,
    masters: int = 3,
    replicas: int = 1,
    node_timeout_ms: int = 1000,
    admin_password: str = "",
) -> RedisClusterNodes:
    """Start masters*(1+replicas) redis-servers in cluster mode (with `extra` arguments) and
    join them into a cluster (`redis-cli --cluster create`); a master is failed over after
    `node_timeout_ms`. With `admin_password` the default user has it (replicas and
    redis-cli log in with it)."""
    auth = ["--masterauth", admin_password] if admin_password else []

    def node(i: int) -> Process:
        return redis_server(
            workdir / f"node{i}",
            None,
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(node_timeout_ms),
            "--cluster-replica-validity-factor",
            "0",  # a replica takes over however long it was cut off
            "--repl-diskless-sync-delay",
            "0",  # a replica (back after a failover) syncs at once, not after 5 s
            "--cluster-port",
            str(free_port()),  # the bus port; port + 10000 could be taken (or > 65535)
            *auth,
            *extra,
        )

    cluster = RedisClusterNodes([], admin_password)
    try:
        for i in range(masters * (1 + replicas)):
            cluster.nodes.append(_start(partial(node, i)))
        create = [
            system_exe("redis-cli", "redis-tools"),
            "--cluster",
            "create",
            *(f"{HOST}:{n.port}" for n in cluster.nodes),
            "--cluster-replicas",
            str(replicas),
            "--cluster-yes",
            *(["-a", admin_password, "--no-auth-warning"] if admin_password else []),
        ]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}")
        cluster.wait_ok()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start(make: Callable[[], Process], attempts: int = 3) -> Process:
    """Start the node `make` gives, with new ports when one was taken meanwhile (a free
    port may be handed to a client's connection before the node binds it)."""
    for attempt in range(attempts):
        try:
            return make().start()
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
