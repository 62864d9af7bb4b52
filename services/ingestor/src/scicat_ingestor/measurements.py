"""Measurement grouping (DESY, SciCat #984): several runs, one dataset with aggregated statistics.

One dataset per scan costs a catalogue too much when a beamline takes thousands of short scans.
With `INGESTOR_MEASUREMENT_KEY` set (e.g. `measurement`), a `run.started` whose metadata has a
string at that key puts the run in that measurement: every event of the run then goes to the
dataset `<prefix>/<beamtime_id>/<measurement>`, which holds the files of all its runs.

Its `scientificMetadata` is not any one run's metadata but, per key over the runs (one sample per
run: the run's own metadata, all its events merged), pure:
- numbers → `{"count", "min", "max", "mean"}`;
- quantities → the same statistics of `value` and the `unit`, when all runs use one unit, else of
  the SI values (`valueSI`) with `unitSI`; and, so that unit-aware search finds a measurement by
  what its runs measured, a range quantity `value: [min, max]` with its `valueSI`/`unitSI`
  (`energy > 19 keV` finds a measurement whose runs went from 18 to 20 keV);
- anything else → the value if every run that has it agrees, else `{"values": [distinct ...]}`;
- plus `runs`: the run ids, in the order they started.

The statistics are recomputed from every run's stored metadata on each change, so a redelivered
or repeated event cannot count twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from scicat_ingestor.quantities import MetadataIssue, quantity_parts, with_si_units
from scicat_schemas.events import RunStartedData

RUNS_KEY = "runs"


@dataclass(frozen=True)
class RunSample:
    """One run of a measurement and its own merged metadata."""

    run_id: str
    metadata: Mapping[str, Any]

    @cached_property
    def annotated(self) -> tuple[dict[str, Any], list[MetadataIssue]]:
        """The run's metadata with SI values, and its unit issues (`with_si_units`), once."""
        return with_si_units(self.metadata)


@dataclass(frozen=True)
class MeasurementView:
    """A measurement as stored: its id and its runs, in start order (the current run included)."""

    measurement_id: str
    runs: Sequence[RunSample]

    def run_ids(self) -> list[str]:
        return [run.run_id for run in self.runs]

    @property
    def annotated_runs(self) -> list[tuple[dict[str, Any], list[MetadataIssue]]]:
        """Each run's metadata with SI values, and its unit issues (each run's own, once: a
        batch reuses the samples of runs that did not change)."""
        return [run.annotated for run in self.runs]

    @cached_property
    def metadata(self) -> dict[str, Any]:
        """The measurement's scientific metadata (`aggregated_metadata`), computed once."""
        return aggregated_metadata(self)

    @cached_property
    def unit_issues(self) -> list[MetadataIssue]:
        """The unit issues of every run, in run order."""
        return [issue for _, issues in self.annotated_runs for issue in issues]


def measurement_of(data: RunStartedData, key: str) -> str | None:
    """The measurement a starting run names in its metadata under `key`, if any."""
    value = data.metadata.get(key)
    return value if isinstance(value, str) and value else None


def names_measurement(data: object, key: str) -> bool:
    """Whether `data` is a run's start naming its measurement (which records the run in it)."""
    return isinstance(data, RunStartedData) and measurement_of(data, key) is not None


def chosen_measurement(data: object, key: str, recorded: str | None) -> str | None:
    """The measurement an event of a run goes to: the one its run was recorded in (`recorded`),
    else the one its start names, else none (the run stays a dataset of its own). A run stays in
    its first measurement: a later start naming another one goes there too, so every event of a
    run lands in one dataset (the run record keeps its first measurement as well)."""
    named = measurement_of(data, key) if isinstance(data, RunStartedData) else None
    return recorded or named


def aggregated_metadata(view: MeasurementView) -> dict[str, Any]:
    """The measurement's scientific metadata: statistics per key over its runs (see above)."""
    samples = [annotated for annotated, _ in view.annotated_runs]
    aggregated, _ = with_si_units(_aggregate_mappings(samples))  # each run's issues are its own
    aggregated[RUNS_KEY] = view.run_ids()
    return aggregated


def _aggregate_mappings(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keys = list(dict.fromkeys(key for sample in samples for key in sample))
    return {key: _aggregate([s[key] for s in samples if key in s]) for key in keys}


def _aggregate(values: list[Any]) -> Any:
    if all(_is_number(v) for v in values):
        return _statistics([float(v) for v in values])
    quantities = [quantity_parts(v) for v in values]
    if all(parts is not None and _is_number(parts[0]) for parts in quantities):
        return _quantity_statistics(values, quantities)  # type: ignore[arg-type]
    if all(parts is None and _is_mapping(v) for v, parts in zip(values, quantities, strict=True)):
        return _aggregate_mappings(values)
    distinct = list({_key(v): v for v in values}.values())
    return distinct[0] if len(distinct) == 1 else {"values": distinct}


def _quantity_statistics(
    values: list[Mapping[str, Any]], parts: list[tuple[Any, Any]]
) -> dict[str, Any]:
    units = {unit for _, unit in parts}
    if len(units) == 1:
        return _range(_statistics([float(number) for number, _ in parts]), units.pop())
    si_units = {v.get("unitSI") for v in values}
    if len(si_units) == 1 and None not in si_units:
        return _range(_statistics([float(v["valueSI"]) for v in values]), si_units.pop())
    distinct = list({_key(v): v for v in values}.values())
    return {"values": distinct}


def _range(statistics: dict[str, Any], unit: Any) -> dict[str, Any]:
    """Statistics of a quantity, themselves a quantity: the range its runs span."""
    return statistics | {"value": [statistics["min"], statistics["max"]], "unit": unit}


def _statistics(numbers: list[float]) -> dict[str, Any]:
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
