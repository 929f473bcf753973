"""The open-file limit of a service: raised at start to what the system allows, and
checked against what the service's configured bounds may hold open at once."""

from __future__ import annotations

import logging
import resource
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("im.limits")
NR_OPEN = Path("/proc/sys/fs/nr_open")  # the kernel's ceiling when the hard limit is unlimited


class FdLimit(NamedTuple):
    """The soft limit found at start, the one set, and what the bounds need."""

    before: int
    now: int
    needed: int


def _ceiling(hard: int) -> int:
    if hard != resource.RLIM_INFINITY:
        return hard
    try:
        return int(NR_OPEN.read_text())
    except (OSError, ValueError):
        return 1 << 20


def raise_fd_limit(needed: int, what: str) -> FdLimit:
    """Raise the soft RLIMIT_NOFILE to the hard one and log both; warn when the result is
    below `needed` (`what` names the settings that need them)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, _ceiling(hard))
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
            target = soft
    limit = FdLimit(soft, target, needed)
    if target < needed:
        log.warning(
            "open-file limit %d (hard limit %s) is below the %d that %s may hold open: "
            "connections past it fail with EMFILE; raise the hard limit (ulimit -Hn, "
            "systemd LimitNOFILE=, docker --ulimit nofile=)",
            target,
            "unlimited" if hard == resource.RLIM_INFINITY else hard,
            needed,
            what,
        )
    else:
        log.info("open-file limit %d (was %d; %d needed by %s)", target, soft, needed, what)
    return limit
