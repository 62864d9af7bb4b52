"""Runs grouped into measurements (`MEASUREMENT_KEY`): each run's measurement and own metadata.

Kept in `PipelineRun`, written in the transaction of the event that names the run, so the
measurement dataset's aggregated metadata is always computed from every run it holds. The
per-event path records one run per event (`record_run`); a batch reads the runs of its
measurements once, records in memory (`recorded`, `view_of`) and writes the changed runs once
(`save_runs`).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from cachetools import LRUCache
from pymongo import ReplaceOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from scicat_ingestor.measurement_tally import SortKey, Tally
from scicat_ingestor.measurements import MeasurementView, RunSample
from scicat_ingestor.scientific_metadata import merge_scientific_metadata
from scicat_ingestor.store_values import GroupedRun, UngroupedRun

RUN_COLLECTION = "PipelineRun"
"""Runs grouped into measurements: the measurement of each run and the run's own metadata."""

Db = AsyncDatabase[dict[str, Any]]


async def measurement_of(db: Db, beamtime_id: str, run_id: str) -> str | None:
    return (await measurements_of(db, [(beamtime_id, run_id)])).get((beamtime_id, run_id))


async def measurements_of(db: Db, runs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """`measurement_of` for many `(beamtime_id, run_id)` in one query; runs in none are left out."""
    keys = sorted({run_key(beamtime_id, run_id) for beamtime_id, run_id in runs})
    if not keys:
        return {}
    cursor = db[RUN_COLLECTION].find({"_id": {"$in": keys}}, projection={"measurement": True})
    return {_run_of(doc["_id"]): str(doc["measurement"]) async for doc in cursor}


async def record_run(db: Db, run: GroupedRun, session: AsyncClientSession) -> MeasurementView:
    """Merge the event's metadata into its run; the measurement's runs, in start order."""
    runs = db[RUN_COLLECTION]
    key = run_key(run.beamtime_id, run.run_id)
    doc = recorded(await runs.find_one({"_id": key}, session=session), run)
    await runs.replace_one({"_id": key}, doc, upsert=True, session=session)
    cursor = runs.find(
        {"beamtimeId": run.beamtime_id, "measurement": doc["measurement"]}, session=session
    )
    return view_of(doc["measurement"], [member async for member in cursor])


def recorded(stored: dict[str, Any] | None, run: GroupedRun) -> dict[str, Any]:
    """The run's document once the event is recorded (`_id` included): a run keeps the
    measurement and the start it was first recorded with; its metadata merges every event's."""
    stored = stored or {}
    return {
        "_id": run_key(run.beamtime_id, run.run_id),
        "beamtimeId": run.beamtime_id,
        "runId": run.run_id,
        "measurement": stored.get("measurement", run.measurement),
        "metadata": merge_scientific_metadata(stored.get("metadata", {}), run.metadata),
        "startedAt": stored.get("startedAt") or run.started_at,
    }


def view_of(measurement: str, members: Iterable[dict[str, Any]]) -> MeasurementView:
    """The measurement as its stored runs make it: the runs in start order (unstarted last)."""
    ordered = sorted(members, key=start_order)
    return MeasurementView(measurement_id=measurement, runs=[_sample(m) for m in ordered])


def start_order(member: dict[str, Any]) -> SortKey:
    """Where a run stands among its measurement's runs: by start, unstarted last, then by id."""
    return member.get("startedAt") is None, member.get("startedAt"), member["runId"]


def _sample(member: dict[str, Any]) -> RunSample:
    return RunSample(member["runId"], member.get("metadata", {}))


_RECENT_SAMPLES: LRUCache[str, RunSample] = LRUCache(maxsize=10_000)
"""The samples of runs read by earlier transactions, by run key (~3 KB each with a handful of
quantities): each transaction reads every run of its measurements again, and annotating and
classifying them all again was a sixth of the ingestor's time with measurements of 2,000 runs.
A memo, not state: a sample is reused only while the run's stored metadata equals the one it
was made from."""


def _recent_sample(member: dict[str, Any]) -> RunSample:
    remembered = _RECENT_SAMPLES.get(member["_id"])
    metadata = member.get("metadata", {})
    if (
        remembered is not None
        and remembered.run_id == member["runId"]
        and remembered.metadata == metadata
    ):
        return remembered
    made = RunSample(member["runId"], metadata)
    _RECENT_SAMPLES[member["_id"]] = made
    return made


async def runs_of_measurements(
    db: Db, runs: Sequence[GroupedRun], session: AsyncClientSession
) -> list[dict[str, Any]]:
    """The stored runs a batch's `runs` touch: each run itself and every run of each measurement
    it belongs to (its stored measurement, else the one the event names). Two queries."""
    if not runs:
        return []
    collection = db[RUN_COLLECTION]
    keys = sorted({run_key(run.beamtime_id, run.run_id) for run in runs})
    own = {
        doc["_id"]: doc async for doc in collection.find({"_id": {"$in": keys}}, session=session)
    }
    measurements = {
        (run.beamtime_id, own.get(run_key(run.beamtime_id, run.run_id), {}).get("measurement"))
        for run in runs
    } | {(run.beamtime_id, run.measurement) for run in runs}
    found = collection.find(
        {
            "beamtimeId": {"$in": sorted({beamtime for beamtime, _ in measurements})},
            "measurement": {"$in": sorted({m for _, m in measurements if m is not None})},
        },
        session=session,
    )
    wanted = {pair for pair in measurements if pair[1] is not None}
    members = [doc async for doc in found if (doc["beamtimeId"], doc["measurement"]) in wanted]
    return list({doc["_id"]: doc for doc in [*own.values(), *members]}.values())


async def save_runs(db: Db, docs: Sequence[dict[str, Any]], session: AsyncClientSession) -> None:
    """Write the runs a batch changed, each once, in its final state."""
    if docs:
        await db[RUN_COLLECTION].bulk_write(
            [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in docs], session=session
        )


def _group(doc: dict[str, Any]) -> tuple[str, str]:
    """A run document's measurement: `(beamtime id, measurement)`."""
    return doc["beamtimeId"], doc["measurement"]


def run_key(beamtime_id: str, run_id: str) -> str:
    return f"{beamtime_id}\x1f{run_id}"


def _run_of(key: str) -> tuple[str, str]:
    beamtime_id, _, run_id = key.partition("\x1f")
    return beamtime_id, run_id


_RECENT_TALLIES: LRUCache[tuple[str, str], TalliedRuns] = LRUCache(
    maxsize=20_000, getsizeof=lambda tallied: max(1, len(tallied.held))
)
"""The tallies of recent batches, by measurement, up to 20,000 runs in all (~1 KB per run
tallied, besides its sample): a memo, not state (`TalliedRuns.holds`). A batch takes a tally
out while it uses it, so two batches at once (two consumers of one process) never share one."""


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


class BatchRuns:
    """The runs of a batch's measurements (`runs_of_measurements`), recorded in memory event
    after event as `record_run` records them in MongoDB: each event's measurement view includes
    its run as recorded. A measurement whose runs an event leaves as they were keeps its view,
    so its aggregated metadata is not computed again (`MeasurementView.metadata`)."""

    def __init__(self, stored: Iterable[dict[str, Any]]) -> None:
        self._runs = {doc["_id"]: doc for doc in stored}
        self._groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        """The runs by measurement: a start finds its measurement's runs without a scan."""
        for doc in self._runs.values():
            self._groups.setdefault(_group(doc), {})[doc["_id"]] = doc
        self._views: dict[tuple[str, str], MeasurementView] = {}
        self._changed: dict[str, dict[str, Any]] = {}
        self._samples: dict[str, tuple[dict[str, Any], RunSample]] = {}
        self._tallies: dict[tuple[str, str], TalliedRuns] = {}
        """Per measurement, its runs tallied (once, or by an earlier batch), then run by run."""
        self._pending: tuple[TalliedRuns, str, Held | None] | None = None
        """What the last `recording` changed in a tally, undone unless it is kept."""

    def recording(self, run: GroupedRun) -> tuple[dict[str, Any], MeasurementView]:
        """The run as this event would record it, and its measurement then; nothing is kept
        until `keep` (an event the domain refuses records nothing). Only a start records a run
        first: any other event of a run not recorded raises `UngroupedRun`."""
        stored = self._runs.get(run_key(run.beamtime_id, run.run_id))
        if stored is None and run.started_at is None:
            raise UngroupedRun(f"run {run.run_id!r} was not recorded in {run.measurement!r}")
        self._undo()
        doc = recorded(stored, run)
        group = _group(doc)
        view = self._views.get(group)
        if view is not None and doc == stored:
            return doc, view
        members = self._groups.get(group, {})
        tallied = self._tallied(group, members)
        previous = tallied.put(doc["_id"], start_order(doc), self._sample(doc))
        self._pending = (tallied, doc["_id"], previous)
        return doc, tallied.view(doc["measurement"])

    def _tallied(self, group: tuple[str, str], members: dict[str, dict[str, Any]]) -> TalliedRuns:
        """The measurement's runs tallied: this batch's, else an earlier batch's if it holds
        exactly these runs (the same samples in the same order), else tallied now."""
        tallied = self._tallies.get(group)
        if tallied is not None:
            return tallied
        runs = {key: (start_order(member), self._sample(member)) for key, member in members.items()}
        tallied = _RECENT_TALLIES.pop(group, None)  # this batch's until it is done (`changed`)
        if tallied is None or not tallied.holds(runs):
            tallied = TalliedRuns()
            for key, (order, sample) in runs.items():
                tallied.put(key, order, sample)
        self._tallies[group] = tallied
        return tallied

    def _undo(self) -> None:
        """The last recording was not kept (the domain refused its event): its tally as before."""
        if self._pending is not None:
            tallied, run, previous = self._pending
            self._pending = None
            tallied.restore(run, previous)

    def keep(self, doc: dict[str, Any], view: MeasurementView) -> None:
        self._pending = None
        stored = self._runs.get(doc["_id"])
        if stored != doc:
            self._changed[doc["_id"]] = doc
            self._runs[doc["_id"]] = doc
            if stored is not None and _group(stored) != _group(doc):
                self._groups.get(_group(stored), {}).pop(doc["_id"], None)
            self._groups.setdefault(_group(doc), {})[doc["_id"]] = doc
        self._views[_group(doc)] = view

    def _sample(self, member: dict[str, Any]) -> RunSample:
        """The run's sample, the same object while the run's document is (its SI annotation
        is then not computed again)."""
        remembered = self._samples.get(member["_id"])
        if remembered is not None and remembered[0] is member:
            return remembered[1]
        made = _recent_sample(member)
        self._samples[member["_id"]] = (member, made)
        return made

    def changed(self) -> list[dict[str, Any]]:
        """The runs to write, once the batch's events are all applied: its tallies are then left
        for the batches after it."""
        self._undo()
        for group, tallied in self._tallies.items():
            if _RECENT_TALLIES.getsizeof(tallied) <= _RECENT_TALLIES.maxsize:  # else too big
                _RECENT_TALLIES[group] = tallied
        return list(self._changed.values())
