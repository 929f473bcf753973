"""The Batch RPC's payloads: a JSON array of calls in, indexed answer bodies out.

A call is ``["send", chat, sender, text, client_msg_id, retry_key]`` (the retry key
may be left out), ``["pull", chat, cursor, limit, reverse]`` (plus ``wait_ms`` for
a long poll, which travels alone in its batch), ``["chats", user, cursor, limit]`` or
``["read", chat, user, send_time]`` or ``["group", op, chat, user, member]`` (op
"list": a user's groups, chat and member empty); with
authentication on each call ends with the
acting user (a pull's after ``wait_ms``, 0 for none). An answer is a gRPC status code
and a body: for OK the public JSON body of /api/send, /api/pull, /api/chats or /api/read, otherwise
the status message ``"<machine_code>: <message>"``. See protos/im.proto.
"""

from __future__ import annotations

from typing import Any

import orjson
from grpclib.const import Status

from rpc_svc.chat import INT64_MAX, InboxPage, Page
from rpc_svc.errors import (
    Conflict,
    Forbidden,
    IMError,
    InvalidArgument,
    NotFound,
    Overloaded,
    StoreTimeout,
    StoreUnavailable,
    UserRequired,
)
from rpc_svc.group_service import GroupCall
from rpc_svc.groups import Group, UserGroupList
from rpc_svc.service import Call, ChatsCall, PullCall, ReadCall, ReadDone, Result, SendCall, Sent

_STATUS: list[tuple[type[IMError], Status]] = [
    (InvalidArgument, Status.INVALID_ARGUMENT),
    (Forbidden, Status.PERMISSION_DENIED),
    (NotFound, Status.NOT_FOUND),
    (Conflict, Status.ALREADY_EXISTS),
    (UserRequired, Status.UNAUTHENTICATED),
    (Overloaded, Status.RESOURCE_EXHAUSTED),
    (StoreUnavailable, Status.UNAVAILABLE),
    (StoreTimeout, Status.DEADLINE_EXCEEDED),
]
_INT32_MAX = 2**31 - 1


def status_of(exc: IMError) -> Status:
    """The gRPC status of a domain error (INTERNAL for the unexpected)."""
    return next((s for kind, s in _STATUS if isinstance(exc, kind)), Status.INTERNAL)


def status_message(exc: IMError) -> str:
    """The gRPC status message of a domain error: "<code>: <message>"."""
    return f"{exc.code}: {exc.message}"


def _int(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _cursor(value: Any) -> bool:
    return _int(value, -INT64_MAX - 1, INT64_MAX)


def _limit(value: Any) -> bool:
    return _int(value, -_INT32_MAX - 1, _INT32_MAX)


def _actor(rest: list[Any]) -> bool:
    """An optional last element: the acting user."""
    return not rest or (len(rest) == 1 and isinstance(rest[0], str))


def _call(item: Any) -> Call:
    # a send: 4 to 6 strings (chat, sender, text, key, then retry key and acting user if
    # given); tested first and without pattern matching, which took 3 µs a send
    if type(item) is list and 5 <= len(item) <= 7 and item[0] == "send":
        for field in item:
            if type(field) is not str:
                break
        else:
            return SendCall(*item[1:])
    match item:
        case ["pull", str(chat), cursor, limit, bool(reverse)] if _cursor(cursor) and _limit(limit):
            return PullCall(chat, cursor, limit, reverse)
        case ["pull", str(chat), cursor, limit, bool(reverse), wait_ms, *rest] if (
            _cursor(cursor) and _limit(limit) and _int(wait_ms, 0, _INT32_MAX) and _actor(rest)
        ):
            return PullCall(chat, cursor, limit, reverse, wait_ms, *rest)
        case ["chats", str(user), cursor, limit, *rest] if (
            _cursor(cursor) and _limit(limit) and _actor(rest)
        ):
            return ChatsCall(user, cursor, limit, *rest)
        case ["read", str(chat), str(user), send_time, *rest] if _cursor(send_time) and _actor(
            rest
        ):
            return ReadCall(chat, user, send_time, *rest)
        case ["group", str(op), str(chat), str(user), str(member), *rest] if _actor(rest):
            return GroupCall(op, chat, user, member, *rest)
    kind = item[0] if isinstance(item, list) and item and isinstance(item[0], str) else "?"
    # the call itself is not quoted: it may hold a message text
    raise InvalidArgument(f"malformed batch call ({kind[:16]!r})", "invalid_batch")


def decode_calls(raw: bytes) -> list[Call | IMError]:
    """The calls of a BatchRequest; a malformed call becomes InvalidArgument in its place."""
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"calls are not JSON: {exc}", "invalid_batch") from None
    if not isinstance(items, list):
        raise InvalidArgument("calls must be a JSON array", "invalid_batch")
    calls: list[Call | IMError] = []
    for item in items:
        try:
            calls.append(_call(item))
        except InvalidArgument as exc:
            calls.append(exc)
    return calls


def _body(result: Result) -> tuple[int, bytes]:
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
    else:
        assert isinstance(result, ReadDone)
        body = {"chat": result.chat, "user": result.user, "read_until": result.read_until}
    return 0, orjson.dumps(body)


def encode_results(results: list[Result]) -> tuple[bytes, bytes]:
    """The (index, bodies) of a BatchReply answering `results` in order."""
    index: list[tuple[int, int]] = []
    bodies: list[bytes] = []
    for result in results:
        status, body = _body(result)
        index.append((status, len(body)))
        bodies.append(body)
    return orjson.dumps(index), b"".join(bodies)
