"""Which im-rpc instance a gateway calls: fewest in flight, down ones skipped, set changes."""

from __future__ import annotations

from http_svc.instances import InstancePool


async def test_the_instance_with_fewest_calls_in_flight_is_picked() -> None:
    pool = InstancePool(channels=1)
    pool.set_addrs(["h:1", "h:2", "h:3"])
    a, b, c = pool.instances
    a.in_flight, b.in_flight, c.in_flight = 3, 1, 2
    assert all(pool.pick() is b for _ in range(6))
    b.in_flight = 3
    assert {pool.pick().addr for _ in range(6)} == {"h:3"}  # type: ignore[union-attr]
    pool.close()


async def test_ties_rotate_over_every_instance() -> None:
    pool = InstancePool(channels=1)
    pool.set_addrs(["h:1", "h:2", "h:3"])
    picked = [pool.pick().addr for _ in range(9)]  # type: ignore[union-attr]
    assert sorted(picked) == ["h:1"] * 3 + ["h:2"] * 3 + ["h:3"] * 3
    pool.close()


async def test_a_down_instance_is_skipped_unless_it_is_the_only_one() -> None:
    pool = InstancePool(channels=1, down_s=60)
    pool.set_addrs(["h:1", "h:2"])
    first, second = pool.instances
    pool.mark_down(first)
    assert all(pool.pick() is second for _ in range(4))
    assert pool.pick(exclude=second) is first  # no other choice left
    pool.mark_down(second)
    assert pool.pick() in (first, second)
    assert pool.pick(exclude=first) is second
    pool.close()


async def test_a_removed_instance_takes_no_new_calls_and_closes_after_its_last() -> None:
    pool = InstancePool(channels=1)
    pool.set_addrs(["h:1", "h:2"])
    leaving, staying = pool.instances
    closed: list[str] = []
    leaving.close = lambda: closed.append(leaving.addr)  # type: ignore[method-assign]
    with pool.use(leaving):
        pool.set_addrs(["h:2"])
        assert leaving.retired
        assert closed == []  # its call is still running
        assert all(pool.pick() is staying for _ in range(4))
    assert closed == ["h:1"]
    assert [i.addr for i in pool.instances] == ["h:2"]
    assert pool.pick(exclude=staying) is None
    pool.close()


async def test_readding_an_address_keeps_its_pool() -> None:
    pool = InstancePool(channels=2)
    pool.set_addrs(["h:1"])
    (instance,) = pool.instances
    pool.set_addrs(["h:1", "h:2"])
    assert pool.instances[0] is instance
    assert len(instance.streams) == 2
    pool.close()
