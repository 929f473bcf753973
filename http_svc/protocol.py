"""The gateway's HTTP protocol: Sanic's, with a request timeout that a slow client cannot stretch.

Sanic measures its request timeout from the last bytes received, so a client that
trickles its headers a byte at a time (slowloris) holds a connection for as long as it
likes. Here the timeout counts from the first byte of the request: the whole head must
arrive within IM_HTTP_REQUEST_TIMEOUT_S, or the client gets 408 and is disconnected.
"""

from __future__ import annotations

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
