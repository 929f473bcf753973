"""The README tells the truth: its settings table and its curl examples."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from devtools.procs import Process, http_service, redis_server, rpc_service
from http_svc.config import Settings as HttpSettings
from im_common.settings import describe
from rpc_svc.config import Settings as RpcSettings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
TIME_KEYS = {"send_time", "next_cursor"}
A_TIME = 10**15  # any µs timestamp after 2001


def test_the_settings_table_names_every_variable_and_its_default() -> None:
    # a default is `value`, or *(empty)* for an empty string
    cells = re.findall(
        r"^\| `(IM_\w+)` \| `--[\w-]+` \| [^|]+ \| (`[^`]*`|\*\(empty\)\*) \|", README, re.M
    )
    rows = {env: cell.strip("`") if cell.startswith("`") else "" for env, cell in cells}
    for cls in (HttpSettings, RpcSettings):
        for env, _flag, default, _help in describe(cls):
            shown = ",".join(default) if isinstance(default, tuple) else str(default)
            assert env in rows, f"{env} is missing from the README's settings table"
            assert rows[env].lower() == shown.lower(), f"{env}: README says {rows[env]}"


def _examples() -> list[tuple[str, str]]:
    block = README.split("```console\n", 1)[1].split("```", 1)[0]
    pairs = re.findall(r"^\$ (curl .*)\n(.*)$", block, re.M)
    assert len(pairs) >= 8
    return pairs


def _same(expected: Any, actual: Any, key: str = "") -> bool:
    """Equal, except that a µs timestamp in the README matches any timestamp."""
    if key in TIME_KEYS and isinstance(expected, int) and expected > A_TIME:
        return isinstance(actual, int) and actual > A_TIME
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(_same(v, actual[k], k) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_same(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


@pytest.fixture
def fresh_stack(workdir: Path) -> Iterator[int]:
    procs: list[Process] = [redis_server(workdir / "redis").start()]
    procs.append(rpc_service(workdir, f"redis://127.0.0.1:{procs[0].port}/0").start())
    procs.append(http_service(workdir, [procs[1].port]).start())
    yield procs[2].port
    for proc in reversed(procs):
        proc.stop()


@pytest.mark.e2e
def test_the_curl_examples_answer_as_printed(fresh_stack: int) -> None:
    curl = shutil.which("curl")
    assert curl, "curl is not installed: run scripts/bootstrap"
    answers: list[Any] = []
    for command, printed in _examples():
        command = command.replace("localhost:8080", f"127.0.0.1:{fresh_stack}")
        out = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, check=True, timeout=10
        ).stdout
        answer = orjson.loads(out)
        assert _same(orjson.loads(printed), answer), (
            f"{command}\n  printed: {printed}\n  got: {out}"
        )
        answers.append(answer)
    # the two sends with the same Idempotency-Key answered alike
    assert answers[3] == answers[4]
