"""The token bucket behind IM_HTTP_SENDER_RATE."""

from __future__ import annotations

import pytest

from http_svc.rate_limit import RateLimiter, retry_after


def test_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.allow("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.allow("a", now=0.0) == pytest.approx(0.5)  # next token in 0.5 s
    assert limiter.allow("b", now=0.0) == 0.0  # keys are independent
    assert limiter.allow("a", now=0.5) == 0.0
    assert limiter.allow("a", now=0.5) > 0
    assert [limiter.allow("a", now=10.0) for _ in range(4)][:3] == [0.0, 0.0, 0.0]  # refilled


def test_idle_keys_are_forgotten_when_the_table_is_full() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=10)
    for i in range(10):
        limiter.allow(f"k{i}", now=0.0)
    limiter.allow("late", now=5.0)  # 11 keys: the ten refilled ones go
    assert limiter.allow("k0", now=5.0) == 0.0
    assert limiter.allow("late", now=5.0) > 0  # the recent one is remembered


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2")])
def test_retry_after_is_whole_seconds(wait: float, header: str) -> None:
    assert retry_after(wait) == header
