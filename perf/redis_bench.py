"""redis-benchmark for the Redis commands the store uses, pipelined and not."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from dataclasses import dataclass

from rpc_svc.store.keys import idempotency_key, inbox_key, messages_key, short_key, wake_channel
from rpc_svc.store.lua import SEND


@dataclass(frozen=True)
class RedisCeiling:
    """Commands per second redis-benchmark reached for one command."""

    command: str
    pipeline: int
    rps: float


def _commands(sha: str) -> dict[str, list[str]]:
    chat = "bench:mark"
    return {
        "EVALSHA send script": [
            "EVALSHA",
            sha,
            "5",
            messages_key(chat),
            short_key(chat),
            idempotency_key(chat),
            inbox_key("bench"),
            inbox_key("mark"),
            "0",
            "x" * 100,
            "",
            "86400000000",
            wake_channel(chat),
            chat,
            "32",  # IM_SHORT_CHAT_MESSAGES: past the 32nd message, the chat is a stream
        ],
        "XRANGE COUNT 11": ["XRANGE", messages_key(chat), "-", "+", "COUNT", "11"],
        "XRANGE COUNT 101": ["XRANGE", messages_key(chat), "-", "+", "COUNT", "101"],
    }


def redis_ceilings(port: int, requests: int = 100_000, clients: int = 50) -> list[RedisCeiling]:
    """Run redis-benchmark against 127.0.0.1:port (a Redis this run owns: it writes keys)."""
    bench, cli = shutil.which("redis-benchmark"), shutil.which("redis-cli")
    if bench is None or cli is None:
        raise SystemExit("redis-benchmark is not installed: run scripts/bootstrap (redis-tools)")
    sha = subprocess.run(
        [cli, "-p", str(port), "SCRIPT", "LOAD", SEND.text],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    results = []
    for name, command in _commands(sha).items():
        for pipeline in (1, 32):
            out = subprocess.run(
                [
                    bench,
                    "-p",
                    str(port),
                    "-n",
                    str(requests),
                    "-c",
                    str(clients),
                    "-P",
                    str(pipeline),
                    "--csv",
                    *command,
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            ).stdout
            rows = list(csv.DictReader(io.StringIO(out)))
            results.append(RedisCeiling(name, pipeline, float(rows[-1]["rps"])))
    return results
