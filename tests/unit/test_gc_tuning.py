"""IM_GC_THRESHOLD's tuning (im_common.gc_tuning): the young generation's threshold set and
what exists frozen; 0 leaves CPython's collector as it is."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from im_common.gc_tuning import tune_gc


@pytest.fixture
def collector() -> Iterator[None]:
    """CPython's collector as it was, after the test."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_a_threshold_is_set_and_what_exists_is_frozen(collector: None) -> None:
    gc.unfreeze()
    middle, old = gc.get_threshold()[1:]
    tune_gc(12_345)
    assert gc.get_threshold() == (12_345, middle, old)
    assert gc.get_freeze_count() > 0


def test_zero_leaves_the_collector_as_it_is(collector: None) -> None:
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    tune_gc(0)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
