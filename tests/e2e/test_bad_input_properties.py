"""Arbitrary input to every parameter of send and pull, in every shape: always a 4xx with the
JSON error shape, and nothing stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.procs import start_trio
from rpc_svc.store.keys import LAYOUT_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=80),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
not_a_chat = st.one_of(  # anything but "<member>:<member>"
    anything.filter(lambda v: not isinstance(v, str)),
    st.text(max_size=80).filter(lambda t: t.count(":") != 1),
    st.sampled_from([":", "a:", ":b", "a b:c", "a:b\x00", "a:" + "b" * 65, "a:\u2028"]),
)
content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "text/plain",
            "application/xml",
            "application/json; charset=latin-1",
            "",
        ]
    ),
    # any printable ASCII that HTTP allows as a header value (no edge spaces)
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip),
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A gateway on a Redis of its own: its URL and the Redis port."""
    trio = start_trio(tmp_path_factory.mktemp("badprops"))
    yield trio.url(), trio.redis.port
    trio.stop()


def assert_json_4xx(r: httpx.Response) -> None:
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "message"}
    assert isinstance(body["error"], str)
    assert isinstance(body["message"], str)


def nothing_stored(redis_port: int) -> None:
    """No key but the store layout's mark, which im-rpc writes at start."""
    client = redis.Redis(port=redis_port, decode_responses=True)
    try:
        assert set(client.scan_iter()) <= {LAYOUT_KEY}
    finally:
        client.close()


def test_any_body_and_content_type_to_send(stack: tuple[str, int]) -> None:
    url, redis_port = stack
    with httpx.Client(base_url=url, timeout=10) as http:

        @given(body=st.binary(max_size=300), content_type=content_types)
        @SETTINGS
        def check(body: bytes, content_type: str) -> None:
            headers = {"Content-Type": content_type} if content_type else {}
            r = http.post("/api/send", content=body, headers=headers)
            assert_json_4xx(r)

        check()
    nothing_stored(redis_port)


def test_any_value_of_any_send_field(stack: tuple[str, int]) -> None:
    url, redis_port = stack
    with httpx.Client(base_url=url, timeout=10) as http:

        @given(
            chat=not_a_chat,
            sender=anything,
            text=anything,
            key=anything,
            extra=st.dictionaries(st.text(max_size=8), anything, max_size=2),
            as_form=st.booleans(),
        )
        @SETTINGS
        def check(
            chat: Any, sender: Any, text: Any, key: Any, extra: dict[str, Any], as_form: bool
        ) -> None:
            fields = {**extra, "chat": chat, "sender": sender, "text": text, "client_msg_id": key}
            if as_form:
                form = {k: str(v) for k, v in fields.items() if v is not None}
                r = http.post("/api/send", data=form)
            else:
                r = http.post(
                    "/api/send",
                    content=json.dumps(fields).encode(),
                    headers={"Content-Type": "application/json"},
                )
            assert_json_4xx(r)

        check()
    nothing_stored(redis_port)


def test_any_value_of_any_pull_parameter(stack: tuple[str, int]) -> None:
    url, _ = stack
    with httpx.Client(base_url=url, timeout=10) as http:

        @given(
            chat=st.one_of(not_a_chat.map(str), st.just("a:b")),
            cursor=st.one_of(st.text(max_size=30), st.integers().map(str)),
            limit=st.one_of(st.text(max_size=30), st.integers(min_value=1001).map(str)),
            reverse=st.text(max_size=10),
        )
        @SETTINGS
        def check(chat: str, cursor: str, limit: str, reverse: str) -> None:
            params = {"chat": chat, "cursor": cursor, "limit": limit, "reverse": reverse}
            r = http.get("/api/pull", params=params)
            if r.status_code == 200:  # every value happened to be valid: then it is a page
                assert set(r.json()) == {"messages", "has_more", "next_cursor"}
            else:
                assert_json_4xx(r)

        check()
