"""The garbage collector tuned for a server that holds many waiting calls.

CPython starts a young collection every 700 net allocations (`gc.get_threshold()`: 700, 10,
10), and a full one every hundredth of those once the long-lived objects grew by a quarter.
A full collection walks every object: with 10,000 syncs waiting, each one's task, future,
stream and closures, about 0.44 s in im-rpc with every call stopped; and a message that
wakes thousands of them allocates enough to start one. perf.sync_waits (10,000 waiting
syncs, 300 sends/s) measured 10.3 of im-rpc's 36.6 s in the collector, 17 full collections,
and wake-up p99 0.6 to 2.7 s. With a young collection every IM_GC_THRESHOLD allocations
(default 50,000) and what the start made frozen out of the walks (`gc.freeze`), the same run
spent 0.5 s there and its p99 was 94 ms (perf/README.md, "Sync"). Reference cycles are still
collected: young ones at the next young collection, older ones at a (rarer) full one.
"""

from __future__ import annotations

import gc
from typing import Any

from im_common.settings import setting


def gc_threshold_setting() -> Any:
    """The IM_GC_THRESHOLD field of a service's settings (both services have one)."""
    return setting(
        "IM_GC_THRESHOLD",
        50_000,
        "allocations between young garbage collections, what the start made frozen "
        "(0: CPython's defaults, 700)",
        lo=0,
        hi=10_000_000,
    )


def tune_gc(threshold: int) -> None:
    """Once the server is up: keep the objects made so far out of the collector's walks
    and collect the young generation every `threshold` allocations (0: CPython's defaults,
    nothing frozen)."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(threshold, middle, old)
