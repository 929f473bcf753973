"""OneTrip without a store: a trip that fails fails each of its callers, and the operations
of one turn go together (the store's side: tests/integration/test_one_trip.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from rpc_svc.service.one_trip import OneTrip


async def test_a_trip_that_fails_fails_each_of_its_callers() -> None:
    async def broken(ops: Sequence[Any]) -> list[Any]:
        raise RuntimeError(f"{len(ops)} operations and no store")

    trip = OneTrip(broken)
    ops: list[Any] = ["a", "b"]  # (never read: no store)
    done = await asyncio.gather(*(trip.one(op) for op in ops), return_exceptions=True)
    assert [str(e) for e in done] == ["2 operations and no store"] * 2


async def test_the_operations_of_one_turn_go_together_and_a_later_one_alone() -> None:
    sent: list[list[Any]] = []

    async def echo(ops: Sequence[Any]) -> list[Any]:
        sent.append(list(ops))
        return [f"<{op}>" for op in ops]

    trip = OneTrip(echo)
    ops: list[Any] = list("xyzw")
    assert await asyncio.gather(*(trip.one(op) for op in ops[:3])) == ["<x>", "<y>", "<z>"]
    assert await trip.one(ops[3]) == "<w>"
    assert sent == [["x", "y", "z"], ["w"]]
    assert trip.trips == 2
