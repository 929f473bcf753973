"""Random Authorization headers against a gateway with authentication on, directly and
through nginx: never a 5xx; a refusal is always a 401 with WWW-Authenticate; only a valid
token for the chat's member stores anything. Includes tokens signed with the real secret
whose claims are of any type (what a careless identity provider could issue)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.procs import HOST, nginx_server, start_trio
from tests.auth_tokens import SECRET, KeyFiles, good_token, hs256_by_hand, make_key_files
from tests.e2e.test_auth import auth_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
CHAT = "alice:bob"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return make_key_files(tmp_path_factory.mktemp("prop-keys"))


@pytest.fixture(scope="module")
def urls(
    keys: KeyFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[str], int]]:
    """The gateway's and nginx's URLs, and the Redis port."""
    workdir = tmp_path_factory.mktemp("auth-props")
    trio = start_trio(workdir, rpc_settings={"IM_RPC_REQUIRE_USER": "1"}, gateways=[auth_env(keys)])
    proxy = nginx_server(workdir, [trio.gateways[0].port]).start()
    yield [trio.url(), f"http://{HOST}:{proxy.port}"], trio.redis.port
    proxy.stop()
    trio.stop()


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=70),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
claim_sets = st.dictionaries(
    st.sampled_from(["sub", "exp", "nbf", "iat", "aud", "iss", "jti"]), json_values, max_size=7
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: Any) -> str:
    return _b64(json.dumps(value).encode())  # allow_nan: Infinity and NaN too


def _header_value(raw: bytes) -> bytes:
    """`raw` cut to what HTTP allows in a header value (visible bytes, inner blanks)."""
    kept = bytes(c for c in raw if c in (9, 32) or 0x21 <= c <= 0x7E or c >= 0x80)
    return kept.strip(b" \t")


header_bytes = st.binary(max_size=200).map(_header_value)
forged = st.builds(
    lambda head, body, sig: f"Bearer {_segment(head)}.{_segment(body)}.{_b64(sig)}",
    st.fixed_dictionaries(
        {"alg": st.sampled_from(["none", "HS256", "RS256", "ES256", "HS512", "PS256"]) | st.text()},
        optional={"kid": st.sampled_from(["es-1", "rs-1"]) | json_values, "typ": json_values},
    ),
    claim_sets,
    st.binary(max_size=300),
)
signed_with_the_secret = claim_sets.map(  # (PyJWT would refuse to sign some of these)
    lambda body: "Bearer " + hs256_by_hand({"alg": "HS256", "typ": "JWT"}, body, SECRET.encode())
)


def _mutated(keys: KeyFiles) -> st.SearchStrategy[str]:
    token = good_token(keys, "alice", "hs256")
    return st.builds(
        lambda i, c: f"Bearer {token[:i]}{c}{token[i + 1 :]}",
        st.integers(0, len(token) - 1),
        st.sampled_from("AaZz09-_.=+/"),
    )


def _check(url: str, header: bytes | str, redis_port: int) -> None:
    value = header if isinstance(header, bytes) else header.encode()
    store = redis.Redis(host=HOST, port=redis_port)
    try:
        before = store.dbsize()
        answer = httpx.post(
            f"{url}/api/send",
            json={"chat": CHAT, "text": "hello"},
            headers={b"Authorization": value},
            timeout=10,
        )
        assert answer.status_code in (200, 401), (header, answer.status_code, answer.text)
        if answer.status_code == 401:
            assert answer.headers["www-authenticate"].startswith('Bearer realm="im"')
            assert answer.json()["error"] == "unauthenticated"
            assert store.dbsize() == before
    finally:
        store.close()


@SETTINGS
@given(data=st.data())
def test_random_authorization_headers_never_get_a_5xx(
    urls: tuple[list[str], int], keys: KeyFiles, data: st.DataObject
) -> None:
    gateways, redis_port = urls
    header = data.draw(
        st.one_of(
            header_bytes,
            header_bytes.map(lambda b: _header_value(b"Bearer " + b)),
            forged,
            signed_with_the_secret,
            _mutated(keys),
        )
    )
    url = data.draw(st.sampled_from(gateways))
    _check(url, header, redis_port)
