"""The throughput targets compare each round's run with the same round's /ping."""

from __future__ import annotations

import pytest

from perf.report import round_ratios
from perf.wrk import WrkResult


def _run(scenario: str, rps: float, connections: int = 64) -> WrkResult:
    return WrkResult(scenario, connections, rps, 1.0, 2.0, 3.0, 4.0, 5.0, int(rps))


def test_each_round_is_divided_by_its_own_ping_in_the_order_run() -> None:
    # the machine halves its speed in round 2: each ratio stays 0.5, the medians' would not
    rounds = [
        _run("ping", 20_000), _run("send", 10_000), _run("pull10", 11_000),
        _run("ping", 10_000), _run("send", 5_000), _run("pull10", 6_000),
        _run("ping", 16_000), _run("send", 8_000), _run("pull10", 9_600),
    ]  # fmt: skip
    assert round_ratios(rounds, "send", 64) == [0.5, 0.5, 0.5]
    assert round_ratios(rounds, "pull10", 64) == pytest.approx([0.55, 0.6, 0.6])


def test_other_concurrencies_are_not_mixed_in() -> None:
    rounds = [_run("ping", 20_000, 20), _run("send", 4_000, 20), _run("ping", 10_000)]
    rounds.append(_run("send", 7_000))
    assert round_ratios(rounds, "send", 64) == [0.7]
    assert round_ratios(rounds, "send", 20) == [0.2]
    assert round_ratios(rounds, "send", 256) == []
