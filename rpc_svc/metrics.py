"""Prometheus metrics of one im-rpc process, on IM_RPC_METRICS_PORT (0, the default: none).

Read at scrape time, in the thread of prometheus_client's own HTTP server: the batches in
flight, the long polls (pulls and syncs) waiting against IM_RPC_MAX_WAITING, the wake-up
channels subscribed, the sync answers kept for their next waits and the reads they saved,
the calls that failed on im-rpc's side by code, and the garbage collector's work. Nothing is
counted on the hot path for them; what the thread reads are numbers and lengths, whole
values while the event loop changes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, GCCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rpc_svc.edge.servicer import FailureLog, InFlight
from rpc_svc.store.wakeups import Wakeups


class SyncCounts(Protocol):
    """What the metrics read of the waiting syncs (rpc_svc.service.sync.SyncWaits)."""

    skipped_at_start: int
    skipped_at_end: int

    @property
    def quiet_kept(self) -> int: ...


class Waits(Protocol):
    """What the metrics read of the chat service (rpc_svc.service.runner.ChatService)."""

    @property
    def waiting(self) -> int: ...

    @property
    def syncs(self) -> SyncCounts: ...


class _Collector(Collector):
    def __init__(
        self,
        service: Waits,
        in_flight: InFlight,
        wakeups: Wakeups,
        failures: FailureLog,
        max_waiting: int,
    ) -> None:
        self._service = service
        self._in_flight = in_flight
        self._wakeups = wakeups
        self._failures = failures
        self._max_waiting = max_waiting

    def collect(self) -> Iterator[Metric]:
        syncs = self._service.syncs
        yield GaugeMetricFamily(
            "im_rpc_batches_in_flight", "Batches of calls being answered", self._in_flight.count
        )
        yield GaugeMetricFamily(
            "im_rpc_long_polls_waiting",
            "Long polls (pulls and syncs) waiting",
            self._service.waiting,
        )
        yield GaugeMetricFamily(
            "im_rpc_long_polls_waiting_max",
            "Long polls allowed (IM_RPC_MAX_WAITING)",
            self._max_waiting,
        )
        yield GaugeMetricFamily(
            "im_rpc_wakeup_channels",
            "Wake-up channels subscribed (dropped a few seconds after their last waiter)",
            self._wakeups.subscribed,
        )
        yield GaugeMetricFamily(
            "im_rpc_sync_answers_kept",
            "Sync answers that left nothing to read, kept for their token's next wait",
            syncs.quiet_kept,
        )
        skipped = CounterMetricFamily(
            "im_rpc_sync_reads_skipped",
            "Sync reads not made: at a wait's start (its token's answer kept), at its end "
            "(its last read's page given again)",
            labels=["at"],
        )
        skipped.add_metric(["start"], syncs.skipped_at_start)
        skipped.add_metric(["end"], syncs.skipped_at_end)
        yield skipped
        failed = CounterMetricFamily(
            "im_rpc_failed_calls",
            "Calls that failed on im-rpc's side (logged), by error code",
            labels=["code"],
        )
        for code, count in list(self._failures.counts.items()):
            failed.add_metric([code], count)
        yield failed


def registry(
    service: Waits,
    in_flight: InFlight,
    wakeups: Wakeups,
    failures: FailureLog,
    max_waiting: int,
) -> CollectorRegistry:
    """A registry of im-rpc's metrics, read from these objects at scrape time."""
    metrics = CollectorRegistry()
    GCCollector(registry=metrics)  # python_gc_collections_total by generation
    metrics.register(_Collector(service, in_flight, wakeups, failures, max_waiting))
    return metrics


def serve_metrics(host: str, port: int, metrics: CollectorRegistry) -> WSGIServer:
    """Serve `metrics` (Prometheus text, any path) on `host`:`port` from a thread of its own
    until `stop_metrics`."""
    server, _ = start_http_server(port, host, metrics)
    return server


async def stop_metrics(server: WSGIServer) -> None:
    """Stop serving the metrics and close the listening socket."""
    await asyncio.to_thread(server.shutdown)
    server.server_close()
