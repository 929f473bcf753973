"""A call made ready for the store: the operation to run, and how its outcome answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from rpc_svc.store.ops import Op


class Planned(NamedTuple):
    """`op` for the store; `answer(context, op, outcome)` is the call's result."""

    op: Op
    answer: Callable[[Any, Any, Any], Any]
    context: Any = None
