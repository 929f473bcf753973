"""A hypothesis state machine: the group model's random calls (rpc_svc groups, 1:1 chats,
reads; tests/integration/test_group_model.py) with every user following its sync from a token
taken first, in pages of random size, and tokens kept and replayed. Each user's events must
be the model's: every message of its chats while it is a member (its own included), each read
that moved its position, each join and leave, exactly once and in order within each chat; a
replayed token gives the same events again. On one Redis (small groups, and groups big from
their second member) and on the cluster."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from devtools.procs import Process
from devtools.redis_cluster import RedisClusterNodes
from im_common.calls import EditCall, ReadCall, RecallCall, SyncCall
from rpc_svc.domain.errors import IMError
from tests.conftest import make_cluster_store, make_store
from tests.integration.test_group_model import SETTINGS, GroupMachine

Event = tuple[Any, ...]


def _key(event: dict[str, Any]) -> Event:
    if event["type"] in ("message", "edit"):
        m = event["message"]
        return (event["type"], event["chat"], m["send_time"], m["sender"])
    if event["type"] == "read":
        return ("read", event["chat"], event["read_until"])
    if event["type"] == "recall":
        return ("recall", event["chat"], event["send_time"])
    return (event["type"], event["chat"])


def _by_chat(events: list[Event]) -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = {}
    for event in events:
        out.setdefault(event[1], []).append(event)
    return out


class SyncMachine(GroupMachine):
    """The group machine, every change also expected in its users' syncs."""

    def __init__(self) -> None:
        super().__init__()
        self.log: dict[str, list[Event]] = {u: [] for u in self.users}  # the model's
        self.seen: dict[str, list[Event]] = {u: [] for u in self.users}
        self.tokens: dict[str, str] = {}
        self.now: dict[tuple[str, int], tuple[str, bool]] = {}  # a message's text, recalled
        self.kept: dict[str, list[tuple[str, int]]] = {u: [] for u in self.users}

    @initialize()
    def start(self) -> None:
        for user in self.users:
            token = self._run(self.service.sync(SyncCall(user))).next
            self.tokens[user] = token
            self.kept[user].append((token, 0))

    def _members(self, chat: str) -> set[str]:
        group = self.model.groups.get(chat)
        return set(group.members) if group else set()

    @rule(g=st.integers(0, 1), u=st.integers(0, 3))
    def create(self, g: int, u: int) -> None:
        chat, user = self.groups[g], self.users[u]
        existed = chat in self.model.groups
        GroupMachine.create(self, g, u)
        if not existed:
            self.log[user].append(("joined", chat))

    @rule(g=st.integers(0, 1), u=st.integers(0, 3), m=st.integers(0, 3))
    def add(self, g: int, u: int, m: int) -> None:
        chat = self.groups[g]
        before = self._members(chat)
        GroupMachine.add(self, g, u, m)
        for member in self._members(chat) - before:
            self.log[member].append(("joined", chat))

    @rule(g=st.integers(0, 1), u=st.integers(0, 3), m=st.integers(0, 3))
    def remove(self, g: int, u: int, m: int) -> None:
        chat = self.groups[g]
        before = self._members(chat)
        GroupMachine.remove(self, g, u, m)
        for member in before - self._members(chat):
            self.log[member].append(("left", chat))

    def _logged(self, chat: str, members: set[str], count: int) -> None:
        for send_time, sender, text in self.model.messages.get(chat, [])[count:]:
            self.now[(chat, send_time)] = (text, False)
            for member in members:
                self.log[member].append(("message", chat, send_time, sender))

    def _pick(self, pick: int) -> tuple[str, int, str] | None:
        """A stored message: (chat, send time, sender)."""
        stored = [(c, t, s) for c, ms in sorted(self.model.messages.items()) for t, s, _ in ms]
        return stored[pick % len(stored)] if stored else None

    def _retext(self, chat: str, when: int, text: str) -> None:
        """The model's message at `when` shows `text` now (pulls compare texts)."""
        messages = self.model.messages[chat]
        i = next(i for i, (t, _, _) in enumerate(messages) if t == when)
        messages[i] = (when, messages[i][1], text)

    def _change_members(self, chat: str) -> set[str]:
        return self._members(chat) if chat.startswith("#") else set(chat.split(":"))

    @rule(pick=st.integers(0, 999))
    def edit(self, pick: int) -> None:
        found = self._pick(pick)
        if found is None:
            return
        chat, when, sender = found
        text = f"e{next(self.texts)}"
        answer = self._call(self.service.edit(EditCall(chat, sender, when, text)))
        if chat.startswith("#") and sender not in self._members(chat):
            self._expect_error(answer, "not_a_member")
            return
        if self.now[(chat, when)][1]:
            self._expect_error(answer, "recalled")
            return
        assert not isinstance(answer, IMError), answer
        self.now[(chat, when)] = (text, False)
        self._retext(chat, when, text)
        for member in self._change_members(chat):
            self.log[member].append(("edit", chat, when, sender))

    @rule(pick=st.integers(0, 999), by_owner=st.booleans())
    def recall(self, pick: int, by_owner: bool) -> None:
        found = self._pick(pick)
        if found is None:
            return
        chat, when, sender = found
        group = self.model.groups.get(chat)
        who = group.owner if by_owner and group else sender
        answer = self._call(self.service.recall(RecallCall(chat, who, when)))
        if group is not None and who not in group.members:
            self._expect_error(answer, "not_a_member")
            return
        assert not isinstance(answer, IMError), answer
        if self.now[(chat, when)][1]:
            return  # a recall of a recalled message changes nothing
        self.now[(chat, when)] = ("", True)
        self._retext(chat, when, "")
        for member in self._change_members(chat):
            self.log[member].append(("recall", chat, when))

    @rule(g=st.integers(0, 1), u=st.integers(0, 3))
    def send_to_group(self, g: int, u: int) -> None:
        chat = self.groups[g]
        count = len(self.model.messages.get(chat, []))
        GroupMachine.send_to_group(self, g, u)
        self._logged(chat, self._members(chat), count)

    @rule(a=st.integers(0, 3), first=st.booleans())
    def send_to_pair(self, a: int, first: bool) -> None:
        one, two = sorted([self.users[a], self.users[(a + 1) % 4]])
        chat = f"{one}:{two}"
        count = len(self.model.messages.get(chat, []))
        GroupMachine.send_to_pair(self, a, first)
        self._logged(chat, {one, two}, count)

    @rule(g=st.integers(0, 1), u=st.integers(0, 3), pick=st.integers(0, 50))
    def read_group(self, g: int, u: int, pick: int) -> None:
        chat, user = self.groups[g], self.users[u]
        group = self.model.groups.get(chat)
        before = group.read.get(user, 0) if group and user in group.members else None
        GroupMachine.read_group(self, g, u, pick)
        if before is not None and self.model.groups[chat].read[user] > before:
            self.log[user].append(("read", chat, self.model.groups[chat].read[user]))

    @rule(a=st.integers(0, 3), first=st.booleans(), pick=st.integers(0, 50))
    def read_pair(self, a: int, first: bool, pick: int) -> None:
        one, two = sorted([self.users[a], self.users[(a + 1) % 4]])
        chat, user = f"{one}:{two}", one if first else two
        times = [t for t, _, _ in self.model.messages.get(chat, [])]
        at = times[pick % len(times)] + pick % 2 if times else pick
        answer = self._run(self.service.mark_read(ReadCall(chat, user, at)))
        before = self.model.pair_read.get((user, chat), 0)
        now = max(before, self.model.last_at_or_before(chat, at))
        assert answer.read_until == now
        self.model.pair_read[(user, chat)] = now
        if now > before:
            self.log[user].append(("read", chat, now))

    def _follow(self, user: str, token: str, limit: int) -> tuple[list[Event], str]:
        events: list[Event] = []
        for _ in range(500):
            page = self._run(self.service.sync(SyncCall(user, token, limit)))
            assert not isinstance(page, IMError), page
            assert len(page.events) <= limit
            if page.has_more:
                assert len(page.events) == limit  # a page is full while more wait
            events += [_key(e) for e in page.events]
            for e in page.events:  # each message as it is when the sync answers
                if e["type"] in ("message", "edit"):
                    m = e["message"]
                    now = self.now[(e["chat"], m["send_time"])]
                    assert (m["text"], m.get("recalled", False)) == now, (e, now)
            token = page.next
            if not page.has_more:
                return events, token
        raise AssertionError("has_more never ended")

    @rule(u=st.integers(0, 3), limit=st.integers(1, 4))
    def sync(self, u: int, limit: int) -> None:
        user = self.users[u]
        got, self.tokens[user] = self._follow(user, self.tokens[user], limit)
        self.seen[user] += got
        self.kept[user].append((self.tokens[user], len(self.seen[user])))
        seen, log = self.seen[user], self.log[user]
        assert Counter(seen) == Counter(log), (user, seen, log)  # each once
        assert _by_chat(seen) == _by_chat(log), user  # in order within each chat

    @precondition(lambda self: any(len(k) > 1 for k in self.kept.values()))
    @rule(u=st.integers(0, 3), pick=st.integers(0, 99), limit=st.integers(1, 5))
    def replay(self, u: int, pick: int, limit: int) -> None:
        user = self.users[u]
        self.sync(u, 3)  # caught up: a replay's events are then exactly those seen since
        token, index = self.kept[user][pick % len(self.kept[user])]
        again, _ = self._follow(user, token, limit)
        assert again == self.seen[user][index:]


def test_syncs_follow_the_model_on_redis_small_groups(redis_proc: Process) -> None:
    class OnRedis(SyncMachine):
        make = staticmethod(lambda: make_store(redis_proc, short=3))

    OnRedis.TestCase.settings = SETTINGS
    OnRedis.TestCase().runTest()


def test_syncs_follow_the_model_on_redis_with_big_groups(redis_proc: Process) -> None:
    class OnRedisBig(SyncMachine):
        make = staticmethod(lambda: make_store(redis_proc, short=0))
        fanout_max = 1  # big from the second member: a sync finds their messages

    OnRedisBig.TestCase.settings = SETTINGS
    OnRedisBig.TestCase().runTest()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_syncs_follow_the_model_on_a_redis_cluster(redis_cluster: RedisClusterNodes) -> None:
    class OnCluster(SyncMachine):
        make = staticmethod(lambda: make_cluster_store(redis_cluster))
        fanout_max = 2  # small, then big at the third member

    OnCluster.TestCase.settings = settings(SETTINGS, max_examples=10)
    OnCluster.TestCase().runTest()
