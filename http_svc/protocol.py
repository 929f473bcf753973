"""The gateway's HTTP protocol and request: Sanic's, with timeouts a slow client cannot stretch.

Sanic measures its request timeout from the last bytes received, so a client that
trickles its headers a byte at a time (slowloris) holds a connection for as long as it
likes. Here the timeout counts from the first byte of the request: the whole head must
arrive within IM_HTTP_REQUEST_TIMEOUT_S, or the client gets 408 and is disconnected.

A body gets the same: it must arrive within IM_HTTP_BODY_TIMEOUT_S of the end of the head
(a Content-Length never met, a chunked body never finished), or the client gets 408 and
is disconnected. Sanic alone would answer 503 after its response timeout and then wait
for the rest of the body forever, holding the socket.
"""

from __future__ import annotations

import asyncio
from typing import cast

from sanic import Request
from sanic.exceptions import RequestTimeout
from sanic.http import Http
from sanic.http.constants import Stage
from sanic.server.protocols.http_protocol import HttpProtocol


class WholeRequestTimeout(HttpProtocol):
    """HttpProtocol whose request timeout runs from a request's first byte."""

    def data_received(self, data: bytes) -> None:
        http = getattr(self, "_http", None)
        receiving = http is not None and http.stage is Stage.REQUEST
        started = self._time
        super().data_received(data)
        if receiving:
            self._time = started  # not pushed back by every trickled byte


class BoundedBodyRequest(Request):
    """A Request whose body must arrive within `body_timeout_s` (a class setting)."""

    body_timeout_s = 10.0

    async def receive_body(self) -> None:
        """Receive the body; 408 and no more reading from this connection past the timeout."""
        http = cast(Http | None, self.stream)
        if self.body or http is None:
            return
        state: object = http.request_body  # True: by Content-Length; "chunked"
        left = http.request_bytes_left
        if state is True and left is not None and len(http.recv_buffer) >= left:
            await super().receive_body()  # type: ignore[no-untyped-call]  # all here: no timer
            return
        try:
            async with asyncio.timeout(self.body_timeout_s):
                await super().receive_body()  # type: ignore[no-untyped-call]
        except TimeoutError:
            http.request_body = None  # Sanic would otherwise wait to drain the rest
            http.keep_alive = False
            raise RequestTimeout(
                f"the request body did not arrive within {self.body_timeout_s:g} s"
            ) from None


def bounded_body_request(body_timeout_s: float) -> type[BoundedBodyRequest]:
    """The request class of an app whose bodies must arrive within `body_timeout_s`."""
    return type("Request", (BoundedBodyRequest,), {"body_timeout_s": body_timeout_s})
