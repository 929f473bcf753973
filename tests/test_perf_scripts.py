"""The perf scripts still run (tiny sizes; the real runs are not part of the suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_store_memory_prints_a_row_per_layout_and_shape() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "perf.store_memory", "--messages", "2000", "--chats", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [
        line.split()
        for line in done.stdout.splitlines()
        if line.split()[:1] in (["store"], ["zset-json"], ["stream-3f"])
    ]
    assert [(r[0], r[1]) for r in rows] == [
        (name, chats) for chats in ("1", "10") for name in ("store", "zset-json", "stream-3f")
    ]
    assert all(float(r[2]) > 0 for r in rows)
