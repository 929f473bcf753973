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


def _limits_and_log(proc: Process) -> tuple[tuple[int, int], dict[str, object]]:
    """Start `proc` with open files limited to 256 (soft) and 4096 (hard): the limits it
    then runs with, and its one im.limits record; it is stopped after."""
    _limited(proc, 256, 4096).start()
    try:
        assert proc.proc is not None
        limits = _open_files(proc.proc.pid)
        (record,) = [r for r in _records(proc.log) if r.get("logger") == "im.limits"]
        return limits, record
    finally:
        proc.stop()


def test_im_rpc_raises_its_limit_and_logs_it(workdir: Path, redis_proc: Process) -> None:
    limits, record = _limits_and_log(rpc_service(workdir, redis_url(redis_proc)))
    assert limits == (4096, 4096)
    assert record["level"] == "INFO"
    assert "open-file limit 4096 (was 256; 1088 needed" in str(record["msg"])


def test_a_gateway_below_its_bounds_warns(workdir: Path) -> None:
    # 10,000 long polls + 256 requests + a backlog of 2,048 + 256 do not fit in 4,096
    limits, record = _limits_and_log(http_service(workdir, [1]))
    assert limits == (4096, 4096)
    assert record["level"] == "WARNING"
    assert "open-file limit 4096 (hard limit 4096) is below the 12560" in str(record["msg"])
