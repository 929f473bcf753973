"""Prometheus metrics of one gateway process: requests by route and status, RPC latency."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The gateway's metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "im_http_requests_total",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "im_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route", "method", "status"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.rpc_latency = Histogram(
            "im_rpc_call_duration_seconds",
            "Time of a call to im-rpc, by method and gRPC outcome",
            ["method", "outcome"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.batch_calls = Histogram(
            "im_rpc_batch_calls",
            "Calls coalesced into one Batch RPC",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one answered HTTP request."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:  # labels() costs more than the observation itself: cache it
            labels = (route, method, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_rpc(self, method: str, outcome: str, seconds: float) -> None:
        """Record one call to im-rpc."""
        self.rpc_latency.labels(method, outcome).observe(seconds)

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)


def install(app: Sanic[Any, Any], metrics: Metrics) -> None:
    """Time every request of `app` and count it by route, method and status."""

    async def start_timer(request: Request) -> None:
        request.ctx.started = time.perf_counter()

    async def record(request: Request, response: BaseHTTPResponse) -> None:
        started = getattr(request.ctx, "started", None)
        if started is None:
            return
        route = request.route.path if request.route else "unmatched"
        metrics.observe_request(
            "/" + route.lstrip("/"),
            request.method,
            response.status,
            time.perf_counter() - started,
        )

    app.register_middleware(start_timer, "request")
    app.register_middleware(record, "response")
