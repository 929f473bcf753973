"""The store's bound on round trips under way (rpc_svc.store.slots): at most its limit at
once, waiters served in order, and a waiter that gave up neither served nor leaking a slot."""

from __future__ import annotations

import asyncio

from rpc_svc.store.slots import Slots


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_the_limit_hold_and_the_waiters_get_turns_in_order() -> None:
    slots = Slots(2)
    order: list[int] = []
    holding = 0
    most = 0
    go = asyncio.Event()

    async def user(i: int) -> None:
        nonlocal holding, most
        await slots.acquire()
        order.append(i)
        holding += 1
        most = max(most, holding)
        await go.wait()
        holding -= 1
        slots.release()

    tasks = [asyncio.create_task(user(i)) for i in range(6)]
    await _settle()
    assert (order, slots.free) == ([0, 1], False)  # two hold, four wait
    go.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert order == [0, 1, 2, 3, 4, 5]
    assert most == 2
    assert slots.free


async def test_a_waiter_that_gave_up_is_skipped_and_no_slot_is_lost() -> None:
    slots = Slots(1)
    await slots.acquire()
    gave_up = asyncio.create_task(slots.acquire())
    waits = asyncio.create_task(slots.acquire())
    await _settle()
    gave_up.cancel()
    await _settle()
    slots.release()  # to `waits`, past the one that gave up
    await asyncio.wait_for(waits, 1)
    assert not slots.free
    slots.release()
    assert slots.free
    await slots.acquire()  # exactly one slot: a second acquire now waits
    second = asyncio.create_task(slots.acquire())
    await _settle()
    assert not second.done()
    slots.release()
    await asyncio.wait_for(second, 1)


async def test_a_waiter_cancelled_as_its_turn_came_gives_the_slot_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    then = asyncio.create_task(slots.acquire())
    await _settle()
    slots.release()  # `first` is given the slot ...
    first.cancel()  # ... and cancelled before it runs
    await _settle()
    assert first.cancelled()
    await asyncio.wait_for(then, 1)  # the slot went on, not lost
    slots.release()
    assert slots.free


async def test_a_timeout_while_waiting_leaves_the_count_right() -> None:
    slots = Slots(1)
    await slots.acquire()
    for _ in range(3):
        try:
            async with asyncio.timeout(0.01):
                await slots.acquire()
        except TimeoutError:
            pass
    slots.release()
    assert slots.free
    await slots.acquire()
    assert not slots.free
