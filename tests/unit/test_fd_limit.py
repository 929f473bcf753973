"""The services' open-file limit: raised to the hard limit at start, with a warning when
that is below what their configured bounds need (each case in a child process, whose
limits the test sets)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

CHILD = """
import json, logging, resource, sys
from im_common.fd_limit import raise_fd_limit
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
limit = raise_fd_limit(int(sys.argv[1]), "the test's bounds")
print(json.dumps([*limit, resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))
"""


def _run(soft: int, hard: int, needed: int) -> tuple[list[int], str]:
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(needed)],
        preexec_fn=limits,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout), done.stderr


@pytest.fixture
def hard() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip(f"needs a finite hard limit of 512 or more, not {hard}")
    return int(hard)


def test_the_soft_limit_is_raised_to_the_hard_one(hard: int) -> None:
    (before, now, needed, seen), log = _run(256, hard, 300)
    assert (before, now, needed, seen) == (256, hard, 300, hard)
    assert f"INFO open-file limit {hard} (was 256; 300 needed" in log


def test_a_hard_limit_below_the_bounds_is_logged_as_a_warning(hard: int) -> None:
    (before, now, _, seen), log = _run(256, 400, 500)
    assert (before, now, seen) == (256, 400, 400)
    assert "WARNING open-file limit 400 (hard limit 400) is below the 500 that the test's" in log
    (_, now, _, _), log = _run(256, 400, 400)  # exactly enough: no warning
    assert now == 400
    assert "WARNING" not in log
