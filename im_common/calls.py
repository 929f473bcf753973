"""The calls a gateway sends to im-rpc in a batch: one schema, used by both sides.

A batch's calls travel as one JSON array; each call is an array of its kind and then its
fields in the order they are declared here (msgspec's array-like structs), e.g.
``["send", chat, sender, text, client_msg_id, retry_key, actor]``. Trailing fields at their
default may be left out. `actor` is the authenticated caller ("" with authentication off):
im-rpc enforces who may act on what for it. The answers travel as each call's status and
public JSON body (see protos/im.proto).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, NamedTuple

import msgspec
from msgspec import Meta

Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
Int32 = Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)]
WaitMs = Annotated[int, Meta(ge=0, le=2**31 - 1)]


class SendCall(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="send"
):
    """Store `text` from `sender` in `chat`, idempotent on a non-empty client_msg_id, else
    on a non-empty retry_key (the gateway's own key, remembered briefly)."""

    chat: str
    sender: str
    text: str
    client_msg_id: str = ""
    retry_key: str = ""
    actor: str = ""


class PullCall(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="pull"
):
    """Read one page of `chat` from `cursor`; a forward pull with `wait_ms` long-polls (it
    travels in a batch of its own)."""

    chat: str
    cursor: Int64 = 0
    limit: Int32 = 0
    reverse: bool = False
    wait_ms: WaitMs = 0
    actor: str = ""


class ChatsCall(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="chats"
):
    """One page of `user`'s chats, most recently active first, from `cursor` (0: the top)."""

    user: str
    cursor: Int64 = 0
    limit: Int32 = 0
    actor: str = ""


class ReadCall(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="read"
):
    """Move `user`'s read position in `chat` forward to `send_time`."""

    chat: str
    user: str
    send_time: Int64
    actor: str = ""


class GroupCall(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="group"
):
    """A group call: `op` create, add, remove or members of group `chat` by `user` (add and
    remove: on `member`), or list (the groups of `user`; `chat` empty)."""

    op: str
    chat: str
    user: str = ""
    member: str = ""
    actor: str = ""


class SyncCall(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="sync"
):
    """What changed in all of `user`'s chats since the token `since` ("": from now), at most
    `limit` events; with `wait_ms` and a token, a long poll while nothing did (it travels in
    a batch of its own)."""

    user: str
    since: str = ""
    limit: Int32 = 0
    wait_ms: WaitMs = 0
    actor: str = ""


class EditCall(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="edit"
):
    """`sender` replaces the text of its message at `send_time` in `chat` with `text`."""

    chat: str
    sender: str
    send_time: Int64
    text: str
    actor: str = ""


class RecallCall(
    msgspec.Struct, array_like=True, frozen=True, forbid_unknown_fields=True, tag="recall"
):
    """`user` recalls the message at `send_time` in `chat` (its sender, or a group's owner)."""

    chat: str
    user: str
    send_time: Int64
    actor: str = ""


Call = SendCall | PullCall | ChatsCall | ReadCall | GroupCall | SyncCall | EditCall | RecallCall


class BadCall(NamedTuple):
    """A call that does not fit the schema, in its place: its kind ("?" if none can be read).
    Its text is not kept: it may hold a message."""

    kind: str


class BadBatch(ValueError):
    """The batch is not a JSON array."""


_ENCODER = msgspec.json.Encoder()
_CALLS = msgspec.json.Decoder(list[Call])
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_CALL = msgspec.json.Decoder(Call)
_KIND = msgspec.json.Decoder(list[msgspec.Raw])


def encode(calls: Sequence[Call]) -> bytes:
    """The batch's JSON (msgspec.EncodeError for a str with lone surrogates)."""
    return _ENCODER.encode(calls)


def decode(raw: bytes) -> list[Call | BadCall]:
    """The calls of a batch, each one that does not fit the schema a BadCall in its place;
    BadBatch when `raw` is not a JSON array."""
    try:
        return list(_CALLS.decode(raw))
    except msgspec.DecodeError:
        pass
    try:
        items = _ITEMS.decode(raw)
    except msgspec.DecodeError:
        raise BadBatch("calls must be a JSON array") from None
    return [_one(item) for item in items]


def _one(item: msgspec.Raw) -> Call | BadCall:
    try:
        return _CALL.decode(item)
    except msgspec.DecodeError:
        pass
    try:
        kind = msgspec.json.decode(_KIND.decode(item)[0])
    except (msgspec.DecodeError, IndexError):
        return BadCall("?")
    return BadCall(kind[:16] if isinstance(kind, str) else "?")
