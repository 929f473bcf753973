"""What the gateway records of every request: request id, metrics, the access log.

Every request gets an id: the client's (or nginx's) `X-Request-ID` when it is a
plausible one, else a new one. It is returned in the `X-Request-ID` response header,
set as the logging context (every log line of the request carries it) and passed to
im-rpc with the call. Each request is timed and counted in the metrics by route,
method and status. The access log, when on, is one JSON line per request: method,
route, status, duration, request id; never parameters or bodies.

One request and one response middleware do it all: each middleware Sanic runs costs
a few microseconds per request (measured: two more took 20% off /ping).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from typing import Any

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

from http_svc.metrics import Metrics
from im_common.logs import request_id, valid_request_id

HEADER = "X-Request-ID"
access = logging.getLogger("im.access")


def install(app: Sanic[Any, Any], metrics: Metrics, access_log: bool) -> None:
    """Give every request of `app` an id, time and count it, log it when `access_log`."""
    prefix = secrets.token_hex(8)  # ids made here: unique per process, then a counter
    numbers = itertools.count(1)

    async def assign(request: Request) -> None:
        request.ctx.started = time.perf_counter()
        given = request.headers.get(HEADER)
        rid = given if given is not None and valid_request_id(given) else None
        if rid is None:
            rid = f"{prefix}{next(numbers):016x}"
        request.ctx.request_id = rid
        request_id.set(rid)

    async def record(request: Request, response: BaseHTTPResponse) -> None:
        started = getattr(request.ctx, "started", None)
        if started is None:  # refused before the request middleware ran
            return
        response.headers[HEADER] = request.ctx.request_id
        route = "/" + (request.route.path if request.route else "unmatched").lstrip("/")
        seconds = time.perf_counter() - started
        metrics.observe_request(route, request.method, response.status, seconds)
        if access_log:
            access.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status,
                    "ms": round(seconds * 1000, 2),
                },
            )

    app.register_middleware(assign, "request")
    app.register_middleware(record, "response")
