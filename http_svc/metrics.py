"""Prometheus metrics of one gateway process: requests by route and status, RPC latency,
the live im-rpc instances, the calls in flight and long polls waiting against their bounds,
the garbage collector's work (IM_GC_THRESHOLD)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from http_svc.rpc_client import RpcClient

_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# HTTP methods counted by name; any other (a client may send any token) counts as "other"
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)
OTHER = "other"


class Metrics:
    """The gateway's metrics, in a registry of their own (one per app). Request labels come
    from clients, so they are bounded: unknown methods count as "other", and past
    `max_series` label sets a new one counts as route and method "other"."""

    def __init__(self, max_series: int = 1000) -> None:
        self._max_series = max_series
        self.registry = CollectorRegistry()
        GCCollector(registry=self.registry)  # python_gc_collections_total by generation
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
        self.retries = Counter(
            "im_rpc_retries_total",
            "Calls to im-rpc retried on another instance after UNAVAILABLE",
            ["method"],
            registry=self.registry,
        )
        self.denied = Counter(
            "im_http_auth_denied_total",
            "Requests refused for authentication (401) or authorization (403), by reason",
            ["status", "reason"],
            registry=self.registry,
        )
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
            if method not in METHODS:
                method = OTHER
            if len(self._request_children) >= self._max_series:
                route = method = OTHER
            key = (route, method, status)
            children = self._request_children.get(key)
        if children is None:
            labels = (route, method, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_denied(self, status: int, reason: str) -> None:
        """Record one 401 or 403 (`reason` comes from the code: a bounded set of values)."""
        self.denied.labels(str(status), reason or "other").inc()

    def observe_rpc(self, method: str, outcome: str, seconds: float) -> None:
        """Record one call to im-rpc."""
        self.rpc_latency.labels(method, outcome).observe(seconds)

    def observe_retry(self, method: str) -> None:
        """Record one call retried on another instance."""
        self.retries.labels(method).inc()

    def watch_rpc(self, client: RpcClient) -> None:
        """Export, read from `client` at scrape time, its live im-rpc instances and the calls
        each has taken, and its calls in flight and long polls waiting with their bounds."""
        self.registry.register(_RpcCollector(client))

    def render(self) -> bytes:
        """The metrics in Prometheus text format."""
        return generate_latest(self.registry)


class _RpcCollector(Collector):
    """Reads the client at scrape time: nothing is counted twice on the hot path."""

    def __init__(self, client: RpcClient) -> None:
        self._client = client

    def collect(self) -> Iterator[Metric]:
        in_flight, in_flight_max = self._client.in_flight
        waiting, waiting_max = self._client.waiting
        yield GaugeMetricFamily(
            "im_http_calls_in_flight", "Calls to im-rpc in flight (long polls aside)", in_flight
        )
        yield GaugeMetricFamily(
            "im_http_calls_in_flight_max",
            "Calls in flight allowed (IM_HTTP_MAX_IN_FLIGHT)",
            in_flight_max,
        )
        yield GaugeMetricFamily(
            "im_http_long_polls_waiting", "Long polls (pulls and syncs) waiting", waiting
        )
        yield GaugeMetricFamily(
            "im_http_long_polls_waiting_max",
            "Long polls allowed (IM_HTTP_MAX_WAITING)",
            waiting_max,
        )
        instances = self._client.pool.instances
        yield GaugeMetricFamily("im_rpc_instances", "Live im-rpc instances", len(instances))
        calls = CounterMetricFamily(
            "im_rpc_instance_calls", "Calls sent to each live im-rpc instance", labels=["addr"]
        )
        for instance in instances:
            calls.add_metric([instance.addr], instance.calls)
        yield calls
