"""Errors of the gateway and their one JSON shape: {"error": code, "message": text}.

    ApiError       an answer decided by the gateway (bad input: 4xx)
    └── auth.Unauthenticated   401: no usable bearer token
    RpcFailure     a failed call to im-rpc, carrying its gRPC status

`RPC_TO_HTTP` is the one table from gRPC status to HTTP status; `JsonErrorHandler`
renders every error, Sanic's own (404, 405, 413, ...) included.
"""

from __future__ import annotations

import logging
import re

import orjson
from grpclib import GRPCError
from grpclib.const import Status
from grpclib.exceptions import ProtocolError, StreamTerminatedError
from sanic import HTTPResponse, Request
from sanic.exceptions import PayloadTooLarge, RequestCancelled, SanicException
from sanic.handlers import ErrorHandler

log = logging.getLogger(__name__)

RPC_TO_HTTP: dict[Status, tuple[int, str]] = {
    Status.INVALID_ARGUMENT: (400, "invalid_argument"),
    Status.PERMISSION_DENIED: (403, "forbidden"),
    Status.NOT_FOUND: (404, "not_found"),
    Status.ALREADY_EXISTS: (409, "conflict"),
    Status.UNAVAILABLE: (503, "rpc_unavailable"),
    Status.DEADLINE_EXCEEDED: (504, "rpc_timeout"),
    Status.RESOURCE_EXHAUSTED: (503, "overloaded"),
    Status.OUT_OF_RANGE: (410, "gone"),
}
_UPSTREAM_ERROR = (502, "upstream_error")
RETRY_AFTER_S = "1"  # seconds, on every 503 and 429
_CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")  # a machine code: invalid_utf8

_SANIC_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "service_unavailable",
}


class ApiError(Exception):
    """An error answer: HTTP status, machine code, a message naming the field, for a 429
    or 503 the Retry-After value (default RETRY_AFTER_S), for a 401 or 403 the `reason`
    it is counted under in the metrics, and any other headers of the answer."""

    headers: dict[str, str] = {}  # noqa: RUF012 (never changed: subclasses set their own)

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: str = RETRY_AFTER_S,
        *,
        reason: str = "",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.reason = reason


class RpcFailure(Exception):
    """A call to im-rpc that did not succeed; `connection` when its connection failed."""

    def __init__(self, status: Status, message: str, *, connection: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.connection = connection

    def to_api_error(self) -> ApiError:
        """The HTTP answer for this failure; im-rpc's "<code>: <text>" messages keep their code."""
        http_status, code = RPC_TO_HTTP.get(self.status, _UPSTREAM_ERROR)
        head, sep, tail = self.message.partition(": ")
        if sep and _CODE.fullmatch(head):
            code, message = head, tail
        else:
            message = self.message or self.status.name.lower()
        # a 403 of im-rpc: a rule only it can check (membership)
        reason = "im_rpc" if self.status is Status.PERMISSION_DENIED else ""
        return ApiError(http_status, code, message, reason=reason)


# What a call to im-rpc may raise besides a deadline: an error status or a broken connection.
RPC_ERRORS = (GRPCError, OSError, StreamTerminatedError, ProtocolError)


def rpc_failure(exc: BaseException) -> RpcFailure:
    """The RpcFailure for one of RPC_ERRORS: its status, or UNAVAILABLE for the connection."""
    if isinstance(exc, GRPCError):
        return RpcFailure(exc.status, exc.message or "")
    return RpcFailure(
        Status.UNAVAILABLE, f"rpc_unavailable: im-rpc cannot be reached: {exc}", connection=True
    )


def json_error(
    status: int,
    code: str,
    message: str,
    retry_after: str = RETRY_AFTER_S,
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    """The JSON error response every failure is rendered as; a 503 or 429 says when to retry."""
    body = orjson.dumps({"error": code, "message": message})
    headers = dict(headers or {})
    if status in (429, 503):
        headers["Retry-After"] = retry_after
    return HTTPResponse(body, status=status, headers=headers, content_type="application/json")


class JsonErrorHandler(ErrorHandler):
    """Renders every exception as the JSON error shape. With authentication on, a 4xx of
    an /api/ route that came before the token was checked (an unknown route, a method
    not allowed, a body too large) is a 401 when the token is not valid: a 401 comes first.
    401s and 403s are counted by reason."""

    def default(self, request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, RequestCancelled):  # the client went away: nobody to answer
            return json_error(499, "client_closed_request", "the client closed the connection")
        if isinstance(exception, RpcFailure):
            exception = exception.to_api_error()
        exception = _unauthenticated_first(request, exception)
        if isinstance(exception, ApiError):
            if exception.status in (401, 403):
                request.app.ctx.metrics.observe_denied(exception.status, exception.reason)
            return json_error(
                exception.status,
                exception.code,
                exception.message,
                exception.retry_after,
                exception.headers,
            )
        if isinstance(exception, SanicException):
            status, message = exception.status_code, str(exception)
            code = _SANIC_CODES.get(status, "http_error")
            if isinstance(exception, PayloadTooLarge) and "header" in message:
                # Sanic says 413 for a head over REQUEST_MAX_HEADER_SIZE: 431 is the status
                status, code, message = 431, "header_too_large", "the request head is too large"
            response = json_error(status, code, message)
            for name, value in (exception.headers or {}).items():  # Allow of a 405
                response.headers[name] = value
            return response
        log.error("unhandled error: %s", exception, exc_info=exception)
        return json_error(500, "internal_error", "the gateway failed to handle the request")


def _unauthenticated_first(request: Request | None, exception: Exception) -> Exception:
    """The 401 to answer instead of `exception`, when it is another 4xx of an /api/ route
    raised before the route checked the token, and the token is not valid."""
    status = getattr(exception, "status", None) or getattr(exception, "status_code", None) or 0
    if request is None or not 400 <= status < 500 or status == 401:
        return exception
    auth = request.app.ctx.auth
    if auth is None or hasattr(request.ctx, "user") or not request.path.startswith("/api/"):
        return exception
    try:
        request.ctx.user = auth.user_of(request.headers.get("authorization"))
    except ApiError as unauthenticated:
        return unauthenticated
    return exception
