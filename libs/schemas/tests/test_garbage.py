"""The collector is set once start-up is done: what exists then is frozen, thresholds raised."""

from __future__ import annotations

import gc

from scicat_schemas.runtime.garbage import THRESHOLDS, settle_heap


def test_settle_heap_builds_what_is_lazy_then_freezes_it_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    built: list[object] = []

    def warm() -> object:
        built.append(object())
        return built[-1]

    try:
        settle_heap(warm)
        assert len(built) == 1
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == THRESHOLDS
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
