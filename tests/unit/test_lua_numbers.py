"""The start's check of how Redis's Lua prints the scripts' numbers: a Redis that prints
2^53 with %d whole passes; one that cuts it (a 32-bit C long) is refused with what to do."""

from __future__ import annotations

from rpc_svc.store.base import LayoutError, lua_numbers_refused


def test_two_to_the_53_printed_whole_passes() -> None:
    assert lua_numbers_refused("9007199254740992") is None


def test_a_cut_or_rounded_number_is_refused_with_what_to_do() -> None:
    for printed in ("-1", "0", "2147483647", "9007199254740991", "9.007199254741e+15"):
        refused = lua_numbers_refused(printed)
        assert isinstance(refused, LayoutError), printed
        assert repr(printed) in str(refused)
        assert "64-bit build" in str(refused)
