"""Sync tokens: where a user's sync stands, opaque to clients and bound to the user.

A token holds the feed's epoch (which feed: a user's feed made anew gets another), the
records read, the send time last given of a range read in part, and the check of the last
record it read from (its kind and number: a store that lost its newest records, then wrote
others in their place, is found out by them, 410 sync_reset, instead of skipping events);
then a MAC (HMAC-SHA256, 12 bytes) over the user's name and those, with the key every
im-rpc reads from the store. A token not made by the service, or made for another user,
fails the MAC: 400 invalid_since. Version 1 tokens (no check) are still read, and made
when asked for (IM_SYNC_TOKEN_VERSION: while im-rpc instances from before version 2, which
refuse it, still run beside this one). Pure: no I/O."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import struct
from typing import NamedTuple

from rpc_svc.domain.errors import InvalidArgument

VERSION = 2
_BODY = struct.Struct(">B8sQQcQ")  # version, epoch, position, place, check's kind and number
_BODY_V1 = struct.Struct(">B8sQQ")  # version 1: no check
_NO_CHECK = b"\0"
_MAC_BYTES = 12
MAX_TOKEN_CHARS = 128


class SyncToken(NamedTuple):
    """Where a sync stands in its user's feed."""

    epoch: str  # 16 hex digits
    position: int  # records read
    place: int  # the send time last given of the next record (a range), 0: none
    # the last record read from (in full, or in part: a place): its kind and number as the
    # feed's script prints them ("a1796596086613422"); "": none (a feed's start, version 1)
    check: str = ""


@functools.lru_cache(maxsize=4)
def _keyed(key: bytes) -> hmac.HMAC:
    """The HMAC of `key` with the tokens' prefix taken in: each MAC copies it (1.2 µs, where
    one made from the key is 1.8)."""
    return hmac.new(key, b"sync\0", hashlib.sha256)


def _mac(key: bytes, user: str, body: bytes) -> bytes:
    mac = _keyed(key).copy()
    mac.update(user.encode() + b"\0" + body)
    return mac.digest()[:_MAC_BYTES]


def encode(key: bytes, user: str, token: SyncToken, version: int = VERSION) -> str:
    """The text of `token` for `user`, in `version` (1: without its check)."""
    epoch = bytes.fromhex(token.epoch)
    if version == 1:
        body = _BODY_V1.pack(1, epoch, token.position, token.place)
    else:
        kind, number = (
            (token.check[:1].encode(), int(token.check[1:])) if token.check else (_NO_CHECK, 0)
        )
        body = _BODY.pack(VERSION, epoch, token.position, token.place, kind, number)
    return base64.urlsafe_b64encode(body + _mac(key, user, body)).rstrip(b"=").decode()


def decode(key: bytes, user: str, text: str) -> SyncToken:
    """The token `text` holds for `user`; InvalidArgument (invalid_since) when the service
    did not make it for this user."""
    if len(text) > MAX_TOKEN_CHARS:
        raise _invalid()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _invalid() from None
    form = _BODY if raw[:1] == bytes([VERSION]) else _BODY_V1
    body, mac = raw[: form.size], raw[form.size :]
    if len(body) != form.size or not hmac.compare_digest(mac, _mac(key, user, body)):
        raise _invalid()
    if form is _BODY_V1:
        version, epoch, position, place = _BODY_V1.unpack(body)
        if version != 1:
            raise _invalid()
        return SyncToken(epoch.hex(), position, place)
    _, epoch, position, place, kind, number = _BODY.unpack(body)
    check = "" if kind == _NO_CHECK else f"{kind.decode('latin-1')}{number}"
    return SyncToken(epoch.hex(), position, place, check)


def _invalid() -> InvalidArgument:
    return InvalidArgument(
        "since: not a token this service made for this user (take one with a sync without since)",
        "invalid_since",
    )
