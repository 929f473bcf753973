"""The interleaved rounds every comparison runs: each round measures every side once, in an
order that alternates from round to round (A B, then B A, ...), so that a machine that slows
down for a while weighs on every side alike; a figure is the median of its rounds."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")
V = TypeVar("V")


def interleaved(
    rounds: int,
    sides: Sequence[T],
    scenarios: Sequence[Any] = ("",),
    *,
    rotate: bool = False,
) -> Iterator[tuple[int, Any, T]]:
    """(round, scenario, side) in the order to measure them: each round runs every scenario
    on every side, the sides' order reversed every other round (or, with `rotate`, turned by
    one each round: for more than two sides, each goes first in turn)."""
    for r in range(rounds):
        if rotate:
            order = list(sides[r % len(sides) :]) + list(sides[: r % len(sides)])
        else:
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
        for scenario in scenarios:
            for side in order:
                yield r, scenario, side


class Samples(Generic[V]):
    """Figures by key (a side, a scenario, ...), each a list over the rounds."""

    def __init__(self) -> None:
        self.by_key: dict[Hashable, list[V]] = {}

    def add(self, key: Hashable, value: V) -> None:
        """One round's figure of `key`."""
        self.by_key.setdefault(key, []).append(value)

    def rounds(self, key: Hashable) -> list[V]:
        """`key`'s figures, in the order the rounds ran."""
        return self.by_key[key]

    def median(self, key: Hashable, of: Callable[[V], float] | None = None) -> float:
        """The median of `key`'s rounds (of what `of` reads from each, when they are not
        numbers themselves)."""
        runs = self.by_key[key]
        values = [of(run) for run in runs] if of else runs
        return float(statistics.median(values))  # type: ignore[type-var,arg-type]

    def ratio(
        self, top: Hashable, bottom: Hashable, of: Callable[[V], float] | None = None
    ) -> float:
        """The median over the rounds of each round's `top / bottom` (of what `of` reads from
        each, when they are not numbers themselves; the two keys measured in the same rounds,
        in the same order)."""
        pairs = zip(self.by_key[top], self.by_key[bottom], strict=True)
        read = of or cast(Callable[[V], float], float)
        return float(statistics.median(read(t) / read(b) for t, b in pairs))


def log(prefix: str, text: str) -> None:
    """A progress line on stderr: `[prefix] text`."""
    print(f"[{prefix}] {text}", file=sys.stderr, flush=True)
