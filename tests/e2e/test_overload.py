"""Overload: past IM_HTTP_MAX_IN_FLIGHT a gateway sheds with a fast 503 + Retry-After, and
the requests it accepts keep their latency instead of queueing."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.procs import start_trio
from devtools.rawhttp import Connection

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
BOUND = 16
ROUNDS = 3  # of the bounded and unbounded gateways side by side
ROUND_S, RAMP_S = 2.0, 0.5  # each drive's measured seconds, after its ramp


@pytest.fixture
def gateways(workdir: Path) -> Iterator[tuple[int, int]]:
    """Two gateways on one im-rpc: bounded at BOUND calls in flight, and unbounded."""
    bounds = [{"IM_HTTP_MAX_IN_FLIGHT": str(BOUND)}, {"IM_HTTP_MAX_IN_FLIGHT": "1000000"}]
    trio = start_trio(workdir, gateways=bounds)
    yield trio.gateways[0].port, trio.gateways[1].port
    trio.stop()


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


async def drive(
    port: int, clients: int, seconds: float, ramp: float = 0.0
) -> tuple[list[float], list[float], Counter[str]]:
    """Closed-loop senders (100-byte texts, 20 chats); a client told 503 waits 150-350 ms.
    Latencies (s) of accepted and of shed requests started after the first `ramp` seconds
    (the clients' connections and first requests all land at once: not the steady state),
    and all the answers by kind."""
    accepted: list[float] = []
    shed: list[float] = []
    kinds: Counter[str] = Counter()
    measured = time.monotonic() + ramp
    deadline = measured + seconds

    async def client(c: int) -> None:
        conn = await Connection.open(port)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            body = {"chat": f"o{c % 20}:p", "sender": "p", "text": f"{c}-{n}".ljust(100)}
            started = time.monotonic()
            r = await conn.post_json("/api/send", body)
            took = time.monotonic() - started
            if r.status == 200:
                if started >= measured:
                    accepted.append(took)
                kinds["200"] += 1
            else:
                if started >= measured:
                    shed.append(took)
                error = r.json()["error"]  # type: ignore[index]
                kinds[f"{r.status} {error} retry-after={r.headers.get('retry-after')}"] += 1
                await asyncio.sleep(random.uniform(0.15, 0.35))
        await conn.close()

    await asyncio.gather(*(client(c) for c in range(clients)))
    return accepted, shed, kinds


async def test_past_the_bound_the_gateway_sheds_and_accepted_latency_stays(
    gateways: tuple[int, int], report: Callable[[str], None]
) -> None:
    bounded, unbounded = gateways
    await drive(bounded, BOUND, 1)  # warm-up
    _, _, kinds = await drive(bounded, BOUND * 2, 2)
    report(f"{BOUND * 2} clients (bound {BOUND}): {dict(kinds)}")
    assert set(kinds) == {"200", "503 overloaded retry-after=1"}
    # without the bound every extra client waits in line; with it, neither the accepted
    # requests nor the shed ones do (measured p99s, the test alone: accepted 22-26 ms, about
    # 1.8x the 16-client p99 and 0.25x the queued one; shed 9 ms, median 3; queued 92-100 ms;
    # with two busy loops on the two cores, accepted 0.33-0.39x the queued). Each round
    # measures the three side by side, and the rounds' medians are compared: a burst of the
    # other test worker's load (two cores) lands in one round, not in all. The shed answers
    # are compared by their median: their p99 is a few answers of a run
    to_queued: list[float] = []
    to_base: list[float] = []
    shed_to_queued: list[float] = []
    for r in range(ROUNDS):
        base, _, base_kinds = await drive(bounded, BOUND, ROUND_S, RAMP_S)
        assert set(base_kinds) == {"200"}
        order = [("bounded", bounded), ("unbounded", unbounded)]
        if r % 2:
            order.reverse()
        runs = {name: await drive(port, BOUND * 16, ROUND_S, RAMP_S) for name, port in order}
        accepted, shed, kinds = runs["bounded"]
        queued, _, queued_kinds = runs["unbounded"]
        assert set(kinds) == {"200", "503 overloaded retry-after=1"}
        assert set(queued_kinds) == {"200"}
        report(
            f"round {r + 1}, {BOUND * 16} clients: bound {BOUND} {dict(kinds)}, p99 accepted "
            f"{p99(accepted) * 1000:.1f} ms (at {BOUND} clients {p99(base) * 1000:.1f} ms), "
            f"shed p99 {p99(shed) * 1000:.1f} ms (median {statistics.median(shed) * 1000:.1f}); "
            f"no bound p99 {p99(queued) * 1000:.1f} ms "
            f"(median {statistics.median(queued) * 1000:.1f})"
        )
        to_queued.append(p99(accepted) / p99(queued))
        to_base.append(p99(accepted) / (p99(base) * 3 + 0.005))
        shed_to_queued.append(statistics.median(shed) / statistics.median(queued))
    assert statistics.median(to_queued) < 0.5, to_queued
    assert statistics.median(to_base) < 1, to_base
    assert statistics.median(shed_to_queued) < 0.5, shed_to_queued
