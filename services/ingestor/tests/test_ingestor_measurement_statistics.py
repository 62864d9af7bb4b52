"""The measurement's statistics, computed from classified runs, against the rules stated plainly.

`aggregated_metadata` classifies each run's values once and aggregates columns; the reference
below applies the rules of `measurements` value by value, as they read. Hypothesis generates
runs mixing numbers, quantities in compatible and incompatible units, nested mappings, strings,
booleans, lists and keys present in some runs only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from scicat_ingestor.measurement_tally import Tally
from scicat_ingestor.measurements import RUNS_KEY, MeasurementView, RunSample, aggregated_metadata
from scicat_ingestor.quantities import quantity_parts, with_si_units


def reference(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    samples = [with_si_units(run)[0] for run in runs]
    return with_si_units(_mappings(samples))[0]


def _mappings(samples: list[Mapping[str, Any]]) -> dict[str, Any]:
    keys = list(dict.fromkeys(key for sample in samples for key in sample))
    return {key: _one([s[key] for s in samples if key in s]) for key in keys}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one(values: list[Any]) -> Any:
    if all(_number(v) for v in values):
        return _stats([float(v) for v in values])
    parts = [quantity_parts(v) for v in values]
    if all(p is not None and _number(p[0]) for p in parts):
        units = {p[1] for p in parts if p is not None}
        if len(units) == 1:
            return _ranged(_stats([float(p[0]) for p in parts if p is not None]), units.pop())
        si_units = {v.get("unitSI") for v in values}
        if len(si_units) == 1 and None not in si_units:
            return _ranged(_stats([float(v["valueSI"]) for v in values]), si_units.pop())
        return {"values": list({repr(v): v for v in values}.values())}
    if all(p is None and isinstance(v, Mapping) for v, p in zip(values, parts, strict=True)):
        return _mappings(values)
    distinct = list({repr(v): v for v in values}.values())
    return distinct[0] if len(distinct) == 1 else {"values": distinct}


def _stats(numbers: list[float]) -> dict[str, Any]:
    mean = sum(numbers) / len(numbers)
    return {"count": len(numbers), "min": min(numbers), "max": max(numbers), "mean": mean}


def _ranged(stats: dict[str, Any], unit: Any) -> dict[str, Any]:
    return stats | {"value": [stats["min"], stats["max"]], "unit": unit}


numbers = st.one_of(
    st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
)
quantities = st.fixed_dictionaries(
    {"value": numbers, "unit": st.sampled_from(["keV", "eV", "mm", "m", "s", "K", "furlong", ""])}
)
short_quantities = st.fixed_dictionaries({"v": numbers, "u": st.sampled_from(["keV", "mbar"])})
leaves = st.one_of(
    numbers,
    quantities,
    short_quantities,
    st.sampled_from(["fly", "step", "LaB6"]),
    st.booleans(),
    st.none(),
    st.lists(numbers, max_size=2),
    st.fixed_dictionaries(
        {"value": st.lists(numbers, min_size=2, max_size=2), "unit": st.just("K")}
    ),
)
keys = st.sampled_from(["energy", "exposure", "mode", "sample", "t", "x"])
metadata = st.recursive(
    st.dictionaries(keys, leaves, max_size=5),
    lambda inner: st.dictionaries(keys, st.one_of(leaves, inner), max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(runs=st.lists(metadata, min_size=1, max_size=8))
def test_classified_statistics_follow_the_rules_value_by_value(runs) -> None:
    view = MeasurementView("m1", [RunSample(f"scan_{n}", run) for n, run in enumerate(runs)])

    aggregated = aggregated_metadata(view)

    assert aggregated.pop(RUNS_KEY) == [f"scan_{n}" for n in range(len(runs))]
    assert aggregated == reference(runs)
    assert list(aggregated) == list(reference(runs))  # keys in order of first appearance


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 4), st.one_of(st.none(), metadata)), min_size=1, max_size=14
    )
)
@example(  # the run in another unit leaves: statistics in the unit of those that stay
    steps=[
        (0, {"energy": {"value": 18, "unit": "keV"}}),
        (1, {"energy": {"value": 17000, "unit": "eV"}}),
        (2, {"energy": {"value": 19, "unit": "keV"}}),
        (1, None),
    ]
)
@example(  # a run's value replaced: the numbers follow
    steps=[(0, {"t": 1}), (1, {"t": 5}), (1, {"t": "five"}), (1, {"t": 7}), (0, {"mode": "fly"})]
)
def test_a_tally_kept_run_by_run_aggregates_as_the_runs_it_holds(steps) -> None:
    """Runs put in any order (several partitions), replaced (a run's metadata grows), removed
    (a refused event rolled back): the tally's aggregate is that of the runs it holds, in start
    order."""
    tally = Tally()
    held: dict[int, dict[str, Any]] = {}
    for run, step in steps:
        order = (False, run, f"scan_{run}")
        if step is None:
            if run in held:
                tally.remove(order)
                del held[run]
            continue
        tally.put(order, RunSample(f"scan_{run}", step).classified)
        held[run] = step
    if not held:
        return
    runs = [held[run] for run in sorted(held)]

    aggregated = tally.aggregate()

    assert aggregated == _mappings([with_si_units(run)[0] for run in runs])
    assert list(aggregated) == list(_mappings([with_si_units(run)[0] for run in runs]))
