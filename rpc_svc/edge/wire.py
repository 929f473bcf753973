"""What travels on the BatchStream: the calls of a batch in (im_common.calls: one schema
for both sides), each call's answer out as a gRPC status code and a body: for OK the public
JSON body of its route, otherwise the status message "<machine_code>: <message>". This is
the one table from domain error to gRPC status. See protos/im.proto.
"""

from __future__ import annotations

import orjson
from grpclib.const import Status

from im_common.calls import BadBatch, BadCall, Call, decode
from rpc_svc.domain.errors import (
    Conflict,
    Forbidden,
    IMError,
    InvalidArgument,
    NotFound,
    Overloaded,
    StoreTimeout,
    StoreUnavailable,
    SyncReset,
    UserRequired,
)
from rpc_svc.domain.values import (
    Changed,
    Group,
    InboxPage,
    Page,
    ReadDone,
    Sent,
    SyncPage,
    UserGroupList,
)

_STATUS: list[tuple[type[IMError], Status]] = [
    (InvalidArgument, Status.INVALID_ARGUMENT),
    (Forbidden, Status.PERMISSION_DENIED),
    (NotFound, Status.NOT_FOUND),
    (Conflict, Status.ALREADY_EXISTS),
    (UserRequired, Status.UNAUTHENTICATED),
    (Overloaded, Status.RESOURCE_EXHAUSTED),
    (SyncReset, Status.OUT_OF_RANGE),
    (StoreUnavailable, Status.UNAVAILABLE),
    (StoreTimeout, Status.DEADLINE_EXCEEDED),
]
Answer = Sent | Page | InboxPage | ReadDone | Group | UserGroupList | SyncPage | Changed | IMError


def status_of(exc: IMError) -> Status:
    """The gRPC status of a domain error (INTERNAL for the unexpected)."""
    return next((s for kind, s in _STATUS if isinstance(exc, kind)), Status.INTERNAL)


def status_message(exc: IMError) -> str:
    """The gRPC status message of a domain error: "<code>: <message>"."""
    return f"{exc.code}: {exc.message}"


def decode_calls(raw: bytes) -> list[Call | IMError]:
    """The calls of a BatchRequest; a malformed call becomes InvalidArgument in its place,
    a batch that is not a JSON array InvalidArgument raised."""
    try:
        calls = decode(raw)
    except BadBatch as exc:
        raise InvalidArgument(str(exc), "invalid_batch") from None
    return [
        InvalidArgument(f"malformed batch call ({c.kind!r})", "invalid_batch")
        if isinstance(c, BadCall)
        else c
        for c in calls
    ]


def _body(result: Answer) -> tuple[int, bytes]:
    if isinstance(result, IMError):
        return status_of(result).value, status_message(result).encode()
    if isinstance(result, Sent):
        return 0, orjson.dumps({"chat": result.chat, "send_time": result.send_time})
    if isinstance(result, Page):
        body = {
            "messages": result.messages,
            "has_more": result.has_more,
            "next_cursor": result.next_cursor,
        }
    elif isinstance(result, InboxPage):
        body = {
            "chats": result.chats,
            "has_more": result.has_more,
            "next_cursor": result.next_cursor,
        }
    elif isinstance(result, Group):
        body = {"chat": result.chat, "owner": result.owner, "members": result.members}
    elif isinstance(result, UserGroupList):
        body = {"user": result.user, "groups": result.groups}
    elif isinstance(result, SyncPage):
        body = {"events": result.events, "next": result.next, "has_more": result.has_more}
    elif isinstance(result, Changed):
        if result.recalled:
            body = {"chat": result.chat, "send_time": result.send_time, "recalled": True}
        else:
            body = {"chat": result.chat, "send_time": result.send_time, "edited_at": result.at}
    else:
        assert isinstance(result, ReadDone)
        body = {"chat": result.chat, "user": result.user, "read_until": result.read_until}
    return 0, orjson.dumps(body)


def encode_results(results: list[Answer]) -> tuple[bytes, bytes]:
    """The (index, bodies) of a BatchReply answering `results` in order."""
    index: list[tuple[int, int]] = []
    bodies: list[bytes] = []
    for result in results:
        status, body = _body(result)
        index.append((status, len(body)))
        bodies.append(body)
    return orjson.dumps(index), b"".join(bodies)
