"""Tasks started now and tasks stopped for good.

`cancel_and_wait(task)` cancels a background task and waits until it has ended.

`start_now(coro)` starts a task in the caller's step: Python 3.12's eager tasks, for 3.11
too. `asyncio.create_task` runs nothing until the loop's next turn, behind every callback
already queued. `start_now(coro)` runs the new task's first step at once, up to its first
real suspension (often to the end), as a 3.12 `asyncio.Task(..., eager_start=True)` does.
The gateway uses it to write a full batch to im-rpc while the handlers of the same loop
turn are still to run.

During that first step the new task is the current task, as in any step of a task:
`asyncio.timeout`, cancellation and libraries that note the current task (grpclib does)
see the task they run in. On 3.11 this takes asyncio's own `_enter_task`/`_leave_task`,
which every task step calls; on 3.12 and later the standard eager start is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (None: nothing to stop) and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


_PENDING = object()  # the first step has not run yet


def start_now(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task of `coro` whose first step has run before this returns (on 3.11 a coroutine
    that finished in it is reported done by the task's own first step, in the next turn)."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    eager = _Eager(coro)
    task = loop.create_task(eager)
    caller = asyncio.current_task(loop)
    if caller is not None:
        asyncio.tasks._leave_task(loop, caller)
    asyncio.tasks._enter_task(loop, task)
    try:
        eager.first_step()
    finally:
        asyncio.tasks._leave_task(loop, task)
        if caller is not None:
            asyncio.tasks._enter_task(loop, caller)
    return task


class _Eager(Coroutine[Any, Any, T]):
    """`coro` for its task, once its first step has run outside of the task's own steps:
    the task's first step gives what that step came to (what it waits on, its result or
    its error); later steps go straight to `coro`."""

    __slots__ = ("_coro", "_first", "_outcome", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self._first = True
        self._waiting_on: Any = None
        self._outcome: Any = _PENDING

    def first_step(self) -> None:
        try:
            self._waiting_on = self._coro.send(None)
        except BaseException as exc:  # StopIteration (done) or its error: the task gives it
            self._outcome = exc

    def _taken(self) -> Any:
        self._first = False
        if self._outcome is not _PENDING:
            outcome, self._outcome = self._outcome, None
            raise outcome
        return self._waiting_on

    def send(self, value: Any) -> Any:
        if self._first:
            return self._taken()
        return self._coro.send(value)

    def throw(self, *exc: Any) -> Any:
        if self._first and self._outcome is not _PENDING:
            return self._taken()  # it has finished already: its outcome stands
        self._first = False
        return self._coro.throw(*exc)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, T]:
        return self  # type: ignore[return-value]  # an iterator with send and throw, as await wants

    def __next__(self) -> Any:
        return self.send(None)
