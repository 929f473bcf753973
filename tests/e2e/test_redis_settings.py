"""im-rpc checks at start that Redis keeps short chats' hashes compact
(`hash-max-listpack-value`, docs/operations.md), and says so in its log."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from devtools.procs import start_trio

pytestmark = pytest.mark.e2e
RULES = (Path(__file__).resolve().parents[2] / "deploy" / "redis" / "im-user.acl").read_text()
CHECK = "hash-max-listpack-value"


def _rpc_log_after_a_send(workdir: Path, *redis_args: str, credentials: str = "") -> str:
    trio = start_trio(workdir, *redis_args, credentials=credentials)
    try:
        note = {"chat": "a:b", "sender": "a", "text": "x" * 300}
        assert httpx.post(f"{trio.url()}/api/send", json=note, timeout=10).status_code == 200
    finally:
        trio.stop()
    return trio.rpc.log.read_text()


def test_a_redis_set_as_the_project_sets_it_draws_no_word(workdir: Path) -> None:
    assert CHECK not in _rpc_log_after_a_send(workdir)


def test_a_redis_with_the_default_setting_draws_a_warning_naming_the_value(
    workdir: Path,
) -> None:
    log = _rpc_log_after_a_send(workdir, "--hash-max-listpack-value", "64")
    assert "hash-max-listpack-value is 64" in log
    assert "set it to 4224" in log  # IM_MAX_TEXT_BYTES (4,096) + 128
    assert "WARNING" in next(line for line in log.splitlines() if CHECK in line)


def test_a_redis_user_without_config_draws_a_note_that_it_could_not_check(
    workdir: Path,
) -> None:
    users = ["--user", "default", "off", "--user", "im", "on", ">pw", *RULES.split()]
    log = _rpc_log_after_a_send(workdir, *users, credentials="im:pw")
    assert "could not read Redis's hash-max-listpack-value" in log
