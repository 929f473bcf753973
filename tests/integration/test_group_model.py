"""A hypothesis state machine drives random sequences of group and chat calls (create, add,
remove, send, read, pull, chats, a user's groups) through the chat service on a real Redis
(and on the 3-master test cluster), and checks every answer against a small in-memory model
of the contract: membership rules and errors, history, paging, read positions and exact
unread counts in the merged inbox."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from devtools.procs import Process
from devtools.redis_cluster import RedisClusterNodes
from im_common.calls import ChatsCall, GroupCall, PullCall, ReadCall, SendCall
from rpc_svc.domain.errors import IMError
from rpc_svc.domain.values import Group, Sent, UserGroupList
from rpc_svc.service.runner import ChatService
from rpc_svc.store.base import RedisStore
from tests.conftest import make_cluster_store, make_store

T = TypeVar("T")
MAX_MEMBERS = 3
_runs = itertools.count()


@dataclass
class ModelGroup:
    """A group as the contract says it behaves."""

    owner: str
    members: set[str]
    read: dict[str, int] = field(default_factory=dict)  # member -> read position (µs)


@dataclass
class Model:
    """Every message, by chat, and the groups."""

    groups: dict[str, ModelGroup] = field(default_factory=dict)
    messages: dict[str, list[tuple[int, str, str]]] = field(default_factory=dict)
    pair_read: dict[tuple[str, str], int] = field(default_factory=dict)  # (user, chat)

    def last_at_or_before(self, chat: str, at: int) -> int:
        return max((t for t, _, _ in self.messages.get(chat, []) if t <= at), default=0)

    def newest(self, chat: str) -> int:
        return max((t for t, _, _ in self.messages.get(chat, [])), default=0)


class GroupMachine(RuleBasedStateMachine):
    """Random calls; each answer compared with the model's."""

    make: Callable[[], RedisStore]
    fanout_max = 100  # groups of up to this many members are small (inbox writes on send)

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = self._run(self._open())
        self.service = ChatService(
            self.store, 4096, max_group_members=MAX_MEMBERS, group_fanout_max=self.fanout_max
        )
        self.model = Model()
        run = next(_runs)
        self.users = [f"r{run}u{i}" for i in range(4)]
        self.groups = [f"#r{run}g{i}" for i in range(2)]
        self.texts = itertools.count()

    async def _open(self) -> RedisStore:
        return type(self).make()

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def _call(self, work: Coroutine[Any, Any, T]) -> T | IMError:
        try:
            return self._run(work)
        except IMError as exc:
            return exc

    def teardown(self) -> None:
        self._run(self.store.close())
        self.loop.close()

    def _expect_error(self, answer: object, code: str) -> None:
        assert isinstance(answer, IMError), answer
        assert answer.code == code, (answer.code, answer.message)

    @initialize()
    def start(self) -> None:
        pass

    @rule(g=st.integers(0, 1), u=st.integers(0, 3))
    def create(self, g: int, u: int) -> None:
        chat, user = self.groups[g], self.users[u]
        answer = self._call(self.service.group(GroupCall("create", chat, user)))
        if chat in self.model.groups:
            self._expect_error(answer, "group_exists")
            return
        assert isinstance(answer, Group), answer
        assert (answer.owner, answer.members) == (user, [user])
        self.model.groups[chat] = ModelGroup(user, {user})

    def _refused(self, chat: str, user: str, answer: object) -> bool:
        group = self.model.groups.get(chat)
        if group is None:
            self._expect_error(answer, "unknown_group")
            return True
        if user not in group.members:
            self._expect_error(answer, "not_a_member")
            return True
        return False

    def _same_group(self, chat: str, answer: object) -> None:
        assert isinstance(answer, Group), answer
        group = self.model.groups[chat]
        assert (answer.owner, answer.members) == (group.owner, sorted(group.members))

    @rule(g=st.integers(0, 1), u=st.integers(0, 3), m=st.integers(0, 3))
    def add(self, g: int, u: int, m: int) -> None:
        chat, user, member = self.groups[g], self.users[u], self.users[m]
        answer = self._call(self.service.group(GroupCall("add", chat, user, member)))
        if self._refused(chat, user, answer):
            return
        group = self.model.groups[chat]
        if member not in group.members:
            if len(group.members) >= MAX_MEMBERS:
                self._expect_error(answer, "group_full")
                return
            group.members.add(member)
            group.read[member] = self.model.newest(chat)  # a newcomer starts at the newest
        self._same_group(chat, answer)

    def _member(self, pick: int) -> tuple[str, str]:
        """A group that exists and one of its members, chosen by `pick`."""
        chat = sorted(self.model.groups)[pick % len(self.model.groups)]
        members = sorted(self.model.groups[chat].members)
        return chat, members[pick % len(members)]

    @precondition(lambda self: bool(self.model.groups))
    @rule(pick=st.integers(0, 99), m=st.integers(0, 3))
    def add_by_a_member(self, pick: int, m: int) -> None:
        chat, user = self._member(pick)
        self.add(self.groups.index(chat), self.users.index(user), m)

    @precondition(lambda self: bool(self.model.groups))
    @rule(pick=st.integers(0, 99))
    def send_by_a_member(self, pick: int) -> None:
        chat, user = self._member(pick)
        self.send_to_group(self.groups.index(chat), self.users.index(user))

    @precondition(lambda self: bool(self.model.groups))
    @rule(pick=st.integers(0, 99))
    def chats_of_a_member(self, pick: int) -> None:
        self.chats(self.users.index(self._member(pick)[1]))

    @rule(g=st.integers(0, 1), u=st.integers(0, 3), m=st.integers(0, 3))
    def remove(self, g: int, u: int, m: int) -> None:
        chat, user, member = self.groups[g], self.users[u], self.users[m]
        answer = self._call(self.service.group(GroupCall("remove", chat, user, member)))
        if self._refused(chat, user, answer):
            return
        group = self.model.groups[chat]
        if member == user == group.owner:
            self._expect_error(answer, "owner_cannot_leave")
            return
        if member != user and user != group.owner:
            self._expect_error(answer, "forbidden")
            return
        group.members.discard(member)
        group.read.pop(member, None)
        self._same_group(chat, answer)

    def _stored(self, chat: str, sender: str, answer: object, text: str) -> None:
        assert isinstance(answer, Sent), answer
        assert answer.send_time > self.model.newest(chat)
        self.model.messages.setdefault(chat, []).append((answer.send_time, sender, text))

    @rule(g=st.integers(0, 1), u=st.integers(0, 3))
    def send_to_group(self, g: int, u: int) -> None:
        chat, sender, text = self.groups[g], self.users[u], f"t{next(self.texts)}"
        answer = self._call(self.service.send(SendCall(chat, sender, text)))
        if not self._refused(chat, sender, answer):
            self._stored(chat, sender, answer, text)

    @rule(a=st.integers(0, 3), first=st.booleans())
    def send_to_pair(self, a: int, first: bool) -> None:
        one, two = sorted([self.users[a], self.users[(a + 1) % 4]])
        chat, sender, text = f"{one}:{two}", one if first else two, f"t{next(self.texts)}"
        self._stored(
            chat, sender, self._call(self.service.send(SendCall(chat, sender, text))), text
        )

    @rule(g=st.integers(0, 1), u=st.integers(0, 3), pick=st.integers(0, 50))
    def read_group(self, g: int, u: int, pick: int) -> None:
        chat, user = self.groups[g], self.users[u]
        times = [t for t, _, _ in self.model.messages.get(chat, [])]
        at = times[pick % len(times)] + pick % 2 if times else pick
        answer = self._call(self.service.mark_read(ReadCall(chat, user, at)))
        if self._refused(chat, user, answer):
            return
        group = self.model.groups[chat]
        group.read[user] = max(group.read.get(user, 0), self.model.last_at_or_before(chat, at))
        assert not isinstance(answer, IMError), answer
        assert answer.read_until == group.read[user]

    @rule(g=st.integers(0, 1), limit=st.integers(1, 3), reverse=st.booleans())
    def pull_group(self, g: int, limit: int, reverse: bool) -> None:
        chat = self.groups[g]
        seen: list[tuple[int, str, str]] = []
        cursor = 0
        for _ in range(100):
            page = self._call(self.service.pull(PullCall(chat, cursor, limit, reverse)))
            if chat not in self.model.groups:
                self._expect_error(page, "unknown_group")
                return
            assert not isinstance(page, IMError), page
            assert len(page.messages) <= limit
            seen += [(m["send_time"], m["sender"], m["text"]) for m in page.messages]
            if not page.has_more:
                break
            cursor = page.next_cursor
        expected = self.model.messages.get(chat, [])
        assert seen == (expected[::-1] if reverse else expected)

    @rule(u=st.integers(0, 3))
    def chats(self, u: int) -> None:
        user = self.users[u]
        page = self._run(self.service.chats(ChatsCall(user, 0, 1000)))
        got = [(c["chat"], c["last_message"]["send_time"], c["unread"]) for c in page.chats]
        assert got == self._inbox(user)

    @rule(u=st.integers(0, 3))
    def groups_of(self, u: int) -> None:
        user = self.users[u]
        answer = self._run(self.service.group(GroupCall("list", "", user)))
        assert isinstance(answer, UserGroupList), answer
        mine = [chat for chat, group in self.model.groups.items() if user in group.members]
        assert answer.groups == sorted(mine)

    def _inbox(self, user: str) -> list[tuple[str, int, int]]:
        rows = []
        for chat, messages in self.model.messages.items():
            if not messages:
                continue
            group = self.model.groups.get(chat)
            if group is not None:
                if user not in group.members:
                    continue
                read = group.read.get(user, 0)
            elif user in chat.split(":"):
                read = self.model.pair_read.get((user, chat), 0)
            else:
                continue
            unread = sum(1 for t, s, _ in messages if t > read and s != user)
            rows.append((chat, messages[-1][0], unread))
        rows.sort(key=lambda row: (row[1], row[0]), reverse=True)
        return rows


SETTINGS = settings(
    max_examples=30,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize(("fanout_max", "short"), [(100, 3), (1, 0)])
def test_groups_behave_as_the_model_says_on_redis(
    redis_proc: Process, fanout_max: int, short: int
) -> None:
    """Small groups (inbox writes on send), then groups that become big at their second
    member (read diffusion), and every mix in between; timelines that move from a list into
    a stream at their third message, then streams only."""

    class OnRedis(GroupMachine):
        make = staticmethod(lambda: make_store(redis_proc, short=short))

    OnRedis.fanout_max = fanout_max
    OnRedis.TestCase.settings = SETTINGS
    OnRedis.TestCase().runTest()


@pytest.mark.slow
def test_groups_behave_as_the_model_says_on_a_redis_cluster(
    redis_cluster: RedisClusterNodes,
) -> None:
    class OnCluster(GroupMachine):
        make = staticmethod(lambda: make_cluster_store(redis_cluster))
        fanout_max = 2  # small, then big at the third member

    OnCluster.TestCase.settings = settings(SETTINGS, max_examples=8)
    OnCluster.TestCase().runTest()
