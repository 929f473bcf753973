"""perf.change_audit's checks: each defect it names is counted, and a clean run has none."""

from __future__ import annotations

from typing import Any

import pytest

from perf.change_audit import Chat, check_pull, check_syncs

CHAT = "a:b"


def _chat() -> Chat:
    chat = Chat(CHAT, ["a", "b"])
    chat.sent = [(1, "a"), (2, "b"), (3, "a")]
    chat.edits = {1: [(10, "x"), (12, "y")]}  # two acknowledged edits; the last wins
    chat.recalled = {2}
    return chat


def _message(st: int, **extra: Any) -> dict[str, Any]:
    return {"type": "message", "chat": CHAT, "message": {"send_time": st, **extra}}


def _edit(st: int) -> dict[str, Any]:
    return {"type": "edit", "chat": CHAT, "message": {"send_time": st}}


RECALL = {"type": "recall", "chat": CHAT, "send_time": 2}
GOOD = [_message(1), _edit(1), _message(2), _edit(1), RECALL, _message(3)]


def test_a_clean_sync_has_no_defect() -> None:
    found = check_syncs([_chat()], {"a": GOOD, "b": GOOD})
    assert (found["messages"], found["changes"]) == (6, 6)  # 3 messages, 3 changes, each member
    defects = ("missed", "duplicated", "out of order", "change missed", "change duplicated",
               "change before its message")  # fmt: skip
    assert [found[d] for d in defects] == [0] * 6


@pytest.mark.parametrize(
    ("events", "defect"),
    [
        (GOOD[:-1], "missed"),
        ([*GOOD, _message(3)], "duplicated"),
        ([_message(2), _message(1), *GOOD[3:]], "out of order"),
        ([e for e in GOOD if e is not RECALL], "change missed"),
        ([*GOOD[:2], *GOOD[2:4]], "change missed"),  # the recall and the last message lost
        ([*GOOD, _edit(1)], "change duplicated"),
        ([*GOOD, RECALL], "change duplicated"),
        ([_edit(1), *GOOD[:1], *GOOD[2:]], "change before its message"),
    ],
)
def test_each_defect_is_counted(events: list[dict[str, Any]], defect: str) -> None:
    found = check_syncs([_chat()], {"a": GOOD, "b": events})
    assert found[defect] >= 1


def test_the_final_pull_must_show_the_last_change_of_each_message() -> None:
    right = [
        {"send_time": 1, "text": "y", "edited_at": 12},
        {"send_time": 2, "text": "", "recalled": True},
        {"send_time": 3, "text": "as sent"},
    ]
    assert check_pull(_chat(), right) == 0
    assert check_pull(_chat(), [{**right[0], "text": "x", "edited_at": 10}, *right[1:]]) == 1
    assert check_pull(_chat(), [right[0], {"send_time": 2, "text": "z"}, right[2]]) == 1
    assert check_pull(_chat(), [*right[:2], {**right[2], "edited_at": 5}]) == 1
    assert check_pull(_chat(), right[:2]) == 1  # a message missing
