"""The hand-coded batch messages write and read exactly what betterproto's generated classes
write and read, skip what they do not know, and refuse broken bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from im_common.batch_messages import BatchReplyMessage, BatchRequestMessage, MalformedMessage
from improto import BatchReply, BatchRequest

UINT64 = st.integers(min_value=0, max_value=2**64 - 1)
# a field this message does not have, of each wire type: varint, fixed64, bytes, fixed32
UNKNOWN_FIELDS = st.sampled_from(
    [b"\x20\x96\x01", b"\x21" + bytes(8), b"\x2a\x03abc", b"\x2d" + bytes(4), b"\xf8\x07\x01"]
)


# each hand-coded message, its generated twin, its field names and values
MESSAGES = [
    (
        BatchRequestMessage,
        BatchRequest,
        ("calls", "id", "request_ids"),
        (st.binary(), UINT64, st.text()),
    ),
    (BatchReplyMessage, BatchReply, ("index", "bodies", "id"), (st.binary(), st.binary(), UINT64)),
]


@pytest.mark.parametrize(("ours", "theirs", "names", "values"), MESSAGES, ids=["request", "reply"])
@given(data=st.data())
def test_a_message_is_coded_as_betterproto_codes_it(
    ours: type[BatchRequestMessage | BatchReplyMessage],
    theirs: type[BatchRequest | BatchReply],
    names: tuple[str, ...],
    values: tuple[st.SearchStrategy[object], ...],
    data: st.DataObject,
) -> None:
    fields = data.draw(st.tuples(*values))
    message, twin = ours(*fields), theirs(**dict(zip(names, fields, strict=True)))
    assert message.SerializeToString() == bytes(twin)
    assert ours.FromString(bytes(twin)) == message
    parsed = theirs.FromString(message.SerializeToString())
    assert tuple(getattr(parsed, name) for name in names) == fields


def test_bodies_of_megabytes_and_ids_of_many_bytes_keep_their_length() -> None:
    reply = BatchReplyMessage(b"[[0,3]]", b"x" * 3_000_000, 2**63 + 5)
    assert BatchReplyMessage.FromString(reply.SerializeToString()) == reply
    assert reply.SerializeToString() == bytes(
        BatchReply(index=reply.index, bodies=reply.bodies, id=reply.id)
    )


@given(st.lists(UNKNOWN_FIELDS, max_size=4), st.binary(min_size=1), UINT64)
def test_unknown_fields_are_skipped(unknown: list[bytes], calls: bytes, id_: int) -> None:
    data = b"".join(unknown) + BatchRequestMessage(calls, id_, "r1").SerializeToString()
    assert BatchRequestMessage.FromString(data) == BatchRequestMessage(calls, id_, "r1")
    parsed = BatchRequest.FromString(data)
    assert (parsed.calls, parsed.id, parsed.request_ids) == (calls, id_, "r1")


def test_a_field_given_twice_keeps_its_last_value_as_protobuf_does() -> None:
    data = (
        BatchReplyMessage(b"first", b"", 1).SerializeToString()
        + BatchReplyMessage(b"second", b"body", 2).SerializeToString()
    )
    parsed = BatchReply.FromString(data)
    assert BatchReplyMessage.FromString(data) == BatchReplyMessage(
        parsed.index, parsed.bodies, parsed.id
    )
    assert BatchReplyMessage.FromString(data) == BatchReplyMessage(b"second", b"body", 2)


def test_the_empty_message_has_every_default() -> None:
    assert BatchRequestMessage.FromString(b"") == BatchRequestMessage(b"", 0, "")
    assert BatchReplyMessage.FromString(b"") == BatchReplyMessage(b"", b"", 0)
    assert BatchRequestMessage().SerializeToString() == b""


@given(st.binary(min_size=1, max_size=300), st.data())
def test_a_message_cut_inside_its_last_field_is_refused(bodies: bytes, data: st.DataObject) -> None:
    whole = BatchReplyMessage(b"[]", bodies).SerializeToString()  # bodies last: no id
    start = len(BatchReplyMessage(b"[]").SerializeToString())  # where bodies begins
    cut = data.draw(st.integers(min_value=start + 1, max_value=len(whole) - 1))
    with pytest.raises(MalformedMessage):
        BatchReplyMessage.FromString(whole[:cut])


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x0a\x05ab", "truncated field"),
        (b"\x10\x80\x80", "truncated varint"),
        (b"\x10" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\x10\x02\x0b", "wire type 3"),
        (b"\x12\x01x", "field 2 has wire type 2"),  # id is a varint
        (b"\x08\x01", "field 1 has wire type 0"),  # calls is length-delimited
        (b"\x1a\x02\xc3\x28", "not UTF-8"),
        (b"\x21\x00\x00", "truncated field"),
    ],
)
def test_broken_bytes_are_refused_with_the_reason(data: bytes, why: str) -> None:
    with pytest.raises(MalformedMessage, match=why):
        BatchRequestMessage.FromString(data)


@pytest.mark.parametrize("id_", [-1, 2**64])
def test_an_id_outside_uint64_is_not_encoded(id_: int) -> None:
    with pytest.raises(ValueError, match="not a uint64"):
        BatchReplyMessage(b"[]", b"", id_).SerializeToString()
