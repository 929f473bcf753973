"""The exact error answers of the rules a client meets first: code, HTTP status and the
message naming the field. The message is part of the answer a client sees (and the docs
print some), so each is pinned here, with the boundaries either side of every limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from http_svc.errors import ApiError
from http_svc.params import bool_param, int_param, optional_text_param, text_param
from rpc_svc.domain.errors import InvalidArgument
from rpc_svc.domain.names import Chat, check_user, parse_chat
from rpc_svc.domain.rules import (
    check_client_msg_id,
    check_cursor,
    check_text,
    check_wait_ms,
    page_limit,
)

MEMBERS = (
    "chat must have exactly one ':' and members without whitespace, control or format characters"
)
USER = "user must be 1..64 characters without ':', whitespace, control or format characters"
KEY = "client_msg_id must be 1..64 characters without control characters"
LENGTH = "chat members must be 1..64 characters"
LIMIT = "limit must be 1..1000 (0 for the default)"
CURSOR = "must be an integer 0..2^63-1"

RULES: list[tuple[str, Callable[[], object], str, str]] = [
    ("no colon", lambda: parse_chat("ab"), "invalid_chat",
     "chat must be '<member1>:<member2>' (no ':' found)"),
    ("empty first", lambda: parse_chat(":b"), "invalid_chat", LENGTH),
    ("empty second", lambda: parse_chat("a:"), "invalid_chat", LENGTH),
    ("65 first", lambda: parse_chat("x" * 65 + ":b"), "invalid_chat", LENGTH),
    ("65 second", lambda: parse_chat("a:" + "x" * 65), "invalid_chat", LENGTH),
    ("second colon", lambda: parse_chat("a:b:c"), "invalid_chat", MEMBERS),
    ("space in first", lambda: parse_chat("a b:c"), "invalid_chat", MEMBERS),
    ("DEL in second", lambda: parse_chat("a:b\x7f"), "invalid_chat", MEMBERS),
    ("zero width", lambda: parse_chat("a\u200b:b"), "invalid_chat", MEMBERS),
    ("bidi override", lambda: parse_chat("a:\u202eb"), "invalid_chat", MEMBERS),
    ("BOM", lambda: parse_chat("\ufeffa:b"), "invalid_chat", MEMBERS),
    ("NFD first", lambda: parse_chat("e\u0301:b"), "invalid_chat",
     "chat members must be in Unicode normal form C (NFC)"),
    ("NFD user", lambda: check_user("e\u0301"), "invalid_user",
     "user must be in Unicode normal form C (NFC)"),
    ("format user", lambda: check_user("a\u2066b"), "invalid_user", USER),
    ("private use", lambda: check_user("\ue000"), "invalid_user", USER),
    ("stranger", lambda: Chat("a", "b").role_of("c"), "sender_not_in_chat",
     "sender 'c' is not a member of chat 'a:b'"),
    ("stranger user", lambda: Chat("a", "b").role_of("c", "user"), "user_not_in_chat",
     "user 'c' is not a member of chat 'a:b'"),
    ("empty user", lambda: check_user(""), "invalid_user", USER),
    ("65 user", lambda: check_user("u" * 65), "invalid_user", USER),
    ("C1 user", lambda: check_user("u\x9f"), "invalid_user", USER),
    ("empty text", lambda: check_text("", 10), "invalid_text", "text must not be empty"),
    ("long text", lambda: check_text("é" * 6, 11), "text_too_long",
     "text is 12 bytes of UTF-8; the limit is 11"),
    ("long key", lambda: check_client_msg_id("k" * 65), "invalid_client_msg_id", KEY),
    ("control key", lambda: check_client_msg_id("k\x00"), "invalid_client_msg_id", KEY),
    ("header key", lambda: check_client_msg_id("\x7f", "idempotency_key"),
     "invalid_idempotency_key", KEY.replace("client_msg_id", "idempotency_key")),
    ("wait -1", lambda: check_wait_ms(-1), "invalid_wait_ms", "wait_ms must be 0..30000"),
    ("wait 30001", lambda: check_wait_ms(30_001), "invalid_wait_ms", "wait_ms must be 0..30000"),
    ("limit -1", lambda: page_limit(-1), "invalid_limit", LIMIT),
    ("limit 1001", lambda: page_limit(1001), "invalid_limit", LIMIT),
    ("cursor -1", lambda: check_cursor(-1), "invalid_cursor", f"cursor {CURSOR}"),
    ("cursor 2^63", lambda: check_cursor(2**63, "send_time"), "invalid_send_time",
     f"send_time {CURSOR}"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "call", "code", "message"), RULES, ids=[r[0] for r in RULES])
def test_a_broken_rule_answers_its_code_and_message(
    name: str, call: Callable[[], object], code: str, message: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        call()
    assert (err.value.code, err.value.message, str(err.value)) == (code, message, message)


def test_the_limits_themselves_are_allowed() -> None:
    assert parse_chat("x" * 64 + ":" + "y" * 64).first == "x" * 64
    assert parse_chat("b:a") == Chat("a", "b")
    check_user("u" * 64)
    check_text("é" * 5 + "a", 11)
    check_client_msg_id("k" * 64)
    check_client_msg_id("")  # none given
    check_wait_ms(0)
    check_wait_ms(30_000)
    check_cursor(0)
    check_cursor(2**63 - 1)
    assert [page_limit(n) for n in (0, 1, 1000)] == [10, 1, 1000]


PARAMS: list[tuple[str, Callable[[], object], int, str, str]] = [
    ("text absent", lambda: text_param({}, "chat"), 400, "missing_parameter", "chat is required"),
    ("text not str", lambda: text_param({"chat": 5}, "chat"), 400, "invalid_chat",
     "chat must be a string"),
    ("optional not str", lambda: optional_text_param({"client_msg_id": 5}, "client_msg_id"), 400,
     "invalid_client_msg_id", "client_msg_id must be a string"),
    ("int absent", lambda: int_param({}, "send_time", None, 0, 9), 400, "missing_parameter",
     "send_time is required"),
    ("int empty", lambda: int_param({"send_time": ""}, "send_time", None, 0, 9), 400,
     "missing_parameter", "send_time is required"),
    ("int text", lambda: int_param({"limit": "x"}, "limit", 0, 0, 9), 400, "invalid_limit",
     "limit must be an integer"),
    ("int bool", lambda: int_param({"limit": True}, "limit", 0, 0, 9), 400, "invalid_limit",
     "limit must be an integer"),
    ("int low", lambda: int_param({"limit": "-1"}, "limit", 0, 0, 9), 400, "invalid_limit",
     "limit must be 0..9"),
    ("int high", lambda: int_param({"limit": 10}, "limit", 0, 0, 9), 400, "invalid_limit",
     "limit must be 0..9"),
    ("bool text", lambda: bool_param({"reverse": "yes"}, "reverse", False), 400, "invalid_reverse",
     "reverse must be true, false, 1 or 0"),
    ("bool 2", lambda: bool_param({"reverse": 2}, "reverse", False), 400, "invalid_reverse",
     "reverse must be true, false, 1 or 0"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "call", "status", "code", "message"), PARAMS, ids=[p[0] for p in PARAMS]
)
def test_a_malformed_parameter_answers_its_status_code_and_message(
    name: str, call: Callable[[], object], status: int, code: str, message: str
) -> None:
    with pytest.raises(ApiError) as err:
        call()
    assert (err.value.status, err.value.code, err.value.message) == (status, code, message)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("params", "value"),
    [({}, 7), ({"limit": ""}, 7), ({"limit": "0"}, 0), ({"limit": "9"}, 9), ({"limit": "+3"}, 3)],
)
def test_an_integer_at_its_bounds_or_absent(params: dict[str, Any], value: int) -> None:
    assert int_param(params, "limit", 7, 0, 9) == value


@pytest.mark.parametrize(("params", "value"), [({}, True), ({"reverse": ""}, True)])
def test_an_absent_or_empty_boolean_takes_the_default(params: dict[str, Any], value: bool) -> None:
    assert bool_param(params, "reverse", True) is value
    assert bool_param(params, "reverse", False) is not value


def test_an_optional_text_is_none_only_when_absent() -> None:
    assert optional_text_param({}, "client_msg_id") is None
    assert optional_text_param({"client_msg_id": None}, "client_msg_id") is None
    assert optional_text_param({"client_msg_id": ""}, "client_msg_id") == ""
    assert optional_text_param({"client_msg_id": "k"}, "client_msg_id") == "k"
