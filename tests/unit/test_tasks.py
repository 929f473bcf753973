"""start_now (a first step run in the caller's step, as a task's step) and cancel_and_wait."""

from __future__ import annotations

import asyncio

import pytest

from im_common.tasks import _Eager, cancel_and_wait, start_now


async def test_the_first_step_runs_before_start_now_returns() -> None:
    steps: list[str] = []

    async def work() -> str:
        steps.append("first")
        await asyncio.sleep(0)
        steps.append("rest")
        return "done"

    task = start_now(work())
    assert steps == ["first"]
    assert await task == "done"
    assert steps == ["first", "rest"]


async def test_a_coroutine_that_never_waits_runs_to_its_end_at_once() -> None:
    runs: list[int] = []

    async def quick() -> int:
        runs.append(1)
        return 7

    task = start_now(quick())
    assert runs == [1]  # on 3.11 the task itself reports it at its first step
    assert await task == 7
    assert runs == [1]


async def test_the_new_task_is_the_current_task_during_its_first_step() -> None:
    caller = asyncio.current_task()
    seen: list[asyncio.Task[object] | None] = []

    async def work() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    task = start_now(work())
    assert asyncio.current_task() is caller
    await task
    assert seen == [task, task]


async def test_it_starts_from_a_plain_callback_too() -> None:
    loop = asyncio.get_running_loop()
    started: asyncio.Future[asyncio.Task[str]] = loop.create_future()

    async def work() -> str:
        await asyncio.sleep(0)
        return "from a callback"

    loop.call_soon(lambda: started.set_result(start_now(work())))
    task = await started
    assert asyncio.current_task() is not task
    assert await task == "from a callback"


async def test_a_timeout_entered_in_the_first_step_cancels_the_new_task_only() -> None:
    async def slow() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(5)

    task = start_now(slow())
    with pytest.raises(TimeoutError):
        await task
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def _sleeps(cleaned: list[str]) -> None:
    """Sleeps long; notes in `cleaned` that its finally block ran."""
    try:
        await asyncio.sleep(5)
    finally:
        cleaned.append("finally ran")


async def test_cancelling_the_task_reaches_the_coroutine() -> None:
    cleaned: list[str] = []
    task = start_now(_sleeps(cleaned))
    task.cancel()  # before the task's own first step
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["finally ran"]


async def test_an_error_before_the_first_wait_is_the_task_s_error() -> None:
    async def fails() -> None:
        raise ValueError("at once")

    task = start_now(fails())
    with pytest.raises(ValueError, match="at once"):
        await task


async def test_an_error_after_a_wait_is_the_task_s_error() -> None:
    async def fails_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("later")

    with pytest.raises(KeyError, match="later"):
        await start_now(fails_later())


async def test_cancel_and_wait_ends_the_task_before_it_returns() -> None:
    cleaned: list[str] = []
    task = asyncio.create_task(_sleeps(cleaned))
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled()
    assert cleaned == ["finally ran"]
    await cancel_and_wait(None)  # nothing started: nothing to stop


async def test_what_a_task_runs_on_3_11_can_be_awaited_like_its_coroutine() -> None:
    async def work(n: int) -> int:
        await asyncio.sleep(0)
        return n + 1

    started = _Eager(work(1))
    started.first_step()
    assert await started == 2
    assert await _Eager(work(41)) == 42  # its first step not run before

    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("inside")

    with pytest.raises(KeyError, match="inside"):
        await _Eager(fails())
