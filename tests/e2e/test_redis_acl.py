"""The Redis user of compose (deploy/redis/im-user.acl): enough for the whole store, nothing
more; the default user is compose's admin (with a password), which the append-only file's
transactions are replayed as: a restart keeps what was acknowledged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from devtools.procs import Process, start_trio
from rpc_svc.store.keys import erasures_key

pytestmark = pytest.mark.e2e
RULES = (Path(__file__).resolve().parents[2] / "deploy" / "redis" / "im-user.acl").read_text()
PASSWORD = "test-password"
ADMIN = "admin-password"


@pytest.fixture
def stack(workdir: Path) -> Iterator[tuple[Process, str]]:
    """Redis with compose's users, im-rpc logging in as "im", a gateway: Redis and the URL."""
    admin = ["--user", "default", "on", f">{ADMIN}", "~*", "&*", "+@all"]
    users = [*admin, "--user", "im", "on", f">{PASSWORD}", *RULES.split()]
    trio = start_trio(workdir, *users, fsync="everysec", credentials=f"im:{PASSWORD}")
    yield trio.redis, trio.url()
    trio.stop()


def test_the_store_works_as_the_acl_user_and_nothing_else_does(
    stack: tuple[Process, str],
) -> None:
    store, url = stack
    with httpx.Client(base_url=url, timeout=10) as http:
        sent = http.post("/api/send", json={"chat": "a:b", "sender": "a", "text": "hi"})
        assert sent.status_code == 200, sent.text
        page = http.get("/api/pull", params={"chat": "a:b", "reverse": "true"}).json()
        assert [m["text"] for m in page["messages"]] == ["hi"]
        assert http.get("/readyz").status_code == 200
        # the inbox: its scripts read and write the users' sorted sets and hashes
        read = {"chat": "a:b", "user": "b", "send_time": sent.json()["send_time"]}
        assert http.post("/api/read", json=read).status_code == 200
        inbox = http.get("/api/chats", params={"user": "b"}).json()["chats"]
        assert [(c["chat"], c["unread"]) for c in inbox] == [("a:b", 0)]
        # long polling needs SPUBLISH (in the send script) and SSUBSCRIBE on im:{chat}:w
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            poll = pool.submit(http.get, "/api/pull", params={"chat": "c:d", "wait_ms": 5000})
            time.sleep(0.3)
            note = {"chat": "c:d", "sender": "c", "text": "x"}
            assert http.post("/api/send", json=note).is_success
            assert [m["text"] for m in poll.result().json()["messages"]] == ["x"]
            assert time.monotonic() - started < 2
        # edits and recalls: the changes set, and a recalled text erased from a stream
        for i in range(40):
            http.post("/api/send", json={"chat": "e:f", "sender": "e", "text": f"long {i}"})
        first = http.get("/api/pull", params={"chat": "e:f", "limit": 1}).json()["messages"][0]
        at = {"chat": "e:f", "send_time": first["send_time"]}
        edit = http.post("/api/edit", json={**at, "sender": "e", "text": "fixed"})
        assert edit.status_code == 200, edit.text
        assert http.post("/api/recall", json={**at, "user": "e"}).status_code == 200
        erased = time.monotonic() + 5
        with redis.Redis(port=store.port, username="im", password=PASSWORD) as checker:
            while checker.exists(erasures_key("e:f")):  # the eraser's scripts ran as "im"
                assert time.monotonic() < erased, "the recalled text was not erased"
                time.sleep(0.1)
        store.stop()
        store.start()  # an empty script cache: the store loads its script again (SCRIPT LOAD)
        deadline = time.monotonic() + 5
        again = {"chat": "a:b", "sender": "b", "text": "again"}
        while (r := http.post("/api/send", json=again)).status_code != 200:
            assert time.monotonic() < deadline, r.text
            time.sleep(0.1)
        # what was acknowledged came back from the append-only file (its transactions replay)
        page = http.get("/api/pull", params={"chat": "a:b"}).json()
        assert [m["text"] for m in page["messages"]] == ["hi", "again"]
    as_im = redis.Redis(port=store.port, username="im", password=PASSWORD)
    anonymous = redis.Redis(port=store.port)
    try:
        assert as_im.ping()
        for command in (("FLUSHALL",), ("KEYS", "*"), ("CONFIG", "GET", "*"), ("DEL", "im:x")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                as_im.execute_command(*command)  # type: ignore[no-untyped-call]
        with pytest.raises(redis.exceptions.NoPermissionError):
            as_im.xadd("not-ours", {"m": "x"})  # keys outside im:* are out of reach
        with pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()
    finally:
        as_im.close()
        anonymous.close()
