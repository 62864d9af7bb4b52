"""Python's cyclic garbage collector, set for a long-running consumer.

Why: a batch of 500 events allocates some 10⁵ container objects (models, dicts), so with the
default thresholds (700, 10, 10) the collector runs a full collection every few batches, and a
full collection walks every object alive: the imported modules, pydantic's schemas, pint's unit
registry. Measured in the ingestor, end to end: 170 µs of CPU per event with the defaults,
~128 µs with the start-up heap frozen and the young generation collected every 10,000
allocations (`bench/ingest_benchmark.py`, three runs each, same hour). A batch's objects live
until the batch ends, so each young collection walked ~10,000 of them for nothing (~5.6 µs per
event, 2026-12-06); at 100,000 most of a batch's objects are freed, and so leave the count,
before it is reached (1.3 µs per event). Memory is not at stake:
objects without cycles are freed at once by reference counting whatever the thresholds; only
cyclic garbage waits a little longer.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

THRESHOLDS = (100_000, 20, 20)
"""Young-generation allocations before a collection, then young and middle collections before
the next older one (CPython's defaults: 700, 10, 10)."""


def settle_heap(*warm: Callable[[], object]) -> None:
    """Once start-up is done, before serving: build what is built lazily (`warm`, e.g. the unit
    registry), collect, move everything alive into the permanent generation (`gc.freeze`), so
    no collection walks it again, and set `THRESHOLDS`."""
    for build in warm:
        build()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
