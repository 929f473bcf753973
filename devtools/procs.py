"""Real servers for tests and benchmarks: redis-server, etcd, im-rpc, im-http and nginx as
child processes.

Each listens on a free port on 127.0.0.1 and logs to a file in the test's temp dir;
a failed start raises with the tail of that log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devtools.binaries import system_exe
from devtools.nginx import nginx_argv, write_config

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def listening_socket() -> socket.socket:
    """A socket listening on a port of 127.0.0.1 the system chose, for a server started in
    this process: bound before the server starts, so no other process can take the port
    between its choice and its use (as it can a free_port's)."""
    sock = socket.socket()
    sock.bind((HOST, 0))
    sock.listen(100)
    return sock


def port_open(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


def _service_env(extra: Mapping[str, str]) -> dict[str, str]:
    # Only the variables a test sets reach the services, plus IM_UVLOOP (tox's nouvloop env).
    env = {k: v for k, v in os.environ.items() if not k.startswith("IM_") or k == "IM_UVLOOP"}
    env.update(extra)
    return env


class Process:
    """A child process that serves on `port` once started."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        log: Path,
        env: Mapping[str, str] | None = None,
        health_url: str | None = None,
    ) -> None:
        self.name, self.argv, self.port, self.log = name, list(argv), port, log
        self.env = dict(env) if env is not None else None
        self.health_url = health_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> Process:
        """Start the process; wait until its port accepts connections (and health_url is 200)."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port) or not self._healthy():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def _healthy(self) -> bool:
        if self.health_url is None:
            return True
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    def send_signal(self, sig: int) -> None:
        """Send `sig` to the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the process and wait for it; SIGKILL after `timeout`. Its exit code."""
        if self.proc is None:
            return None
        self.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the process's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


# short chats' hashes stay compact (a listpack) for texts up to 4,096 bytes: docs/store.md
COMPACT_HASHES = ("--hash-max-listpack-value", "4224")
# and the changes sets of edited messages: docs/operations.md
COMPACT_CHANGES = ("--zset-max-listpack-value", "4224")


def redis_argv(workdir: Path, port: int, *extra: str, fsync: str | None = None) -> list[str]:
    """The command line of a redis-server on 127.0.0.1:port with its data in `workdir`:
    an append-only file fsynced `fsync` ("everysec", "always", "no": left to the OS), or no
    persistence."""
    workdir.mkdir(parents=True, exist_ok=True)
    return [
        system_exe("redis-server", "redis-server"),
        "--bind",
        HOST,
        "--port",
        str(port),
        "--dir",
        str(workdir),
        "--save",
        "",
        *(["--appendonly", "yes", "--appendfsync", fsync] if fsync else ["--appendonly", "no"]),
        *COMPACT_HASHES,
        *COMPACT_CHANGES,
        "--daemonize",
        "no",
        *extra,
    ]


def etcd_argv(workdir: Path, port: int, peer_port: int) -> list[str]:
    """The command line of a single-member etcd on 127.0.0.1:port, data in `workdir`/etcd."""
    workdir.mkdir(parents=True, exist_ok=True)
    peer = f"http://{HOST}:{peer_port}"
    client = f"http://{HOST}:{port}"
    return [
        system_exe("etcd", "etcd-server"),
        "--name",
        "im",
        "--data-dir",
        str(workdir / "etcd"),
        "--listen-client-urls",
        client,
        "--advertise-client-urls",
        client,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        f"im={peer}",
        "--logger",
        "zap",
        "--log-outputs",
        "stderr",
        "--log-level",
        "warn",
    ]


def redis_server(
    workdir: Path, port: int | None = None, *extra: str, fsync: str | None = None
) -> Process:
    """A redis-server (not started) with its data and log in `workdir` (AOF with `fsync`)."""
    port = port or free_port()
    argv = redis_argv(workdir, port, *extra, fsync=fsync)
    return Process("redis-server", argv, port, workdir / "redis.log")


def etcd_server(workdir: Path, port: int | None = None) -> Process:
    """A single-member etcd (not started) with its data in `workdir`/etcd (kept on restart)."""
    port = port or free_port()
    argv = etcd_argv(workdir, port, free_port())
    health = f"http://{HOST}:{port}/health"
    return Process("etcd", argv, port, workdir / f"etcd-{port}.log", health_url=health)


def nginx_server(
    workdir: Path,
    http_ports: Sequence[int],
    port: int | None = None,
    max_body: int = 65_536,
    client_timeout: str = "10s",
    rate_limit: str = "",
    read_timeout: str = "40s",
) -> Process:
    """An nginx (not started) on `port` in front of the gateways on `http_ports`."""
    port = port or free_port()
    directory = workdir / f"nginx-{port}"
    gateways = [f"{HOST}:{p}" for p in http_ports]
    write_config(directory, port, gateways, max_body, client_timeout, rate_limit, read_timeout)
    argv = nginx_argv(directory, "-g", "daemon off;")
    return Process("nginx", argv, port, directory / "stdout.log")


def rpc_service(workdir: Path, redis_url: str, port: int | None = None, **settings: str) -> Process:
    """An im-rpc process (not started) using `redis_url`; `settings` are extra IM_* vars."""
    port = port or free_port()
    env = _service_env({"IM_RPC_PORT": str(port), "IM_REDIS_URL": redis_url, **settings})
    return Process("im-rpc", [str(BIN / "im-rpc")], port, workdir / f"im-rpc-{port}.log", env)


def http_service(
    workdir: Path, rpc_ports: Sequence[int], port: int | None = None, **settings: str
) -> Process:
    """An im-http process (not started) calling im-rpc on `rpc_ports` (none: IM_ETCD_URL)."""
    port = port or free_port()
    addrs = {"IM_RPC_ADDRS": ",".join(f"{HOST}:{p}" for p in rpc_ports)} if rpc_ports else {}
    env = _service_env({"IM_HTTP_PORT": str(port), **addrs, **settings})
    return Process("im-http", [str(BIN / "im-http")], port, workdir / f"im-http-{port}.log", env)


@dataclass
class Trio:
    """A redis-server, an im-rpc storing in it and gateways calling that im-rpc, started;
    `stop` stops them gateways first. (Tests that break things own one of these.)"""

    workdir: Path
    redis: Process
    rpc: Process
    gateways: list[Process] = field(default_factory=list)

    def add_gateway(self, **settings: str) -> Process:
        """Start one more gateway on the im-rpc; `settings` are IM_* variables."""
        gateway = http_service(self.workdir, [self.rpc.port], None, **settings).start()
        self.gateways.append(gateway)
        return gateway

    def url(self, i: int = 0) -> str:
        """Base URL of gateway `i`."""
        return f"http://{HOST}:{self.gateways[i].port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop every process, gateways first."""
        for proc in (*reversed(self.gateways), self.rpc, self.redis):
            proc.stop(sig)


def start_trio(
    workdir: Path,
    *redis_args: str,
    fsync: str | None = None,
    credentials: str = "",
    rpc_settings: Mapping[str, str] | None = None,
    gateways: Sequence[Mapping[str, str]] = ({},),
) -> Trio:
    """Start a Trio: redis-server (`redis_args`, AOF with `fsync`), im-rpc logging in with
    `credentials` ("user:password", if any) and one gateway per entry of `gateways`."""
    redis = redis_server(workdir / "redis", None, *redis_args, fsync=fsync).start()
    auth = f"{credentials}@" if credentials else ""
    url = f"redis://{auth}{HOST}:{redis.port}/0"
    rpc = rpc_service(workdir, url, None, **(rpc_settings or {})).start()
    trio = Trio(workdir, redis, rpc)
    for settings in gateways:
        trio.add_gateway(**settings)
    return trio
