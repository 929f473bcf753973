"""BatchRequest and BatchReply of protos/im.proto as plain classes, coded by hand.

Every send and pull travels in these two messages, and betterproto takes 50-60 us to encode
or to decode one of them (its per-field machinery, whatever the field count), a few
microseconds per call at each end. These classes write and read the same protobuf wire
format in a few microseconds, so either end may still use the generated classes
(tests/unit/test_batch_messages.py checks both directions against betterproto). grpclib's
ProtoCodec codes them like any generated message, through `SerializeToString` and
`FromString`.
"""

from __future__ import annotations

from dataclasses import dataclass

_UINT64 = (1 << 64) - 1
_BYTE = [bytes((i,)) for i in range(128)]
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5  # protobuf's wire types
_EMPTY = memoryview(b"")


class MalformedMessage(ValueError):
    """Bytes that are not a well-formed protobuf message of the expected type."""


@dataclass(slots=True)
class BatchRequestMessage:
    """`BatchRequest`: calls (a JSON array), the batch's id on BatchStream, request ids."""

    calls: bytes = b""
    id: int = 0
    request_ids: str = ""

    def SerializeToString(self) -> bytes:
        """The message's protobuf bytes (fields at their default value are left out)."""
        out: list[bytes] = []
        _put_bytes(out, b"\x0a", self.calls)
        _put_uint(out, b"\x10", self.id)
        _put_bytes(out, b"\x1a", self.request_ids.encode())
        return b"".join(out)

    @classmethod
    def FromString(cls, data: bytes) -> BatchRequestMessage:
        """Parse protobuf bytes; unknown fields are skipped; MalformedMessage if broken."""
        chunks, numbers = _parse(data, chunk_fields=(1, 3), number_fields=(2,))
        try:
            request_ids = str(chunks.get(3, _EMPTY), "utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("request_ids is not UTF-8") from None
        return cls(bytes(chunks.get(1, _EMPTY)), numbers.get(2, 0), request_ids)


@dataclass(slots=True)
class BatchReplyMessage:
    """`BatchReply`: the answers' index (JSON), their bodies, the id of the batch answered."""

    index: bytes = b""
    bodies: bytes = b""
    id: int = 0

    def SerializeToString(self) -> bytes:
        """The message's protobuf bytes (fields at their default value are left out)."""
        out: list[bytes] = []
        _put_bytes(out, b"\x0a", self.index)
        _put_bytes(out, b"\x12", self.bodies)
        _put_uint(out, b"\x18", self.id)
        return b"".join(out)

    @classmethod
    def FromString(cls, data: bytes) -> BatchReplyMessage:
        """Parse protobuf bytes; unknown fields are skipped; MalformedMessage if broken."""
        chunks, numbers = _parse(data, chunk_fields=(1, 2), number_fields=(3,))
        return cls(bytes(chunks.get(1, _EMPTY)), bytes(chunks.get(2, _EMPTY)), numbers.get(3, 0))


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _put_bytes(out: list[bytes], key: bytes, value: bytes) -> None:
    if value:
        out += (key, _varint(len(value)), value)


def _put_uint(out: list[bytes], key: bytes, value: int) -> None:
    if value:
        if not 0 < value <= _UINT64:
            raise ValueError(f"{value} is not a uint64")
        out += (key, _varint(value))


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while shift < 70:
        if pos >= len(data):
            raise MalformedMessage("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise MalformedMessage("varint longer than 10 bytes")


def _parse(
    data: bytes, chunk_fields: tuple[int, ...], number_fields: tuple[int, ...]
) -> tuple[dict[int, memoryview], dict[int, int]]:
    """The length-delimited fields `chunk_fields` and the varint fields `number_fields` of a
    message (the last value of a field given twice, as protobuf has it); other fields are
    skipped, a known field of another wire type is malformed."""
    chunks: dict[int, memoryview] = {}
    numbers: dict[int, int] = {}
    view, pos, end = memoryview(data), 0, len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
            if number in number_fields:
                numbers[number] = value & _UINT64
                continue
        elif wire == _LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > end:
                raise MalformedMessage("truncated field")
            if number in chunk_fields:
                chunks[number] = view[pos : pos + size]
                pos += size
                continue
            pos += size
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
            if pos > end:
                raise MalformedMessage("truncated field")
        else:
            raise MalformedMessage(f"wire type {wire} of field {number}")
        if number in chunk_fields or number in number_fields:
            raise MalformedMessage(f"field {number} has wire type {wire}")
    return chunks, numbers
