"""A rolling upgrade of im-rpc, with the older release really running: the im-rpc of the
commit before version 2 sync tokens (which refuses them) beside this tree's, on one Redis,
each behind a gateway of that older release (im-rpc is upgraded first, the gateways after).
With IM_SYNC_TOKEN_VERSION=1 a user's sync goes back and forth between the two and gets
every message once; with the default, the older one refuses the token this tree made (what
the setting is for)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from devtools.procs import Process, rpc_service
from perf.lib.stack import ROOT, base_gateway, base_rpc, worktree
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


class Older(NamedTuple):
    """The older release: its checkout and its im-rpc, started."""

    checkout: Path
    rpc: Process


@pytest.fixture
def older(redis_proc: Process, tmp_path: Path) -> Iterator[Older]:
    """BEFORE_V2 checked out, and its im-rpc started on the test's database."""
    if not _in_this_clone(BEFORE_V2):
        pytest.skip(f"this clone does not hold {BEFORE_V2} (a shallow clone)")
    with ExitStack() as stack:
        checkout = worktree(stack, BEFORE_V2)
        proc, module = base_rpc(tmp_path, redis_url(redis_proc, DB), checkout, {})
        assert module.startswith(str(checkout))  # (the checkout's rpc_svc, not this tree's)
        yield Older(checkout, proc.start())
        proc.stop()


@contextmanager
def _beside(
    redis_proc: Process, tmp_path: Path, older: Older, **settings: str
) -> Iterator[tuple[Process, Process]]:
    """This tree's im-rpc beside the older one, and a gateway of the older release in front
    of each: (the old im-rpc's gateway, the new one's); all stopped on the way out."""
    with ExitStack() as procs:
        new_rpc = rpc_service(tmp_path, redis_url(redis_proc, DB), None, **settings).start()
        procs.callback(new_rpc.stop)
        gateways = []
        for rpc in (older.rpc, new_rpc):
            gateway, module = base_gateway(tmp_path, rpc.port, older.checkout)
            assert module.startswith(str(older.checkout))
            gateways.append(gateway.start())
            procs.callback(gateway.stop)
        yield gateways[0], gateways[1]


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
    redis_proc: Process, tmp_path: Path, older: Older
) -> None:
    with _beside(redis_proc, tmp_path, older, IM_SYNC_TOKEN_VERSION="1") as (old, new):
        first = _sync(new, "ann")  # (the feed made by the new one)
        assert first.status_code == 200, first.text
        token = first.json()["next"]
        for i, (sender_side, reader) in enumerate([(new, old), (old, new), (new, old)]):
            _send(sender_side, "ann:bob", "bob", f"m{i}")
            answer = _sync(reader, "ann", token)
            assert _texts(answer) == [f"m{i}"], (i, answer.text)
            token = answer.json()["next"]
        assert _texts(_sync(new, "ann", token)) == []  # (each once)


def test_the_old_im_rpc_refuses_the_version_2_tokens_the_new_one_makes_by_default(
    redis_proc: Process, tmp_path: Path, older: Older
) -> None:
    with _beside(redis_proc, tmp_path, older) as (old, new):
        token = _sync(new, "cat").json()["next"]
        _send(new, "cat:dan", "dan", "lost to the old one")
        refused = _sync(old, "cat", token)
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_since")
        assert _texts(_sync(new, "cat", token)) == ["lost to the old one"]
