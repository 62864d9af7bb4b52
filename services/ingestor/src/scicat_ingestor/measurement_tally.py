"""A measurement's statistics: each run's values classified, tallied per key, kept run by run.

The one implementation of the rules in `measurements`. Each run's metadata is classified once
(`classified`: number, quantity, mapping or other, with what the statistics need). A tally keeps,
per key, its values over the runs that have it in start order (runs may be added out of start
order: runs of one measurement come from several partitions) with what the statistics need
alongside (kinds counted, the numbers, the units counted, the SI numbers), so a run added,
replaced or removed costs an insertion per key, and the statistics are C builtins (`min`,
`max`, `sum`) over kept lists. A batch keeps a tally per measurement run by run; the per-event
path tallies the runs afresh (`measurements.aggregated_metadata`). Recomputing every key over
every run on each run started dominated the ingestor with measurements of thousands of runs.
Held to the rules applied value by value, key order and float rounding included (the sums run
in start order), by differential tests.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from scicat_ingestor.quantities import quantity_parts

NUMBER, QUANTITY, MAPPING, OTHER = range(4)
"""What a value is to the aggregation; each classified value is a tuple `(kind, ..., value)`:
`(NUMBER, float, value)`, `(QUANTITY, float, unit, value)`, `(MAPPING, Classified, value)`,
`(OTHER, repr, value)`, the value as sent last."""

Classified = dict[str, tuple[Any, ...]]


def classified(mapping: Mapping[str, Any]) -> Classified:
    return {key: _classify(value) for key, value in mapping.items()}


def _classify(value: Any) -> tuple[Any, ...]:
    if _is_number(value):
        return (NUMBER, float(value), value)
    parts = quantity_parts(value)
    if parts is not None:
        number, unit = parts
        if _is_number(number):
            return (QUANTITY, float(number), unit, value)
        return (OTHER, _key(value), value)
    if _is_mapping(value):
        return (MAPPING, classified(value), value)
    return (OTHER, _key(value), value)


def distinct_entries(entries: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The distinct values of classified `entries`, in order of first appearance."""
    return list({distinction(entry): entry[-1] for entry in entries}.values())


def distinction(entry: tuple[Any, ...]) -> str:
    """What tells a classified value from another: its `repr` (kept by `_classify` for others)."""
    return entry[1] if entry[0] == OTHER else _key(entry[-1])


def distinct_values(values: Sequence[Any]) -> list[Any]:
    """The distinct `values`, in order of first appearance."""
    return list({_key(v): v for v in values}.values())


def quantity_range(numbers: dict[str, Any], unit: Any) -> dict[str, Any]:
    """Statistics of a quantity, themselves a quantity: the range its runs span."""
    return numbers | {"value": [numbers["min"], numbers["max"]], "unit": unit}


def statistics(numbers: list[float]) -> dict[str, Any]:
    return {
        "count": len(numbers),
        "min": min(numbers),
        "max": max(numbers),
        "mean": sum(numbers) / len(numbers),
    }


def _is_number(value: object) -> bool:
    kind = type(value)  # the JSON types first: this runs for every value of every run
    return kind is float or kind is int or (isinstance(value, int | float) and kind is not bool)


def _is_mapping(value: object) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def _key(value: Any) -> str:
    return repr(value)


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
        """Numbers → statistics; numeric quantities → statistics with their unit (or SI unit);
        mappings (not quantities) → per key, recursively; anything else (or a mix) → the value
        if all agree, else the distinct values in order of first appearance."""
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
