"""The chat rules: names, members, texts, idempotency keys, limits, cursors, pages."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc_svc.domain.errors import InvalidArgument
from rpc_svc.domain.names import Chat, check_user, parse_chat
from rpc_svc.domain.paging import TIES, build_inbox, build_page, read_mark
from rpc_svc.domain.rules import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    check_client_msg_id,
    check_cursor,
    check_text,
    page_limit,
)
from rpc_svc.domain.values import NO_READ, Entry, InboxPage, InboxRow, ReadMark, Tip

members = st.text(
    st.characters(
        exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"],
        exclude_characters=":",
    ),
    min_size=1,
    max_size=64,
).filter(lambda s: not any(c.isspace() for c in s) and unicodedata.is_normalized("NFC", s))


@given(members, members)
def test_both_orders_name_the_same_canonical_chat(a: str, b: str) -> None:
    one, other = parse_chat(f"{a}:{b}"), parse_chat(f"{b}:{a}")
    assert one == other
    assert one.name == ":".join(sorted([a, b]))
    assert one.member(one.role_of(a)) == a
    assert one.member(one.role_of(b)) == b


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "alice",
        ":bob",
        "alice:",
        "a:b:c",
        "al ice:bob",
        "alice:bo\tb",
        "a\x00:b",
        "a\u2028:b",
        "a\x85:b",
        "a\x7f:b",  # DEL, and C1 controls that are not whitespace to \s
        "a:\x80b",
        "a\x9b:b",
        "x" * 65 + ":bob",
    ],
)
def test_malformed_chats_are_invalid(raw: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_chat(raw)
    assert err.value.code == "invalid_chat"


@pytest.mark.parametrize(
    "user", ["", "a:b", "a b", "a\x00", "a\x7f", "\x80", "b\x9f", "\x85", "x" * 65]
)
def test_bad_users(user: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_user(user)
    assert err.value.code == "invalid_user"


@pytest.mark.parametrize("user", ["u", "x" * 64, "{é}", "名前"])
def test_good_users(user: str) -> None:
    check_user(user)


def test_look_alike_names_are_other_users_as_the_docs_say() -> None:
    """docs/api.md: the name rules keep out invisible characters and a second encoding of
    one text (NFC), not look-alikes: a Cyrillic or fullwidth letter makes another user."""
    for look_alike in ("\u0430lice", "\uff41lice"):  # Cyrillic а, fullwidth ａ
        check_user(look_alike)
        chat = parse_chat(f"alice:{look_alike}")
        assert (chat.first, chat.second) == ("alice", look_alike)
    with pytest.raises(InvalidArgument, match="NFC"):
        check_user("ali\u0063\u0327e")  # c + combining cedilla: NFC makes it one character


def test_members_may_be_64_characters_and_hold_braces() -> None:
    chat = parse_chat("{x}%:" + "y" * 64)
    assert chat == Chat("y" * 64, "{x}%")  # "{" sorts after "y" by code point


def test_a_stranger_is_not_a_sender() -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_chat("alice:bob").role_of("carol")
    assert err.value.code == "sender_not_in_chat"


def test_text_limits_count_utf8_bytes() -> None:
    check_text("é" * 2048, 4096)
    with pytest.raises(InvalidArgument) as err:
        check_text("é" * 2049, 4096)
    assert err.value.code == "text_too_long"
    with pytest.raises(InvalidArgument) as err:
        check_text("", 4096)
    assert err.value.code == "invalid_text"


@pytest.mark.parametrize("value", ["x" * 65, "a\nb", "\x7f"])
def test_bad_client_msg_ids(value: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_client_msg_id(value)
    assert err.value.code == "invalid_client_msg_id"


def test_good_client_msg_ids() -> None:
    for value in ("", "k", "x" * 64, "ключ-1"):
        check_client_msg_id(value)


@given(st.integers(-(2**40), 2**40))
def test_limits(limit: int) -> None:
    if limit == 0:
        assert page_limit(limit) == DEFAULT_LIMIT
    elif 1 <= limit <= MAX_LIMIT:
        assert page_limit(limit) == limit
    else:
        with pytest.raises(InvalidArgument):
            page_limit(limit)


def test_cursor_bounds() -> None:
    check_cursor(0)
    check_cursor(2**63 - 1)
    for bad in (-1, 2**63):
        with pytest.raises(InvalidArgument):
            check_cursor(bad)


CHAT = Chat("alice", "bob")


def _entries(*times: int) -> list[Entry]:
    return [Entry(t, t % 2, f"m{t}") for t in times]


def test_a_full_page_points_at_the_first_message_beyond_it() -> None:
    page = build_page(CHAT, _entries(10, 11, 12), cursor=5, limit=2, reverse=False)
    assert [m["send_time"] for m in page.messages] == [10, 11]
    assert (page.has_more, page.next_cursor) == (True, 12)
    assert page.messages[1]["sender"] == "bob"
    assert page.messages[0]["chat"] == "alice:bob"


def test_the_last_forward_page_resumes_after_its_newest_message() -> None:
    page = build_page(CHAT, _entries(10, 11), cursor=5, limit=2, reverse=False)
    assert (page.has_more, page.next_cursor) == (False, 12)


def test_an_empty_forward_page_resumes_at_its_cursor() -> None:
    page = build_page(CHAT, [], cursor=77, limit=10, reverse=False)
    assert (page.messages, page.has_more, page.next_cursor) == ([], False, 77)


def test_the_last_reverse_page_ends_at_zero() -> None:
    page = build_page(CHAT, _entries(12, 11), cursor=0, limit=5, reverse=True)
    assert (page.has_more, page.next_cursor) == (False, 0)


def _tip(send_time: int, role: int, sent: tuple[int, int]) -> Tip:
    return Tip(Entry(send_time, role, f"t{send_time}"), sent)


def test_an_inbox_page_skips_chats_without_messages_and_counts_the_others() -> None:
    rows = [
        InboxRow("a:b", 30, ReadMark(10, (1, 1))),
        InboxRow("a:gone", 20, NO_READ),  # its stream is gone: nothing to show
        InboxRow("a:c", 10, NO_READ),
        InboxRow("a:d", 5, NO_READ),  # the first row beyond the page
    ]
    latest = [_tip(30, 1, (1, 4)), None, _tip(10, 0, (2, 0))]
    page = _inbox_page("a", rows, latest, 3, 0)
    assert [(c["chat"], c["unread"]) for c in page.chats] == [("a:b", 3), ("a:c", 0)]
    assert page.chats[0]["last_message"] == {
        "chat": "a:b",
        "text": "t30",
        "sender": "b",
        "send_time": 30,
    }
    assert (page.has_more, page.next_cursor) == (True, 5 * TIES)


def _inbox_page(
    user: str, rows: list[InboxRow], latest: Sequence[Tip | None], limit: int, cursor: int
) -> InboxPage:
    """A page of 1:1 `rows` read from `cursor` (skip: the cursor's), with their tips."""
    return build_inbox(user, rows, latest, [None] * len(latest), cursor % TIES, limit, cursor)


def test_inbox_paging_counts_chats_of_one_microsecond_up_to_its_bound() -> None:
    rows = [InboxRow(f"a:u{i:04}", 7, NO_READ) for i in range(TIES + 1)]
    latest = [_tip(7, 1, (0, 1))] * TIES
    page = _inbox_page("a", rows, latest[: TIES - 1], TIES - 1, 0)
    assert page.next_cursor == 7 * TIES + TIES - 1  # 999 shown: the cursor can say so
    with pytest.raises(InvalidArgument) as err:
        _inbox_page("a", rows, latest, TIES, 0)  # 1000 at one microsecond: it cannot
    assert (err.value.code, err.value.message) == (
        "invalid_limit",
        f"more than {TIES - 1} chats at one microsecond: page with a larger limit",
    )
    # 500 shown by the page before, at the same microsecond: they count too
    with pytest.raises(InvalidArgument):
        _inbox_page("a", rows, latest[:500], 500, 7 * TIES + 500)
    assert _inbox_page("a", rows, latest[:499], 499, 7 * TIES + 500).next_cursor == (7 * TIES + 999)


def test_a_read_mark_of_nothing_read_is_zero() -> None:
    assert read_mark(None) == NO_READ == ReadMark(0, (0, 0))
    assert read_mark(_tip(9, 0, (3, 2))) == ReadMark(9, (3, 2))
