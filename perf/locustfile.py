"""Locust: a realistic mix of chat users (run headless by perf.run, never imported by tests).

Each user owns one chat with a partner and, at random:
  - sends a message (text unique in the run),
  - pages back through the chat's history (reverse, following next_cursor),
  - polls forward from its cursor with next_cursor, checking that it sees every
    message exactly once and in order (a failure is reported to locust),
  - follows its sync from a token taken when it starts, checking that no event comes twice
    and that each chat's messages come in order.
Acknowledged sends go to the file in IM_PERF_ACKS for the audit. With IM_PERF_TOKENS (a file
of perf/tokens.py) each user sends its own bearer token (authentication on).
"""

from __future__ import annotations

import itertools
import os
import random
from typing import Any

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

PREFIX = os.environ.get("IM_PERF_PREFIX", "loc")
CHATS = int(os.environ.get("IM_PERF_CHATS", "100"))
_ids = itertools.count()
_acks: list[str] = []


def _read_tokens(path: str | None) -> dict[str, str]:
    """user -> token from a perf/tokens.py file (read here: this process is gevent-patched,
    and the project's packages are not for it)."""
    if not path:
        return {}
    with open(path) as lines:
        return dict(line.rstrip("\n").split(" ", 1) for line in lines if line.strip())


_TOKENS = _read_tokens(os.environ.get("IM_PERF_TOKENS"))


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _write_acks(environment: Any, **_: Any) -> None:
    path = os.environ.get("IM_PERF_ACKS")
    if path:
        with open(path, "a") as out:
            out.writelines(f"{line}\n" for line in _acks)


class ChatUser(FastHttpUser):
    """One member of one chat."""

    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        n = random.randrange(CHATS)
        self.me, self.partner = f"{PREFIX}a{n}", f"{PREFIX}b{n}"
        self.chat = f"{self.me}:{self.partner}"
        self.cursor = 0
        self.last_seen = -1
        token = _TOKENS.get(self.me)
        if token is not None:
            self.client.auth_header = f"Bearer {token}"
        self.since = ""
        self.synced: set[tuple[str, int]] = set()
        self.last_synced: dict[str, int] = {}

    @task(3)
    def send(self) -> None:
        text = f"{PREFIX}-{os.getpid()}-{next(_ids)} " + "x" * 80
        body = {"chat": self.chat, "sender": self.me, "text": text}
        with self.client.post("/api/send", json=body, catch_response=True) as r:
            if r.status_code == 200:
                _acks.append(f"{r.json()['chat']} {r.json()['send_time']}")

    @task(2)
    def poll(self) -> None:
        with self.client.get(
            "/api/pull",
            params={"chat": self.chat, "cursor": self.cursor, "limit": 50},
            name="/api/pull (poll)",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                return
            page = r.json()
            times = [m["send_time"] for m in page["messages"]]
            if any(t <= self.last_seen for t in times) or times != sorted(set(times)):
                r.failure("poll saw a message twice or out of order")
            if times:
                self.last_seen = times[-1]
            self.cursor = page["next_cursor"]

    @task(1)
    def sync(self) -> None:
        with self.client.get(
            "/api/sync",
            params={"user": self.me, "since": self.since, "limit": 100},
            name="/api/sync",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                return
            page = r.json()
            for event in page["events"]:
                if event["type"] != "message":
                    continue
                chat, at = event["chat"], event["message"]["send_time"]
                if (chat, at) in self.synced or at <= self.last_synced.get(chat, 0):
                    r.failure("sync gave a message twice or out of order")
                self.synced.add((chat, at))
                self.last_synced[chat] = at
            self.since = page["next"]

    @task(1)
    def inbox(self) -> None:
        self.client.get("/api/chats", params={"user": self.me, "limit": 10}, name="/api/chats")

    @task(1)
    def history(self) -> None:
        cursor = 0
        for _ in range(3):
            r = self.client.get(
                "/api/pull",
                params={"chat": self.chat, "cursor": cursor, "limit": 20, "reverse": "true"},
                name="/api/pull (history)",
            )
            if r.status_code != 200 or not r.json()["has_more"]:
                return
            cursor = r.json()["next_cursor"]
