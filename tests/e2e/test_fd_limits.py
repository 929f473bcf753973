"""im-rpc and im-http raise their open-file limit at start and log it; a gateway whose
hard limit is below its configured bounds says so (real processes, started under
`prlimit` with a low soft limit)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from devtools.procs import Process, http_service, rpc_service
from tests.conftest import redis_url

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit")


def _limited(proc: Process, soft: int, hard: int) -> Process:
    proc.argv = ["prlimit", f"--nofile={soft}:{hard}", *proc.argv]
    return proc


def _open_files(pid: int) -> tuple[int, int]:
    line = next(
        row for row in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in row
    )
    soft, hard = re.findall(r"\d+", line)[:2]
    return int(soft), int(hard)


def _records(log: Path) -> list[dict[str, object]]:
    return [json.loads(row) for row in log.read_text().splitlines() if row.startswith("{")]


def test_im_rpc_raises_its_limit_and_logs_it(workdir: Path, redis_proc: Process) -> None:
    rpc = _limited(rpc_service(workdir, redis_url(redis_proc)), 256, 4096).start()
    try:
        assert rpc.proc is not None
        assert _open_files(rpc.proc.pid) == (4096, 4096)
        (record,) = [r for r in _records(rpc.log) if r.get("logger") == "im.limits"]
        assert record["level"] == "INFO"
        assert "open-file limit 4096 (was 256; 1088 needed" in str(record["msg"])
    finally:
        rpc.stop()


def test_a_gateway_below_its_bounds_warns(workdir: Path) -> None:
    # 10,000 long polls + 256 requests + a backlog of 2,048 + 256 do not fit in 4,096
    gateway = _limited(http_service(workdir, [1]), 256, 4096).start()
    try:
        assert gateway.proc is not None
        assert _open_files(gateway.proc.pid) == (4096, 4096)
        (record,) = [r for r in _records(gateway.log) if r.get("logger") == "im.limits"]
        assert record["level"] == "WARNING"
        assert "open-file limit 4096 (hard limit 4096) is below the 12560" in str(record["msg"])
    finally:
        gateway.stop()
