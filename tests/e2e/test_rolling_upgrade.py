"""A rolling upgrade of im-rpc, with the older release really running: the im-rpc of the
commit before version 2 sync tokens (which refuses them) beside this tree's, on one Redis,
each behind its own gateway. With IM_SYNC_TOKEN_VERSION=1 a user's sync goes back and forth
between the two and gets every message once; with the default, the older one refuses the
token this tree made (what the setting is for)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.procs import Process, http_service, rpc_service
from perf.lib.stack import ROOT, base_rpc, worktree
from tests.conftest import redis_url

pytestmark = pytest.mark.e2e
# the last commit whose im-rpc knows only version 1 tokens (its child, 03118d2, made them 2)
BEFORE_V2 = "12a9dc16f8f8bb993d12ac65ed708883638d1bef"
DB = 12  # (a database of the session's Redis no other test uses)


def _in_this_clone(commit: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"], check=False
    )
    return done.returncode == 0


@pytest.fixture
def old_rpc(redis_proc: Process, tmp_path: Path) -> Iterator[Process]:
    """The im-rpc of BEFORE_V2 on the test's database, started."""
    if not _in_this_clone(BEFORE_V2):
        pytest.skip(f"this clone does not hold {BEFORE_V2} (a shallow clone)")
    with ExitStack() as stack:
        proc, module = base_rpc(tmp_path, redis_url(redis_proc, DB), worktree(stack, BEFORE_V2), {})
        assert "/im-ab-" in module  # (the checkout's rpc_svc, not this tree's)
        yield proc.start()
        proc.stop()


def _new_rpc(redis_proc: Process, tmp_path: Path, **settings: str) -> Process:
    return rpc_service(tmp_path, redis_url(redis_proc, DB), None, **settings).start()


def _sync(gateway: Process, user: str, since: str = "") -> httpx.Response:
    params = {"user": user, "since": since} if since else {"user": user}
    return httpx.get(f"http://127.0.0.1:{gateway.port}/api/sync", params=params, timeout=10)


def _send(gateway: Process, chat: str, sender: str, text: str) -> None:
    body = {"chat": chat, "sender": sender, "text": text}
    sent = httpx.post(f"http://127.0.0.1:{gateway.port}/api/send", json=body, timeout=10)
    assert sent.status_code == 200, sent.text


def _texts(answer: httpx.Response) -> list[Any]:
    assert answer.status_code == 200, answer.text
    return [e["message"]["text"] for e in answer.json()["events"]]


def test_tokens_of_version_1_go_back_and_forth_between_the_old_and_the_new_im_rpc(
    redis_proc: Process, tmp_path: Path, old_rpc: Process
) -> None:
    new_rpc = _new_rpc(redis_proc, tmp_path, IM_SYNC_TOKEN_VERSION="1")
    gateways = [http_service(tmp_path, [r.port]).start() for r in (old_rpc, new_rpc)]
    try:
        old, new = gateways
        first = _sync(new, "ann")  # (the feed made by the new one)
        assert first.status_code == 200, first.text
        token = first.json()["next"]
        for i, (sender_side, reader) in enumerate([(new, old), (old, new), (new, old)]):
            _send(sender_side, "ann:bob", "bob", f"m{i}")
            answer = _sync(reader, "ann", token)
            assert _texts(answer) == [f"m{i}"], (i, answer.text)
            token = answer.json()["next"]
        assert _texts(_sync(new, "ann", token)) == []  # (each once)
    finally:
        for proc in [*gateways, new_rpc]:
            proc.stop()


def test_the_old_im_rpc_refuses_the_version_2_tokens_the_new_one_makes_by_default(
    redis_proc: Process, tmp_path: Path, old_rpc: Process
) -> None:
    new_rpc = _new_rpc(redis_proc, tmp_path)
    gateways = [http_service(tmp_path, [r.port]).start() for r in (old_rpc, new_rpc)]
    try:
        old, new = gateways
        token = _sync(new, "cat").json()["next"]
        _send(new, "cat:dan", "dan", "lost to the old one")
        refused = _sync(old, "cat", token)
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_since")
        assert _texts(_sync(new, "cat", token)) == ["lost to the old one"]
    finally:
        for proc in [*gateways, new_rpc]:
            proc.stop()
