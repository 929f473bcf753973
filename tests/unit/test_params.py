"""The gateway's typing of parameters, and its map from RPC failures to HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from grpclib.const import Status
from hypothesis import given
from hypothesis import strategies as st

from http_svc.errors import ApiError, RpcFailure
from http_svc.params import bool_param, int_param, optional_text_param, text_param


@given(st.integers())
def test_integers_parse_from_strings_and_json_within_bounds(n: int) -> None:
    for raw in (n, str(n)):
        if 0 <= n <= 1000:
            assert int_param({"limit": raw}, "limit", 7, 0, 1000) == n
        else:
            with pytest.raises(ApiError) as err:
                int_param({"limit": raw}, "limit", 7, 0, 1000)
            assert (err.value.status, err.value.code) == (400, "invalid_limit")


@pytest.mark.parametrize("raw", ["1.5", "ten", "0x10", " 1", True, 2.0, [], {}, "١٢"])
def test_non_integers_are_rejected(raw: Any) -> None:
    with pytest.raises(ApiError) as err:
        int_param({"cursor": raw}, "cursor", 0, 0, 10)
    assert err.value.code == "invalid_cursor"


def test_absent_or_empty_integers_take_the_default() -> None:
    assert int_param({}, "limit", 10, 0, 1000) == 10
    assert int_param({"limit": ""}, "limit", 10, 0, 1000) == 10


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        (1, True),
        (True, True),
        ("false", False),
        ("False", False),
        ("0", False),
        (0, False),
        (False, False),
    ],
)
def test_booleans(raw: Any, value: bool) -> None:
    assert bool_param({"reverse": raw}, "reverse", not value) is value


@pytest.mark.parametrize("raw", ["yes", "2", 2, [], "tru"])
def test_non_booleans_are_rejected(raw: Any) -> None:
    with pytest.raises(ApiError) as err:
        bool_param({"reverse": raw}, "reverse", False)
    assert err.value.code == "invalid_reverse"


def test_text_parameters() -> None:
    assert text_param({"chat": "a:b"}, "chat") == "a:b"
    assert optional_text_param({}, "client_msg_id") is None
    with pytest.raises(ApiError) as err:
        text_param({}, "chat")
    assert err.value.code == "missing_parameter"
    with pytest.raises(ApiError) as err:
        text_param({"chat": 5}, "chat")
    assert err.value.code == "invalid_chat"


@pytest.mark.parametrize(
    ("status", "message", "http", "code"),
    [
        (Status.INVALID_ARGUMENT, "invalid_chat: chat must be x", 400, "invalid_chat"),
        (Status.UNAVAILABLE, "store_unavailable: redis down", 503, "store_unavailable"),
        (Status.UNAVAILABLE, "Connection lost", 503, "rpc_unavailable"),
        (Status.DEADLINE_EXCEEDED, "", 504, "rpc_timeout"),
        (Status.INTERNAL, "boom", 502, "upstream_error"),
    ],
)
def test_rpc_failures_map_to_http(status: Status, message: str, http: int, code: str) -> None:
    err = RpcFailure(status, message).to_api_error()
    assert (err.status, err.code) == (http, code)
    assert err.message


def test_grpc_errors_and_broken_connections_become_rpc_failures() -> None:
    from grpclib import GRPCError
    from grpclib.exceptions import StreamTerminatedError

    from http_svc.errors import rpc_failure

    kept = rpc_failure(GRPCError(Status.INVALID_ARGUMENT, "invalid_chat: no ':'"))
    assert (kept.status, kept.to_api_error().code) == (Status.INVALID_ARGUMENT, "invalid_chat")
    for exc in (ConnectionRefusedError(111, "refused"), StreamTerminatedError("reset")):
        err = rpc_failure(exc).to_api_error()
        assert (err.status, err.code) == (503, "rpc_unavailable")
