"""Where the time goes: flame graphs of each service under load, and the hot path in process.

    python -m perf.profile [--seconds 10] [--out perf/reports/profile]

For each of send and pull (wrk, 64 connections) it samples im-http and im-rpc with
py-spy and writes flame-<service>-<scenario>.svg plus a text table of the functions
with the most samples. Then it runs the RPC hot path in this process (batches of
sends and pulls through ChatService and the Batch codec, against a real Redis)
under pyinstrument and writes hotpath.txt and hotpath.html.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import sys
import threading
from contextlib import ExitStack
from pathlib import Path

import orjson

from perf.lib.stack import LocalStack, raise_fd_limit
from perf.report import REPORTS
from perf.wrk import run_wrk
from rpc_svc.edge.wire import decode_calls, encode_results
from rpc_svc.server import open_store
from rpc_svc.service.runner import ChatService

ROOT = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    """A progress line on stderr."""
    print(f"[profile] {message}", file=sys.stderr, flush=True)


def _py_spy() -> str:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(exe):
        raise SystemExit("py-spy is not installed: pip install -e '.[perf]'")
    return exe


def _record(pid: int, seconds: int, path: Path, fmt: str) -> None:
    subprocess.run(
        [
            _py_spy(),
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            "250",
            "-f",
            fmt,
            "-o",
            str(path),
            "--nonblocking",
        ],
        check=True,
        capture_output=True,
        timeout=seconds + 60,
    )


def top_functions(collapsed: Path, n: int = 15) -> list[str]:
    """The functions with the most samples of their own, from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        own[stack.split(";")[-1]] += int(count)
    return [f"{100 * c / total:5.1f}%  {frame}" for frame, c in own.most_common(n)]


def profile_services(stack: LocalStack, seconds: int, out: Path) -> list[str]:
    """Flame graphs and top-function tables of both services under send and pull load."""
    summary: list[str] = []
    services = {"im-http": stack.gateway, "im-rpc": stack.rpc}
    for scenario in ("send", "pull10"):
        load = threading.Thread(
            target=run_wrk,
            args=(stack.url, scenario, 64, 2 * seconds + 4),
            kwargs={"chats": 200, "prefix": "prof"},
        )
        load.start()
        for name, proc in services.items():
            assert proc.proc is not None
            log(f"{scenario}: sampling {name}")
            raw = out / f"{name}-{scenario}.collapsed"
            _record(proc.proc.pid, seconds // 2 or 1, raw, "raw")
            _record(
                proc.proc.pid, seconds // 2 or 1, out / f"flame-{name}-{scenario}.svg", "flamegraph"
            )
            summary += [f"{name}, {scenario} (own samples):", *top_functions(raw), ""]
        load.join()
    return summary


async def _hot_path(redis_url: str, batches: int) -> None:
    store = open_store(redis_url, max_connections=8, timeout_s=5, idempotency_ttl_s=60)
    service = ChatService(store, 4096)
    sends = orjson.dumps([["send", f"hp{i % 50}:q", "q", "x" * 100, ""] for i in range(32)])
    pulls = orjson.dumps([["pull", f"hp{i % 50}:q", 0, 10, False] for i in range(32)])
    for i in range(batches):
        calls = decode_calls(sends if i % 2 == 0 else pulls)
        encode_results(await service.run([c for c in calls if not isinstance(c, Exception)]))
    await store.close()


def profile_hot_path(redis_port: int, batches: int, out: Path) -> None:
    """pyinstrument over `batches` Batch RPC bodies of 32 calls, without the network hop."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    with profiler:
        asyncio.run(_hot_path(f"redis://127.0.0.1:{redis_port}/0", batches))
    (out / "hotpath.txt").write_text(profiler.output_text(unicode=False, color=False))
    (out / "hotpath.html").write_text(profiler.output_html())


def main(argv: list[str] | None = None) -> int:
    """Profile, write the files, print the top-function tables."""
    p = argparse.ArgumentParser(prog="python -m perf.profile", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=int, default=10, help="sampling time per service/scenario")
    p.add_argument("--batches", type=int, default=2000, help="batches for the in-process run")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    out = args.out or REPORTS / "profile"
    out.mkdir(parents=True, exist_ok=True)
    raise_fd_limit()
    with ExitStack() as stack:
        local = LocalStack(stack)
        summary = profile_services(local, args.seconds, out)
        log("pyinstrument: hot path in process")
        profile_hot_path(local.redis.port, args.batches, out)
    (out / "top-functions.txt").write_text("\n".join(summary))
    print("\n".join(summary))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
