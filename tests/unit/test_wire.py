"""The Batch RPC's payloads: calls decoded one by one, answers indexed by status and length."""

from __future__ import annotations

import orjson
import pytest
from grpclib.const import Status

from http_svc.errors import RpcFailure
from im_common.calls import ChatsCall, PullCall, ReadCall, SendCall
from rpc_svc.domain.errors import (
    Forbidden,
    InvalidArgument,
    Overloaded,
    StoreError,
    StoreTimeout,
    StoreUnavailable,
    UserRequired,
)
from rpc_svc.domain.values import Message, Page, Sent
from rpc_svc.edge.wire import decode_calls, encode_results, status_of


def test_calls_decode_in_order_and_malformed_ones_fail_alone() -> None:
    raw = orjson.dumps(
        [
            ["send", "a:b", "a", "hi", ""],
            ["pull", "a:b", 5, 10, True],
            ["send", "a:b", "b", "yo", "", "r-1"],
            ["pull", "a:b", "5", 10, True],
            ["send", "a:b", "a"],
            ["delete", "a:b"],
            ["pull", "a:b", 0, 2**31, False],
        ]
    )
    calls = decode_calls(raw)
    assert calls[:3] == [
        SendCall("a:b", "a", "hi", ""),
        PullCall("a:b", 5, 10, True),
        SendCall("a:b", "b", "yo", "", "r-1"),
    ]
    for bad in calls[3:]:
        assert isinstance(bad, InvalidArgument)
        assert bad.code == "invalid_batch"


@pytest.mark.parametrize("raw", [b"{", b'{"calls": []}', b"7"])
def test_a_batch_that_is_not_a_json_array_is_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidArgument):
        decode_calls(raw)


def test_answers_are_public_json_bodies_or_status_messages() -> None:
    page = Page([Message(chat="a:b", text="hi", sender="a", send_time=7)], False, 8)
    index, bodies = encode_results(
        [
            Sent("a:b", 7),
            page,
            InvalidArgument("chat is bad", "invalid_chat"),
            StoreUnavailable("down"),
        ]
    )
    entries = orjson.loads(index)
    assert [status for status, _ in entries] == [0, 0, 3, 14]
    parts, offset = [], 0
    for _, length in entries:
        parts.append(bodies[offset : offset + length])
        offset += length
    assert offset == len(bodies)
    assert orjson.loads(parts[0]) == {"chat": "a:b", "send_time": 7}
    assert orjson.loads(parts[1]) == {
        "messages": [{"chat": "a:b", "text": "hi", "sender": "a", "send_time": 7}],
        "has_more": False,
        "next_cursor": 8,
    }
    assert parts[2] == b"invalid_chat: chat is bad"
    assert parts[3] == b"store_unavailable: down"


def test_statuses_of_domain_errors() -> None:
    assert status_of(InvalidArgument("x")) is Status.INVALID_ARGUMENT
    assert status_of(StoreUnavailable("x")) is Status.UNAVAILABLE
    assert status_of(StoreTimeout("x")) is Status.DEADLINE_EXCEEDED
    assert status_of(StoreError("x")) is Status.INTERNAL
    assert status_of(Overloaded("x")) is Status.RESOURCE_EXHAUSTED
    answer = RpcFailure(Status.RESOURCE_EXHAUSTED, "overloaded: 9 long polls wait").to_api_error()
    assert (answer.status, answer.code, answer.message) == (503, "overloaded", "9 long polls wait")


def test_each_call_may_end_with_the_acting_user() -> None:
    raw = orjson.dumps(
        [
            ["send", "a:b", "a", "hi", "", "r", "a"],
            ["pull", "a:b", 5, 10, True, 0, "b"],
            ["pull", "a:b", 5, 10, False, 300, "a"],
            ["chats", "a", 0, 3, "a"],
            ["read", "a:b", "b", 7, "b"],
            ["chats", "a", 0, 3],
            ["read", "a:b", "b", 7],
        ]
    )
    assert decode_calls(raw) == [
        SendCall("a:b", "a", "hi", "", "r", "a"),
        PullCall("a:b", 5, 10, True, 0, "b"),
        PullCall("a:b", 5, 10, False, 300, "a"),
        ChatsCall("a", 0, 3, "a"),
        ReadCall("a:b", "b", 7, "b"),
        ChatsCall("a", 0, 3),
        ReadCall("a:b", "b", 7),
    ]


@pytest.mark.parametrize(
    "call",
    [
        ["send", "a:b", "a", "hi", "", "r", 7],
        ["send", "a:b", "a", "hi", "", "r", "a", "extra"],
        ["pull", "a:b", 5, 10, True, 0, None],
        ["pull", "a:b", 5, 10, True, 0, "a", "b"],
        ["chats", "a", 0, 3, ["a"]],
        ["read", "a:b", "b", 7, "b", "b"],
    ],
)
def test_an_acting_user_that_is_not_one_string_makes_the_call_malformed(call: list[object]) -> None:
    (decoded,) = decode_calls(orjson.dumps([call]))
    assert isinstance(decoded, InvalidArgument)


def test_authorization_errors_have_their_own_statuses() -> None:
    assert status_of(Forbidden("x")) is Status.PERMISSION_DENIED
    assert status_of(UserRequired("x")) is Status.UNAUTHENTICATED
