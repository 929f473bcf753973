"""The group rules (rpc_svc/groups.py): names, refusals with the codes and messages clients
see, and exact unread counts."""

from __future__ import annotations

import pytest

from rpc_svc.domain.errors import Conflict, Forbidden, InvalidArgument, NotFound
from rpc_svc.domain.names import check_group, check_name, is_group
from rpc_svc.domain.paging import group_unread
from rpc_svc.domain.refusals import (
    GROUP_FULL,
    NOT_A_MEMBER,
    NOT_THE_OWNER,
    OWNER_LEAVES,
    UNKNOWN_GROUP,
    refusal,
)
from rpc_svc.domain.values import NO_READ, ReadMark


@pytest.mark.parametrize(
    ("code", "kind", "machine", "message"),
    [
        (UNKNOWN_GROUP, NotFound, "unknown_group", "group '#g' does not exist"),
        (NOT_A_MEMBER, Forbidden, "not_a_member", "'eve' is not a member of group '#g'"),
        (GROUP_FULL, Conflict, "group_full", "group '#g' has as many members as it may have"),
        (NOT_THE_OWNER, Forbidden, "forbidden", "only the owner removes other members"),
        (OWNER_LEAVES, Conflict, "owner_cannot_leave", "the owner cannot leave the group"),
    ],
)
def test_each_refusal_has_its_code_and_message(
    code: int, kind: type[Exception], machine: str, message: str
) -> None:
    error = refusal(code, "#g", "eve")
    assert type(error) is kind
    assert (error.code, error.message) == (machine, message)


def test_an_unknown_refusal_code_is_a_bug() -> None:
    with pytest.raises(AssertionError, match="-99"):
        refusal(-99, "#g")


@pytest.mark.parametrize("chat", ["#a", "#" + "x" * 64, "#名前", "#{é}"])
def test_valid_group_names(chat: str) -> None:
    assert is_group(chat)
    assert check_group(chat) == chat


@pytest.mark.parametrize(
    ("chat", "says"),
    [
        ("#", "a group is '#'"),
        ("#" + "x" * 65, "a group is '#'"),
        ("#a b", "a group is '#'"),
        ("a:b", "a group is '#'"),
        ("#e\u0301", "normal form C"),
    ],
)
def test_invalid_group_names(chat: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as refused:
        check_group(chat)
    assert refused.value.code == "invalid_chat"


def test_a_name_with_a_colon_is_a_chat_not_a_group() -> None:
    assert not is_group("#a:b")
    assert not is_group("team")


def test_member_names_are_checked_under_their_field() -> None:
    check_name("bob", "member")
    with pytest.raises(InvalidArgument) as refused:
        check_name("b b", "member")
    assert refused.value.code == "invalid_member"
    assert refused.value.message.startswith("member must be 1..64 characters")
    with pytest.raises(InvalidArgument) as refused:
        check_name("e\u0301", "user")
    assert (refused.value.code, refused.value.message) == (
        "invalid_user",
        "user must be in Unicode normal form C (NFC)",
    )


def test_unread_counts_the_others_messages_after_the_position() -> None:
    # 10 messages, 3 of them the member's; read at the 4th (1 of them its own)
    assert group_unread(10, 3, ReadMark(4, (4, 1))) == 6 - 2
    assert group_unread(10, 3, NO_READ) == 7
    assert group_unread(5, 5, NO_READ) == 0  # only its own
    assert group_unread(5, 0, ReadMark(9, (5, 0))) == 0
