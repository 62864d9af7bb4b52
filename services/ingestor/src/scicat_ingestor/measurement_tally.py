"""A measurement's statistics kept up to date run by run, for the starts of one batch.

`measurements.aggregated_metadata` gathers every key's values over every run: O(runs) Python
steps per key on each run started, which dominated the ingestor with measurements of thousands
of runs. A tally keeps, per key, its values over the runs that have it in start order (runs may
be added out of start order: runs of one measurement come from several partitions) with what the
statistics need alongside (kinds counted, the numbers, the units counted, the SI numbers), so a
run added or replaced costs an insertion per key, and the statistics are C builtins (`min`,
`max`, `sum`) over kept lists. The result is the same as `aggregated_metadata`'s, key order and
float rounding included (the sums run in start order), held to it by a differential test.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from typing import Any

from scicat_ingestor.measurements import (
    MAPPING,
    NUMBER,
    QUANTITY,
    Classified,
    MeasurementView,
    RunSample,
    distinct_entries,
    distinct_values,
    distinction,
    quantity_range,
    statistics,
)

SortKey = tuple[Any, ...]
"""A run's place in start order (`grouped_runs.start_order`); unique within a measurement."""


class Tally:
    """The runs of one measurement, classified (`RunSample.classified`), by key."""

    def __init__(self) -> None:
        self._runs: dict[SortKey, Classified] = {}
        self._columns: dict[str, _Column] = {}

    def put(self, run: SortKey, tree: Classified) -> None:
        """Add the run, or replace what it held."""
        if run in self._runs:
            self.remove(run)
        self._runs[run] = tree
        for index, (key, entry) in enumerate(tree.items()):
            column = self._columns.get(key)
            if column is None:
                column = self._columns[key] = _Column()
            column.insert(run, entry, index)

    def remove(self, run: SortKey) -> None:
        tree = self._runs.pop(run)
        for key in tree:
            column = self._columns[key]
            column.delete(run)
            if not column.order:
                del self._columns[key]

    def aggregate(self) -> dict[str, Any]:
        """Per key, in the order keys first appear run after run, its aggregate."""
        keys = sorted(self._columns, key=lambda key: self._columns[key].first())
        return {key: self._columns[key].aggregate() for key in keys}


Held = tuple[SortKey, RunSample]
"""A run as a tally holds it: its place in start order and its sample."""


class TalliedRuns:
    """A measurement's runs tallied (`Tally`), and which sample of each run the tally holds: a
    later batch that reads the same runs reuses it instead of tallying every run of the
    measurement again (O(runs × keys) per transaction)."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.held: dict[str, Held] = {}
        self._order: list[SortKey] = []
        self._ordered: list[RunSample] = []
        """The samples in start order (parallel to `_order`): a view's runs without a sort."""
        self._with_issues = 0
        """How many samples have unit issues: usually none, and then no scan for them."""

    def put(self, run: str, order: SortKey, sample: RunSample) -> Held | None:
        """Hold `run` as `sample`; what it held before."""
        previous = self.held.get(run)
        if previous is not None:
            self._unplace(previous)
        self.tally.put(order, sample.classified)
        self.held[run] = (order, sample)
        at = bisect_left(self._order, order)
        self._order.insert(at, order)
        self._ordered.insert(at, sample)
        self._with_issues += bool(sample.annotated[1])
        return previous

    def _unplace(self, held: Held) -> None:
        order, sample = held
        self.tally.remove(order)
        at = bisect_left(self._order, order)
        del self._order[at], self._ordered[at]
        self._with_issues -= bool(sample.annotated[1])

    def view(self, measurement: str) -> MeasurementView:
        """The measurement as the tally holds it (its runs in start order, its aggregate)."""
        issues = (
            [issue for run in self._ordered for issue in run.annotated[1]]
            if self._with_issues
            else []
        )
        return MeasurementView(
            measurement, list(self._ordered), self.tally.aggregate(), tallied_issues=issues
        )

    def restore(self, run: str, previous: Held | None) -> None:
        """Undo a `put` of `run` that returned `previous`."""
        self._unplace(self.held.pop(run))
        if previous is not None:
            self.put(run, *previous)

    def holds(self, runs: dict[str, Held]) -> bool:
        """Whether the tally holds exactly `runs`: the same places, the same sample objects."""
        if len(runs) != len(self.held):
            return False
        for run, (order, sample) in runs.items():
            held = self.held.get(run)
            if held is None or held[1] is not sample or held[0] != order:
                return False
        return True


class _Column:
    """One key over the runs that have it, in start order; lists kept parallel to `order`."""

    __slots__ = (
        "entries",
        "floats",
        "kinds",
        "nested",
        "order",
        "reprs",
        "si",
        "si_units",
        "units",
    )

    def __init__(self) -> None:
        self.order: list[SortKey] = []
        self.entries: list[tuple[tuple[Any, ...], int]] = []
        """Each run's classified value and the key's position among its run's keys."""
        self.kinds: Counter[int] = Counter()
        self.floats: list[float] = []
        """The number of a number or quantity (else 0.0, never read: see `aggregate`)."""
        self.units: Counter[Any] = Counter()
        self.si: list[float] = []
        self.si_units: Counter[Any] = Counter()
        self.nested = Tally()
        """The runs' values that are mappings, tallied in turn."""
        self.reprs: Counter[str] = Counter()
        """The values told apart as `distinct_entries` tells them: one means all runs agree."""

    def first(self) -> tuple[SortKey, int]:
        return self.order[0], self.entries[0][1]

    def insert(self, run: SortKey, entry: tuple[Any, ...], index: int) -> None:
        at = bisect_left(self.order, run)
        kind = entry[0]
        self.order.insert(at, run)
        self.entries.insert(at, (entry, index))
        self.kinds[kind] += 1
        self.floats.insert(at, entry[1] if kind in (NUMBER, QUANTITY) else 0.0)
        si = 0.0
        if kind == QUANTITY:
            quantity = entry[3]
            self.units[entry[2]] += 1
            self.si_units[quantity.get("unitSI")] += 1
            if "valueSI" in quantity:
                si = float(quantity["valueSI"])
        self.si.insert(at, si)
        self.reprs[distinction(entry)] += 1
        if kind == MAPPING:
            self.nested.put(run, entry[1])

    def delete(self, run: SortKey) -> None:
        at = bisect_left(self.order, run)
        entry, _ = self.entries[at]
        kind = entry[0]
        for kept in (self.order, self.entries, self.floats, self.si):
            del kept[at]
        _decrement(self.kinds, kind)
        _decrement(self.reprs, distinction(entry))
        if kind == QUANTITY:
            _decrement(self.units, entry[2])
            _decrement(self.si_units, entry[3].get("unitSI"))
        if kind == MAPPING:
            self.nested.remove(run)

    def aggregate(self) -> Any:
        """As `measurements._aggregate` over this key's values."""
        if len(self.kinds) == 1:
            kind = next(iter(self.kinds))
            if kind == NUMBER:
                return statistics(self.floats)
            if kind == QUANTITY:
                if len(self.units) == 1:
                    return quantity_range(statistics(self.floats), next(iter(self.units)))
                if len(self.si_units) == 1 and None not in self.si_units:
                    return quantity_range(statistics(self.si), next(iter(self.si_units)))
                return {"values": distinct_values([entry[3] for entry, _ in self.entries])}
            if kind == MAPPING:
                return self.nested.aggregate()
        if len(self.reprs) == 1:  # every run agrees: the last one's value, as a dict keeps
            return self.entries[-1][0][-1]
        return {"values": distinct_entries([entry for entry, _ in self.entries])}


def _decrement(counter: Counter[Any], key: Any) -> None:
    counter[key] -= 1
    if counter[key] == 0:
        del counter[key]
