"""The stacks a benchmark measures: real processes on loopback, in a temp dir; and an older
commit's im-rpc (in a git worktree) for the A/B comparisons."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from devtools.procs import (
    Process,
    Trio,
    etcd_server,
    http_service,
    redis_server,
    rpc_service,
    start_trio,
)
from devtools.redis_cluster import RedisClusterNodes, start_redis_cluster
from im_common import fd_limit
from im_common.token_cli import add_key

ROOT = Path(__file__).resolve().parent.parent.parent


def waiting_trio(stack: ExitStack, waiters: int, prefix: str) -> Trio:
    """One redis-server (AOF everysec), im-rpc and gateway whose long-poll bounds admit
    `waiters` (and 1,000 more) from this one host, in a temp dir named `prefix`...; stopped
    when `stack` closes."""
    most = str(waiters + 1000)
    bounds = {
        "IM_HTTP_MAX_WAITING": most,
        "IM_HTTP_MAX_WAITING_PER_USER": most,  # every waiter comes from this one host
        "IM_RPC_MAX_WAITING": most,
        "IM_LOG_LEVEL": "WARNING",
    }
    work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
    trio = start_trio(work, fsync="everysec", rpc_settings=bounds, gateways=[bounds])
    stack.callback(trio.stop)
    return trio


def raise_fd_limit() -> None:
    """Lift this process's open-file limit to what the system allows, as the services do
    theirs (children inherit it)."""
    fd_limit.raise_fd_limit(0, "the load")


def comparison_args(
    prog: str,
    doc: str,
    argv: list[str] | None,
    seconds: float,
    rounds: int,
    more: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.Namespace:
    """The options of the interleaved comparisons (perf.topologies, perf.nginx, ...), and
    those `more` adds; also lifts the open-file limit for the load they run."""
    p = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc.split("\n")[0])
    if more is not None:
        more(p)
    p.add_argument("--seconds", type=float, default=seconds, help="length of each wrk run")
    p.add_argument("--rounds", type=int, default=rounds, help="interleaved rounds (median kept)")
    p.add_argument("--connections", type=int, default=64, help="wrk concurrency")
    p.add_argument("--out", type=Path, help="report directory (default perf/reports)")
    args = p.parse_args(argv)
    raise_fd_limit()
    return args


def start_owned(stack: ExitStack, proc: Process) -> Process:
    """Start `proc` and have `stack` stop it when it closes."""
    proc.start()
    stack.callback(proc.stop)
    return proc


def make_keys(work: Path) -> tuple[Path, Path]:
    """An ES256 key set in `work`, made by im-token: (private set, public set)."""
    private, public = work / "idp.jwks", work / "gateway.jwks"
    add_key(private, public, "ES256")
    return private, public


def auth_settings(work: Path, auth: bool) -> tuple[Path | None, dict[str, str], dict[str, str]]:
    """With `auth`: a key set made in `work` and the settings that turn authentication on,
    (the private set that mints tokens, the gateways' IM_* settings, im-rpc's: it requires
    the acting user); without: (None, {}, {})."""
    if not auth:
        return None, {}, {}
    signing, public = make_keys(work)
    return signing, {"IM_AUTH_JWKS_FILE": str(public)}, {"IM_RPC_REQUIRE_USER": "true"}


class LocalStack:
    """redis-server (AOF everysec), one im-rpc and a gateway; with `auth` the gateway
    verifies tokens of a key set made here (`signing` mints them) and im-rpc requires the
    acting user.

    Every process is stopped when `stack` closes.
    """

    def __init__(self, stack: ExitStack, *, auth: bool = False) -> None:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-perf-")))
        self.redis = start_owned(
            stack,
            redis_server(work / "redis", fsync="everysec"),
        )
        self.signing, gateway_env, rpc_env = auth_settings(work, auth)
        self.rpc = start_owned(
            stack, rpc_service(work, f"redis://127.0.0.1:{self.redis.port}/0", None, **rpc_env)
        )
        self.gateway = start_owned(stack, http_service(work, [self.rpc.port], None, **gateway_env))

    @property
    def url(self) -> str:
        """Base URL of the gateway."""
        return f"http://127.0.0.1:{self.gateway.port}"


class ScaledStack:
    """redis-server (AOF everysec), etcd, `rpcs` im-rpc and `gateways` im-http finding them
    through etcd (with `gateway_env`'s IM_* settings): the local cluster's topology without
    nginx. With `cluster` masters (0: one Redis) the store is a Redis Cluster of that many
    masters, a replica each, every node with AOF everysec. With `auth` the gateways verify
    tokens of a key set made here (`signing` mints them) and im-rpc requires the acting user.
    Stopped when `stack` closes."""

    def __init__(
        self,
        stack: ExitStack,
        prefix: str,
        rpcs: int = 2,
        gateways: int = 2,
        gateway_env: dict[str, str] | None = None,
        cluster: int = 0,
        auth: bool = False,
    ) -> None:
        self.work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
        self.cluster: RedisClusterNodes | None = None
        self.signing, auth_env, rpc_env = auth_settings(self.work, auth)
        if cluster:
            aof = ("--appendonly", "yes", "--appendfsync", "everysec")
            self.cluster = start_redis_cluster(self.work / "cluster", *aof, masters=cluster)
            stack.callback(self.cluster.stop)
            self.redis = self.cluster.nodes[0]
            rpc_env["IM_REDIS_CLUSTER"] = "1"
        else:
            self.redis = start_owned(stack, redis_server(self.work / "redis", fsync="everysec"))
        self.etcd = start_owned(stack, etcd_server(self.work))
        found = f"http://127.0.0.1:{self.etcd.port}"
        url = f"redis://127.0.0.1:{self.redis.port}/0"
        self.rpcs = [
            start_owned(stack, rpc_service(self.work, url, None, IM_ETCD_URL=found, **rpc_env))
            for _ in range(rpcs)
        ]
        time.sleep(1)  # the instances register before the gateways read etcd
        self.gateways = [
            start_owned(
                stack,
                http_service(
                    self.work, [], None, IM_ETCD_URL=found, **auth_env, **(gateway_env or {})
                ),
            )
            for _ in range(gateways)
        ]

    def redis_nodes(self) -> dict[str, Process]:
        """The store's processes by name: "redis-server", or each node of the cluster by its
        role now ("redis master 1", "redis replica 1", ...)."""
        if self.cluster is None:
            return {"redis-server": self.redis}
        masters = self.cluster.masters()
        replicas = [n for n in self.cluster.nodes if n not in masters]
        named = {f"redis master {i + 1}": n for i, n in enumerate(masters)}
        return named | {f"redis replica {i + 1}": n for i, n in enumerate(replicas)}


def worktree(stack: ExitStack, base: str) -> Path:
    """A checkout of `base` in a temp dir, removed when `stack` closes."""
    path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="im-ab-"))) / "base"
    git = ["git", "-C", str(ROOT)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), base], check=True)
    stack.callback(subprocess.run, [*git, "worktree", "remove", "--force", str(path)], check=False)
    return path


def _module_path(python: list[str], path: str, package: str) -> str:
    """Where `python` with PYTHONPATH `path` finds `package`."""
    code = f"import {package}; print({package}.__file__)"
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run([*python, "-c", code], env=env, capture_output=True, text=True)
    return done.stdout.strip()


def _of_base(proc: Process, package: str, base: Path) -> tuple[Process, str]:
    """`proc` made to run `package` of the checkout at `base`, and the module it runs;
    SystemExit when Python would not import that checkout's package."""
    proc.env = {**(proc.env or os.environ), "PYTHONPATH": str(base)}
    proc.argv = [sys.executable, "-P", "-m", package]  # -P: the worktree, not the cwd
    module = _module_path(proc.argv[:2], str(base), package)
    if not module.startswith(str(base)):
        raise SystemExit(f"A would not run the base commit's {package}, but {module}")
    return proc, module


def base_rpc(
    work: Path, redis_url: str, base: Path, settings: dict[str, str]
) -> tuple[Process, str]:
    """An im-rpc (not started) of the checkout at `base`, and the rpc_svc module it runs."""
    return _of_base(rpc_service(work, redis_url, None, **settings), "rpc_svc", base)


_SCRIPT_TEXT = """\
import sys
from rpc_svc.store import lua
if not lua.__file__.startswith(sys.argv[1]):
    sys.exit(f"the base's loader is not in the checkout: {lua.__file__}")
sys.stdout.write(lua.load(sys.argv[2]).text)
"""


def base_script(base: Path, name: str) -> str:
    """The Lua script `name` as the checkout at `base` runs it: made by that checkout's own
    loader (what it puts in front of a script's text changes with the commit). SystemExit
    when that loader cannot be run from the checkout."""
    env = {**os.environ, "PYTHONPATH": str(base)}
    argv = [sys.executable, "-P", "-c", _SCRIPT_TEXT, str(base), name]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the script {name} of {base}: {done.stderr.strip()[-500:]}")
    return done.stdout


def base_gateway(work: Path, rpc_port: int, base: Path) -> tuple[Process, str]:
    """A gateway (not started) of the checkout at `base` in front of the im-rpc at
    `rpc_port`, and the http_svc module it runs."""
    return _of_base(http_service(work, [rpc_port]), "http_svc", base)
