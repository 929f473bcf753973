"""The gateway's request metrics stay bounded whatever methods and paths clients send."""

from __future__ import annotations

from http_svc.metrics import Metrics


def _series(metrics: Metrics) -> list[str]:
    text = metrics.render().decode()
    return [line for line in text.splitlines() if line.startswith("im_http_requests_total{")]


def test_made_up_methods_count_as_other() -> None:
    metrics = Metrics()
    for i in range(500):
        metrics.observe_request("/unmatched", f"X{i}", 405, 0.001)
    metrics.observe_request("/api/pull", "GET", 200, 0.001)
    assert _series(metrics) == [
        'im_http_requests_total{method="other",route="/unmatched",status="405"} 500.0',
        'im_http_requests_total{method="GET",route="/api/pull",status="200"} 1.0',
    ]


def test_label_sets_past_the_bound_count_as_other() -> None:
    metrics = Metrics(max_series=10)
    for i in range(50):
        metrics.observe_request(f"/r{i}", "POST", 200 + i % 2, 0.001)
    series = _series(metrics)
    assert len(series) == 12  # the first ten, then one per status
    assert series[:2] == [
        'im_http_requests_total{method="POST",route="/r0",status="200"} 1.0',
        'im_http_requests_total{method="POST",route="/r1",status="201"} 1.0',
    ]
    assert series[10:] == [
        'im_http_requests_total{method="other",route="other",status="200"} 20.0',
        'im_http_requests_total{method="other",route="other",status="201"} 20.0',
    ]
    metrics.observe_request("/r3", "POST", 201, 0.001)  # a known label set keeps its own
    assert 'im_http_requests_total{method="POST",route="/r3",status="201"} 2.0' in _series(metrics)
