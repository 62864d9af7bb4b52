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

The statistics are those of every run's stored metadata after each change, so a redelivered or
repeated event cannot count twice. Each run's metadata is classified once
(`RunSample.classified`: per key, number, quantity, mapping or other, with what the statistics
need) and tallied (`measurement_tally`): a batch keeps its measurements' runs tallied and
updates the tally run by run; the per-event path tallies them afresh. Classifying every value of
every run on each start made the ingestor spend ~1.5 ms per event in measurements of 2,000
runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from scicat_ingestor.measurement_tally import Classified, Tally, classified
from scicat_ingestor.quantities import MetadataIssue, with_si_units
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

    @cached_property
    def classified(self) -> Classified:
        """The annotated metadata classified for aggregation (`measurement_tally`), once."""
        return classified(self.annotated[0])


@dataclass(frozen=True)
class MeasurementView:
    """A measurement as stored: its id and its runs, in start order (the current run included)."""

    measurement_id: str
    runs: Sequence[RunSample]
    tallied: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The runs' aggregate as a `measurement_tally.Tally` kept it, when one did (a batch)."""
    tallied_issues: list[MetadataIssue] | None = field(default=None, compare=False, repr=False)
    """The runs' unit issues as the tally found them, likewise."""

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
        if self.tallied_issues is not None:
            return self.tallied_issues
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
    tallied = view.tallied
    if tallied is None:
        tally = Tally()
        for position, run in enumerate(view.runs):
            tally.put((position,), run.classified)
        tallied = tally.aggregate()
    aggregated, _ = with_si_units(tallied)  # each run's issues are its own
    aggregated[RUNS_KEY] = view.run_ids()
    return aggregated
