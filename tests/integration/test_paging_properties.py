"""Paging properties over the real store: every message exactly once, in order, resumable."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from im_common.calls import PullCall, SendCall
from rpc_svc.domain.values import Message, Page
from rpc_svc.service.runner import ChatService
from tests.conftest import ON_EVERY_BACKEND

pytestmark = ON_EVERY_BACKEND
_chats = itertools.count()

PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


async def _fill(service: ChatService, count: int) -> tuple[str, list[Message]]:
    first, second = f"p{next(_chats)}", "q"
    chat = f"{first}:{second}"
    for i in range(count):
        await service.send(SendCall(chat, second if i % 3 else first, "same"))
    everything = await service.pull(PullCall(chat, 0, 1000, False))
    return chat, everything.messages


async def _walk(
    service: ChatService, chat: str, cursor: int, limit: int, reverse: bool
) -> tuple[list[Message], Page]:
    seen: list[Message] = []
    for _ in range(1000):
        page = await service.pull(PullCall(chat, cursor, limit, reverse))
        assert len(page.messages) <= limit
        seen.extend(page.messages)
        if not page.has_more:
            return seen, page
        cursor = page.next_cursor
    raise AssertionError("paging did not end")


def _cursor_for(times: list[int], pick: int, kind: str) -> int:
    if not times or kind == "zero":
        return 0
    t = times[pick % len(times)]
    return {"exact": t, "before": t - 1, "after": t + 1, "beyond": times[-1] + 10}[kind]


@PROPERTY_SETTINGS
@given(
    count=st.integers(0, 40),
    limit=st.integers(1, 12),
    reverse=st.booleans(),
    pick=st.integers(0, 100),
    kind=st.sampled_from(["zero", "exact", "before", "after", "beyond"]),
)
async def test_paging_from_any_cursor_returns_every_message_once_in_order(
    service: ChatService, count: int, limit: int, reverse: bool, pick: int, kind: str
) -> None:
    chat, stored = await _fill(service, count)
    times = [m["send_time"] for m in stored]
    assert len(stored) == count
    cursor = _cursor_for(times, pick, kind)
    seen, last = await _walk(service, chat, cursor, limit, reverse)
    if reverse:
        expected = [m for m in reversed(stored) if cursor == 0 or m["send_time"] <= cursor]
        assert last.next_cursor == 0
    else:
        expected = [m for m in stored if m["send_time"] >= cursor]
        assert last.next_cursor == (expected[-1]["send_time"] + 1 if expected else cursor)
    assert seen == expected


@PROPERTY_SETTINGS
@given(count=st.integers(0, 15), limit=st.integers(1, 6), new=st.integers(1, 5))
async def test_polling_forward_with_next_cursor_sees_each_new_message_once(
    service: ChatService, count: int, limit: int, new: int
) -> None:
    chat, _ = await _fill(service, count)
    _, last = await _walk(service, chat, 0, limit, reverse=False)
    sent = [await service.send(SendCall(chat, "q", f"new {i}")) for i in range(new)]
    seen, _ = await _walk(service, chat, last.next_cursor, limit, reverse=False)
    assert [m["send_time"] for m in seen] == [s.send_time for s in sent]
    assert [m["text"] for m in seen] == [f"new {i}" for i in range(new)]


async def test_forward_paging_while_others_send_misses_nothing(service: ChatService) -> None:
    chat, stored = await _fill(service, 10)
    seen: list[Message] = []
    cursor, sent = 0, [m["send_time"] for m in stored]
    for i in range(30):
        page = await service.pull(PullCall(chat, cursor, 3, False))
        seen.extend(page.messages)
        cursor = page.next_cursor
        if i < 10:
            sent.append((await service.send(SendCall(chat, "q", f"during {i}"))).send_time)
    assert [m["send_time"] for m in seen] == sent
