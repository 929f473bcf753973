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
    port: int, clients: int, seconds: float
) -> tuple[list[float], list[float], Counter[str]]:
    """Closed-loop senders (100-byte texts, 20 chats); a client told 503 waits 150-350 ms.
    Latencies (s) of accepted and of shed requests, and the answers by kind."""
    accepted: list[float] = []
    shed: list[float] = []
    kinds: Counter[str] = Counter()
    deadline = time.monotonic() + seconds

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
                accepted.append(took)
                kinds["200"] += 1
            else:
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
    base, _, base_kinds = await drive(bounded, BOUND, 3)
    assert set(base_kinds) == {"200"}
    for factor in (2, 16):
        accepted, shed, kinds = await drive(bounded, BOUND * factor, 3)
        report(
            f"{BOUND * factor} clients (bound {BOUND}): {dict(kinds)}; p99 accepted "
            f"{p99(accepted) * 1000:.1f} ms (at {BOUND} clients {p99(base) * 1000:.1f} ms), "
            f"p99 shed {p99(shed) * 1000:.1f} ms (median {statistics.median(shed) * 1000:.1f})"
        )
        assert set(kinds) == {"200", "503 overloaded retry-after=1"}
    queued, _, kinds = await drive(unbounded, BOUND * 16, 3)
    report(f"{BOUND * 16} clients, no bound: {dict(kinds)}; p99 {p99(queued) * 1000:.1f} ms")
    # without the bound every extra client waits in line; with it, neither the accepted
    # requests nor the shed ones do (measured p99s: accepted 6-9 ms, about 1.5x the
    # 16-client p99 and 0.2x the queued one; shed 15-25 ms; queued 35-38 ms). The shed
    # answers are compared by their median: their p99 is a few answers of a few seconds'
    # run, and a spike of the machine's other work (the tests run in parallel) once put it
    # at 48 ms against the queued 36
    assert p99(accepted) < p99(queued) * 0.5
    assert p99(accepted) < p99(base) * 3 + 0.005
    assert statistics.median(shed) < statistics.median(queued) * 0.5
