"""Sync tokens (rpc_svc/domain/tokens.py): what a token holds comes back for its user and
key only, and any other text is `invalid_since`; version 1 tokens (no check) are read, and
made when asked for."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc_svc.domain.errors import InvalidArgument
from rpc_svc.domain.tokens import MAX_TOKEN_CHARS, SyncToken, decode, encode

KEY = bytes(range(32))
TOKEN = SyncToken("00112233445566aa", 41, 1_796_596_086_613_422, "a1796596086613400")


def _by_hand(key: bytes, user: str, version: int, token: SyncToken) -> str:
    """A token made as the module's docstring says, without the module (version 1: no
    check)."""
    body = struct.pack(">B8sQQ", version, bytes.fromhex(token.epoch), token.position, token.place)
    if version != 1:
        kind, number = (token.check[:1], int(token.check[1:])) if token.check else ("\0", 0)
        body += kind.encode() + number.to_bytes(8, "big")
    mac = hmac.new(key, b"sync\0" + user.encode() + b"\0" + body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(body + mac[:12]).rstrip(b"=").decode()


def _refused(key: bytes, user: str, text: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        decode(key, user, text)
    assert refused.value.code == "invalid_since"


@given(
    epoch=st.binary(min_size=8, max_size=8).map(bytes.hex),
    position=st.integers(0, 2**64 - 1),
    place=st.integers(0, 2**64 - 1),
    check=st.one_of(
        st.just(""),
        st.tuples(st.sampled_from("aAbBcdefghjklsxyEX"), st.integers(0, 2**56 - 1)).map(
            lambda kn: f"{kn[0]}{kn[1]}"
        ),
    ),
    user=st.text(min_size=1, max_size=64),
)
def test_a_token_comes_back_as_it_was_made_for_its_user(
    epoch: str, position: int, place: int, check: str, user: str
) -> None:
    token = SyncToken(epoch, position, place, check)
    assert decode(KEY, user, encode(KEY, user, token)) == token


def test_the_mac_is_hmac_sha256_of_the_user_and_the_body() -> None:
    assert encode(KEY, "alice", TOKEN) == _by_hand(KEY, "alice", 2, TOKEN)
    other_key = bytes(32)
    assert encode(other_key, "alice", TOKEN) == _by_hand(other_key, "alice", 2, TOKEN)
    none = TOKEN._replace(check="")
    assert encode(KEY, "alice", none) == _by_hand(KEY, "alice", 2, none)


def test_a_version_1_token_is_read_without_a_check() -> None:
    """Tokens that clients hold from before the check still sync (their records are not
    checked), and stay bound to their user."""
    old = _by_hand(KEY, "alice", 1, TOKEN)
    assert decode(KEY, "alice", old) == TOKEN._replace(check="")
    _refused(KEY, "bob", old)
    _refused(KEY, "alice", old[:-1])


def test_a_version_1_token_is_made_when_asked_for_as_version_1_was() -> None:
    """IM_SYNC_TOKEN_VERSION=1 (a rolling upgrade from an im-rpc that knows only version 1):
    the token is the one that release made, byte for byte, so the older instances read it;
    it carries no check."""
    for token in (TOKEN, TOKEN._replace(check="")):
        made = encode(KEY, "alice", token, 1)
        assert made == _by_hand(KEY, "alice", 1, token)
        assert decode(KEY, "alice", made) == token._replace(check="")


def test_another_users_another_keys_or_a_changed_token_is_refused() -> None:
    text = encode(KEY, "alice", TOKEN)
    _refused(KEY, "bob", text)
    _refused(bytes(32), "alice", text)
    moved = _by_hand(KEY, "alice", 2, TOKEN._replace(position=42))
    assert decode(KEY, "alice", moved).position == 42
    raw = bytearray(base64.urlsafe_b64decode(text + "=="))
    raw[9] ^= 1  # a bit of the position, the MAC kept
    _refused(KEY, "alice", base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode())


def test_a_token_of_another_version_or_not_a_token_is_refused() -> None:
    for version in (0, 3):
        _refused(KEY, "alice", _by_hand(KEY, "alice", version, TOKEN))
    text = encode(KEY, "alice", TOKEN)
    for bad in ("", "!!", text[:-1], text + "A", text[1:], "A" * (MAX_TOKEN_CHARS + 1)):
        _refused(KEY, "alice", bad)
