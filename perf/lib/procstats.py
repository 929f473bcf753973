"""What a process has used: CPU seconds, resident memory, open files (from /proc), and the
machine's idle share."""

from __future__ import annotations

import os
from pathlib import Path

from devtools.procs import Process

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def pid_of(proc: Process) -> int:
    """The pid of a started process."""
    assert proc.proc is not None
    return proc.proc.pid


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User plus system CPU time process `pid` has used so far (with `children`: also that
    of its children it has reaped, as Redis's AOF rewrites)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks * _TICK_S


def rss_kb(pid: int) -> int:
    """Resident memory in kB of process `pid` and its children (nginx's workers); 0 once gone."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return total
    return total + sum(rss_kb(int(child)) for child in children)


def usage(proc: Process) -> tuple[float, int]:
    """(RSS in MB, open file descriptors) of a running process."""
    pid = pid_of(proc)
    return rss_kb(pid) / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def machine_jiffies() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values)
