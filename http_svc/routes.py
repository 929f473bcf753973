"""HTTP handlers: check the caller's token, read parameters, call im-rpc, answer JSON.
No rule of the chat lives here (im-rpc enforces who may act on what; the gateway only
checks that a sender or user given is the authenticated caller, which needs no state)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson
from sanic import Blueprint, HTTPResponse, Request

from http_svc.errors import ApiError, json_error
from http_svc.params import (
    INT64_MAX,
    Params,
    bool_param,
    collect,
    int_param,
    is_utf8,
    optional_text_param,
    text_param,
)
from http_svc.rate_limit import retry_after
from im_common.calls import (
    ChatsCall,
    EditCall,
    GroupCall,
    PullCall,
    ReadCall,
    RecallCall,
    SendCall,
    SyncCall,
)

bp = Blueprint("api")

_INT32_MAX = 2**31 - 1
MAX_WAIT_MS = 30_000  # the contract's longest long poll
_PONG = b'{"message":"pong"}'
RETRY_KEY_HEADER = "x-im-retry-key"
READ_METHODS = ("GET", "HEAD")  # HEAD: the same answer without its body


Handler = Callable[[Request], Awaitable[HTTPResponse]]


def _read_route(path: str, ignore_body: bool = True) -> Callable[[Handler], Handler]:
    """A GET route that answers HEAD too (ignore_body=False: it reads a body, as the API's do)."""
    return cast(
        Callable[[Handler], Handler],
        bp.route(path, methods=READ_METHODS, ignore_body=ignore_body),
    )


def _json(body: Any) -> HTTPResponse:
    return HTTPResponse(orjson.dumps(body), content_type="application/json")


@_read_route("/ping")
async def ping(request: Request) -> HTTPResponse:
    """The gateway alone: never touches im-rpc or the store."""
    return HTTPResponse(_PONG, content_type="application/json")


def _acting_user(request: Request) -> str:
    """The authenticated caller, or "" with authentication off. Each API route calls it
    first, so a 401 comes before any other answer (a call, not a middleware: Sanic's
    middleware costs several microseconds per request)."""
    auth = request.app.ctx.auth
    if auth is None:
        return ""
    user: str = auth.user_of(request.headers.get("authorization"))
    request.ctx.user = user
    return user


def _own(params: Params, name: str, user: str) -> str:
    """The `sender` or `user` parameter. With an acting user it may be omitted (it is then
    that user) and may not name anyone else (403 forbidden)."""
    if not user:
        return text_param(params, name)
    given = optional_text_param(params, name)
    if given is None:
        return user
    if given != user:
        raise ApiError(403, "forbidden", f"{name} must be the authenticated user", reason=name)
    return given


@bp.post("/api/send")
async def send(request: Request) -> HTTPResponse:
    """Store a message; answer its canonical chat and send_time."""
    user = _acting_user(request)
    params = collect(request)
    chat = text_param(params, "chat")
    sender = _own(params, "sender", user)
    text = text_param(params, "text")
    client_msg_id = optional_text_param(params, "client_msg_id")
    if client_msg_id is None:
        client_msg_id = request.headers.get("idempotency-key")
        if client_msg_id is not None and not is_utf8(client_msg_id):
            raise ApiError(400, "invalid_utf8", "the Idempotency-Key header is not valid UTF-8")
    if client_msg_id == "":
        raise ApiError(400, "invalid_client_msg_id", "client_msg_id must not be empty")
    limiter = request.app.ctx.sender_limiter
    if limiter is not None and (wait := limiter.allow(user or sender)):
        raise ApiError(
            429, "rate_limited", "too many sends from this sender; retry later", retry_after(wait)
        )
    call = SendCall(chat, sender, text, client_msg_id or "", _retry_key(request), user)
    body = await request.app.ctx.rpc.call(call)
    return HTTPResponse(body, content_type="application/json")


def _retry_key(request: Request) -> str:
    """nginx's key for this request (X-IM-Retry-Key), kept when it retries the request on
    another gateway; "" (the gateway makes one) when absent or not a plausible key."""
    key = request.headers.get(RETRY_KEY_HEADER, "")
    return key if 0 < len(key) <= 64 and key.isascii() and key.isprintable() else ""


@_read_route("/api/pull", ignore_body=False)
async def pull(request: Request) -> HTTPResponse:
    """One page of a chat, with has_more and next_cursor."""
    user = _acting_user(request)
    params = collect(request)
    chat = text_param(params, "chat")
    cursor = int_param(params, "cursor", 0, 0, INT64_MAX)
    limit = int_param(params, "limit", 0, 0, _INT32_MAX)
    reverse = bool_param(params, "reverse", False)
    wait_ms = int_param(params, "wait_ms", 0, 0, MAX_WAIT_MS)
    if wait_ms and not reverse:
        body = await _wait(request, user, PullCall(chat, cursor, limit, False, wait_ms, user))
    else:
        body = await request.app.ctx.rpc.call(PullCall(chat, cursor, limit, reverse, 0, user))
    return HTTPResponse(body, content_type="application/json")


@_read_route("/api/sync", ignore_body=False)
async def sync(request: Request) -> HTTPResponse:
    """What changed in all of a user's chats since a token (events, next, has_more); with
    wait_ms and a token, a long poll while nothing did."""
    actor = _acting_user(request)
    params = collect(request)
    user = _own(params, "user", actor)
    since = optional_text_param(params, "since") or ""
    limit = int_param(params, "limit", 0, 0, _INT32_MAX)
    wait_ms = int_param(params, "wait_ms", 0, 0, MAX_WAIT_MS)
    if wait_ms and since:
        body = await _wait(request, actor, SyncCall(user, since, limit, wait_ms, actor))
    else:
        body = await request.app.ctx.rpc.call(SyncCall(user, since, limit, 0, actor))
    return HTTPResponse(body, content_type="application/json")


async def _wait(request: Request, user: str, call: PullCall | SyncCall) -> bytes:
    """A long poll (pull or sync), within the caller's share of this gateway's waiting
    slots (per authenticated user, else per client address): 429 beyond it."""
    shares = request.app.ctx.wait_shares
    owner = user or client_address(request)
    with shares.hold(owner) as held:
        if not held:
            raise ApiError(
                429,
                "too_many_long_polls",
                f"this {'user' if user else 'address'} holds {shares.limit} long polls "
                "here already (IM_HTTP_MAX_WAITING_PER_USER); retry when one returns",
            )
        body: bytes = await request.app.ctx.rpc.wait(call)
        return body


def client_address(request: Request) -> str:
    """The client's address: from IM_HTTP_REAL_IP_HEADER when configured and present (the
    last of a comma-separated list: what the nearest proxy saw), else the peer's."""
    header = request.app.ctx.settings.real_ip_header
    if header:
        value = request.headers.get(header, "")
        last = value.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return str(request.ip)


@_read_route("/api/chats", ignore_body=False)
async def chats(request: Request) -> HTTPResponse:
    """One page of a user's chats, most recently active first, with unread counts."""
    actor = _acting_user(request)
    params = collect(request)
    user = _own(params, "user", actor)
    cursor = int_param(params, "cursor", 0, 0, INT64_MAX)
    limit = int_param(params, "limit", 0, 0, _INT32_MAX)
    body = await request.app.ctx.rpc.call(ChatsCall(user, cursor, limit, actor))
    return HTTPResponse(body, content_type="application/json")


@bp.post("/api/read")
async def read(request: Request) -> HTTPResponse:
    """Move a member's read position in a chat forward."""
    actor = _acting_user(request)
    params = collect(request)
    chat = text_param(params, "chat")
    user = _own(params, "user", actor)
    send_time = int_param(params, "send_time", None, 0, INT64_MAX)
    body = await request.app.ctx.rpc.call(ReadCall(chat, user, send_time, actor))
    return HTTPResponse(body, content_type="application/json")


@bp.post("/api/edit")
async def edit(request: Request) -> HTTPResponse:
    """The sender replaces the text of one of its messages (it keeps its place)."""
    actor = _acting_user(request)
    params = collect(request)
    chat = text_param(params, "chat")
    sender = _own(params, "sender", actor)
    send_time = int_param(params, "send_time", None, 0, INT64_MAX)
    text = text_param(params, "text")
    body = await request.app.ctx.rpc.call(EditCall(chat, sender, send_time, text, actor))
    return HTTPResponse(body, content_type="application/json")


@bp.post("/api/recall")
async def recall(request: Request) -> HTTPResponse:
    """The sender (or a group's owner) recalls a message: its text is erased, its place kept."""
    actor = _acting_user(request)
    params = collect(request)
    chat = text_param(params, "chat")
    user = _own(params, "user", actor)
    send_time = int_param(params, "send_time", None, 0, INT64_MAX)
    body = await request.app.ctx.rpc.call(RecallCall(chat, user, send_time, actor))
    return HTTPResponse(body, content_type="application/json")


@bp.post("/api/groups")
async def create_group(request: Request) -> HTTPResponse:
    """Create a group; `user` is its owner and only member."""
    return await _group(request, "create")


@bp.post("/api/groups/add")
async def add_member(request: Request) -> HTTPResponse:
    """A member adds `member` to a group."""
    return await _group(request, "add")


@bp.post("/api/groups/remove")
async def remove_member(request: Request) -> HTTPResponse:
    """The owner removes a member, or a member leaves."""
    return await _group(request, "remove")


@_read_route("/api/groups", ignore_body=False)
async def user_groups(request: Request) -> HTTPResponse:
    """The groups a user is a member of, with messages or not."""
    actor = _acting_user(request)
    params = collect(request)
    user = _own(params, "user", actor)
    body = await request.app.ctx.rpc.call(GroupCall("list", "", user, "", actor))
    return HTTPResponse(body, content_type="application/json")


@_read_route("/api/groups/members", ignore_body=False)
async def group_members(request: Request) -> HTTPResponse:
    """A group's owner and members."""
    return await _group(request, "members")


async def _group(request: Request, op: str) -> HTTPResponse:
    actor = _acting_user(request)
    params = collect(request)
    chat = text_param(params, "chat")
    user = member = ""
    if op != "members":
        user = _own(params, "user", actor)
    if op in ("add", "remove"):
        member = text_param(params, "member")
    body = await request.app.ctx.rpc.call(GroupCall(op, chat, user, member, actor))
    return HTTPResponse(body, content_type="application/json")


@_read_route("/healthz")
async def healthz(request: Request) -> HTTPResponse:
    """The process is alive."""
    return _json({"status": "ok"})


@_read_route("/readyz")
async def readyz(request: Request) -> HTTPResponse:
    """Ready when im-rpc answers and reports its store as serving."""
    if await request.app.ctx.rpc.ready():
        return _json({"status": "ready"})
    return json_error(503, "not_ready", "im-rpc reports its store as not serving")


@_read_route("/metrics")
async def metrics(request: Request) -> HTTPResponse:
    """Prometheus metrics of this process."""
    return HTTPResponse(
        request.app.ctx.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8"
    )


@_read_route("/openapi.json")
async def openapi(request: Request) -> HTTPResponse:
    """The OpenAPI document of this API."""
    return HTTPResponse(request.app.ctx.openapi, content_type="application/json")
