"""Real servers for tests and benchmarks: redis-server, im-rpc and im-http as child processes.

Each listens on a free port on 127.0.0.1 and logs to a file in the test's temp dir;
a failed start raises with the tail of that log.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


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
    ) -> None:
        self.name, self.argv, self.port, self.log = name, list(argv), port, log
        self.env = dict(env) if env is not None else None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> Process:
        """Start the process and wait until its port accepts connections."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

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


def redis_server(workdir: Path, port: int | None = None, *extra: str) -> Process:
    """A redis-server (not started) with its data and log in `workdir`."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed: run scripts/bootstrap")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    argv = [
        exe,
        "--bind",
        HOST,
        "--port",
        str(port),
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        *extra,
    ]
    return Process("redis-server", argv, port, workdir / "redis.log")


def rpc_service(workdir: Path, redis_url: str, port: int | None = None, **settings: str) -> Process:
    """An im-rpc process (not started) using `redis_url`; `settings` are extra IM_* vars."""
    port = port or free_port()
    env = _service_env({"IM_RPC_PORT": str(port), "IM_REDIS_URL": redis_url, **settings})
    return Process("im-rpc", [str(BIN / "im-rpc")], port, workdir / f"im-rpc-{port}.log", env)


def http_service(
    workdir: Path, rpc_ports: Sequence[int], port: int | None = None, **settings: str
) -> Process:
    """An im-http process (not started) calling im-rpc on `rpc_ports`."""
    port = port or free_port()
    addrs = ",".join(f"{HOST}:{p}" for p in rpc_ports)
    env = _service_env({"IM_HTTP_PORT": str(port), "IM_RPC_ADDRS": addrs, **settings})
    return Process("im-http", [str(BIN / "im-http")], port, workdir / f"im-http-{port}.log", env)
