"""The docs tell the truth: the settings table, and every `console` example of README.md
and docs/*.md, run in order against a fresh stack per document. Examples call
`localhost:8080` (`scripts/start`: authentication off) or `localhost:8000` (`scripts/start
--cluster`: on); here both are gateways of the same im-rpc and Redis, the second with
IM_AUTH_JWT_SECRET=DOC_SECRET, and `$ALICE_TOKEN` (any `$<NAME>_TOKEN`) holds a valid token
for alice (the user `<name>`)."""

from __future__ import annotations

import os
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
from im_common.token_cli import mint
from rpc_svc.config import Settings as RpcSettings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SETTINGS_DOC = ROOT / "docs" / "operations.md"
TIME_KEYS = {"send_time", "next_cursor", "read_until", "edited_at"}
TOKEN_KEYS = {"next"}  # a sync token: the docs print one, the stack answers another
A_TIME = 10**15  # any µs timestamp after 2001
DOC_SECRET = "the-docs-examples-secret-of-32-bytes-or-more"
TOKEN_VARIABLE = re.compile(r"\$([A-Z]+)_TOKEN\b")


def test_the_settings_table_names_every_variable_and_its_default() -> None:
    # a default is `value`, or *(empty)* for an empty string
    cells = re.findall(
        r"^\| `(IM_\w+)` \| `--[\w-]+` \| [^|]+ \| (`[^`]*`|\*\(empty\)\*) \|",
        SETTINGS_DOC.read_text(),
        re.M,
    )
    rows = {env: cell.strip("`") if cell.startswith("`") else "" for env, cell in cells}
    for cls in (HttpSettings, RpcSettings):
        for env, _flag, default, _help in describe(cls):
            shown = ",".join(default) if isinstance(default, tuple) else str(default)
            assert env in rows, f"{env} is missing from the settings table"
            assert rows[env].lower() == shown.lower(), f"{env}: the docs say {rows[env]}"


def examples(text: str) -> list[tuple[str, str]]:
    """Every `$ curl ...` line of the text's console blocks, with the line printed after it."""
    pairs = []
    for block in re.findall(r"^```console\n(.*?)^```", text, re.M | re.S):
        pairs += re.findall(r"^\$ (curl .*)\n(.*)$", block, re.M)
    return pairs


def test_the_docs_have_examples_and_the_readme_the_main_ones() -> None:
    assert len(examples((ROOT / "README.md").read_text())) >= 8
    assert len([d for d in DOCS if examples(d.read_text())]) >= 2


def matches(expected: Any, actual: Any, times: dict[Any, Any], key: str = "") -> bool:
    """Equal, except that a µs timestamp (or a sync token) printed in the docs stands for
    the one the stack answered: the same one wherever the docs print it again, and another
    one where they print another (`times` keeps the pairs)."""
    printed_time = key in TIME_KEYS and isinstance(expected, int) and expected > A_TIME
    printed_token = key in TOKEN_KEYS and isinstance(expected, str)
    if printed_time or printed_token:
        if printed_time and not (isinstance(actual, int) and actual > A_TIME):
            return False
        if printed_token and not (isinstance(actual, str) and actual):
            return False
        if expected not in times and actual in times.values():
            return False  # two printed where the stack answered one
        return bool(times.setdefault(expected, actual) == actual)
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(matches(v, actual[k], times, k) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a, times) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual)


def test_a_printed_time_stands_for_one_time_only() -> None:
    times: dict[Any, Any] = {}
    first = {"send_time": A_TIME + 1}
    assert matches(first, {"send_time": A_TIME + 50}, times)
    assert matches(first, {"send_time": A_TIME + 50}, times)
    assert not matches(first, {"send_time": A_TIME + 51}, times)  # same print, other time
    assert not matches({"send_time": A_TIME + 3}, {"send_time": A_TIME + 50}, times)
    assert not matches({"send_time": A_TIME + 2}, {"send_time": 7}, times)
    assert not matches({"text": "a"}, {"text": "b"}, times)


@pytest.fixture
def fresh_stack(workdir: Path) -> Iterator[tuple[int, int]]:
    """The ports of an open gateway and of one with authentication on."""
    procs: list[Process] = [redis_server(workdir / "redis").start()]
    procs.append(rpc_service(workdir, f"redis://127.0.0.1:{procs[0].port}/0").start())
    procs.append(http_service(workdir, [procs[1].port]).start())
    procs.append(http_service(workdir, [procs[1].port], IM_AUTH_JWT_SECRET=DOC_SECRET).start())
    yield procs[2].port, procs[3].port
    for proc in reversed(procs):
        proc.stop()


def _tokens(command: str) -> dict[str, str]:
    """The token variables `command` uses, each a valid token for its user."""
    return {
        f"{name}_TOKEN": mint(name.lower(), 600, secret=DOC_SECRET)
        for name in TOKEN_VARIABLE.findall(command)
    }


@pytest.mark.e2e
@pytest.mark.parametrize("doc", [d for d in DOCS if examples(d.read_text())], ids=lambda d: d.name)
def test_the_console_examples_answer_as_printed(fresh_stack: tuple[int, int], doc: Path) -> None:
    curl = shutil.which("curl")
    assert curl, "curl is not installed: run scripts/bootstrap"
    times: dict[Any, Any] = {}
    for command, printed in examples(doc.read_text()):
        for shown, got in times.items():  # a time printed earlier, given back in a command
            command = command.replace(str(shown), str(got))
        open_port, auth_port = fresh_stack
        command = command.replace("localhost:8080", f"127.0.0.1:{open_port}")
        command = command.replace("localhost:8000", f"127.0.0.1:{auth_port}")
        out = subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            env={**os.environ, **_tokens(command)},
        ).stdout
        assert matches(orjson.loads(printed), orjson.loads(out), times), (
            f"{doc.name}: {command}\n  printed: {printed}\n  got: {out}"
        )
