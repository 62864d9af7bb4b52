"""Many acquisition events in ONE MongoDB transaction, in a handful of round trips.

The per-event path (`MongoCatalogueStore.apply`) costs ~9 round trips per event. Here a batch
costs a fixed number whatever its size: one `find` of the markers already recorded, one of the
datasets (every version) the batch touches, one of their datablocks (every part, by `datasetId`:
`datablock_parts`), one of their beamtimes; then the pure domain runs in memory, event after
event (an event sees the state the previous event of its dataset left); then one `insert_many`
of the new markers, one `bulk_write` of the datasets, one of the datablock parts that changed, and
the commit (nothing is read back: see `_write`). What is written grows with the
datasets a batch touches, not with its events: one marker per dataset holding the identities of
the batch's events applied to it (`applied_events`), each dataset and changed part written once
in its final state.

The guarantees are the per-event path's: every applied event recorded, in the same transaction as
its effect; dataset updates conditional on the `pipelineRevision` read, setting only the fields
the domain changed (so `isPublished` set by the doi-minter is never lost); a lost race raises
`ConcurrentUpdate`, the transaction aborts and the whole batch is retried on fresh state.

With `fence_window` (`DEDUPLICATION=offsets`) a batch of Kafka records is recorded by a fence per
partition (`delivery_fences`): one read and one conditional write per partition. Of the events,
only those a copy produced again could undo are recorded by identity as well
(`AppliedEvent.copies`), where they are written anyway: a run's start and stop in its dataset's
document, a file report carrying metadata in the record of the file it made; the rare others
(a report that made no record, grouped runs) in markers. Identities kept in documents are
recognised in either mode, so switching back to identities recognises them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne, WriteConcern
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from scicat_ingestor import datablock_parts, grouped_runs, stored_proposals
from scicat_ingestor.applied_events import (
    applied_among,
)
from scicat_ingestor.batch_records import BatchRecords, file_reports_applied, kept_field
from scicat_ingestor.datablock_parts import DATABLOCK_MAX_FILES, StoredParts
from scicat_ingestor.delivery_fences import Fence, Refusal, advance_fences, read_fences
from scicat_ingestor.domain import CatalogueEntry, InvalidAcquisition
from scicat_ingestor.latest_entries import load_latest
from scicat_ingestor.recent_entries import RecentEntries
from scicat_ingestor.store_values import (
    AppliedEvent,
    ConcurrentUpdate,
    Decide,
    Partition,
    StoredContext,
    StoreOutcome,
)
from scicat_ingestor.stored_documents import (
    CorruptStoredDocument,
    changed_fields,
    dataset_doc,
    revision_match,
)
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    ORIG_DATABLOCK_COLLECTION,
    Dataset,
)

BatchDecide = Decide
"""The domain step of one event: current state and its context (the run's beamtime, the
measurement of a grouped run) → new state or `None`."""


@dataclass(slots=True)  # never changed; not frozen, which costs ~2.5x to build per event
class BatchItem:
    """One event of a batch: its marker (whose `pid` is the dataset it addresses) and its step."""

    event: AppliedEvent
    decide: BatchDecide


ItemOutcome = StoreOutcome | InvalidAcquisition | CorruptStoredDocument
"""Per item: what applying it did, or why it can never apply (its record is dead-lettered)."""


@dataclass(frozen=True)
class BatchOutcome:
    """`outcomes` in item order; `published`: each dataset (each version) the batch's events
    addressed, in its final state as written, in the order first touched. Published as
    `dataset.stored`, ONE per dataset: its consumers keep only the latest revision, so the
    intermediate revisions of a batch need not be announced. A redelivered event's dataset is
    published too: its first delivery may have crashed after the commit, before publishing."""

    outcomes: list[ItemOutcome]
    published: list[Dataset]
    committed: list[tuple[CatalogueEntry, StoredParts]] = field(default_factory=list)
    """What the transaction wrote, per dataset: the dataset, its file list and how
    that is now stored (`RecentEntries`)."""


async def apply_batch(
    db: AsyncDatabase[dict[str, Any]],
    session: AsyncClientSession,
    items: Sequence[BatchItem],
    *,
    earlier_markers: bool = True,
    datablock_max_files: int = DATABLOCK_MAX_FILES,
    recent: RecentEntries | None = None,
    fence_window: int | None = None,
) -> BatchOutcome:
    """Apply `items` in order in one transaction of `session`; see the module docstring.

    `fence_window`: record the items by their Kafka offsets instead of their identities
    (`delivery_fences`; only when every item has its `delivery`), keeping the refusals of that
    many offsets below each fence; `None`: by identities.
    `earlier_markers`: whether markers of the one-per-event layout may exist (`applied_events`).
    `datablock_max_files`: files per stored OrigDatablock (`datablock_parts`). `recent`: file
    lists committed earlier, reused instead of reloaded while their dataset is unchanged.
    """
    async with await session.start_transaction(write_concern=WriteConcern(w="majority")):
        return await _apply(
            db,
            session,
            items,
            earlier_markers,
            datablock_max_files,
            recent or RecentEntries(),
            fence_window,
        )


async def _apply(
    db: AsyncDatabase[dict[str, Any]],
    session: AsyncClientSession,
    items: Sequence[BatchItem],
    earlier_markers: bool,
    max_files: int,
    recent: RecentEntries,
    fence_window: int | None = None,
) -> BatchOutcome:
    deliveries = [item.event.delivery for item in items]
    by_offsets = fence_window is not None and None not in deliveries
    fences: dict[Partition, Fence] = {}
    progress: dict[Partition, tuple[int, dict[int, Refusal]]] = {}
    looked_up = items
    if by_offsets:
        fences = await read_fences(db, {d.where for d in deliveries if d is not None}, session)
        # A partition not fenced yet (the switch from identities) may redeliver what markers hold.
        # Markers also hold the events whose copies they recognise (`AppliedEvent.copies`).
        looked_up = [
            item
            for item, delivery in zip(items, deliveries, strict=True)
            if item.event.copies == "marker"
            or (delivery is not None and fences[delivery.where].next is None)
        ]
    applied = await applied_among(
        db,
        list(dict.fromkeys(item.event.identity for item in looked_up)),
        session,
        earlier_layout=earlier_markers,
    )
    base_pids = sorted({item.event.pid for item in items})
    latest = await load_latest(db, session, base_pids, max_files, recent)
    state, layouts = latest.state, latest.layouts
    records = BatchRecords(by_offsets, latest.kept)
    applied.update(identity for kept in latest.kept.values() for identity in kept)
    applied |= await file_reports_applied(
        db,
        session,
        [item.event for item in items],
        state,
        applied,
        earlier_markers if by_offsets else None,
    )
    beamtimes = await stored_proposals.beamtimes_facts(
        db, sorted({i.event.beamtime_id for i in items if i.event.beamtime_id}), session
    )
    grouped = [item.event.run for item in items if item.event.run is not None]
    runs = grouped_runs.BatchRuns(
        await grouped_runs.runs_of_measurements(db, grouped, session) if grouped else []
    )
    outcomes: list[ItemOutcome] = []
    original: dict[str, CatalogueEntry | None] = {}
    final: dict[str, CatalogueEntry] = {}
    for item in items:
        event = item.event
        current = state[event.pid]
        if by_offsets:
            assert event.delivery is not None
            where, offset = event.delivery.where, event.delivery.offset
            if fences[where].applied(offset):  # a redelivery: as the committed transaction did
                refusal = fences[where].refused.get(offset)
                outcomes.append(
                    StoreOutcome(_dataset_of(current), False, already_applied=True)
                    if refusal is None
                    else _refused_again(refusal)
                )
                continue
            last, refused = progress.get(where, (offset, {}))
            progress[where] = (max(last, offset), refused)
        _step(item, current, applied, beamtimes, runs, state, final, original, records, outcomes)
        if by_offsets and isinstance(outcomes[-1], Exception):  # kept: refused again if redelivered
            assert event.delivery is not None
            progress[event.delivery.where][1].setdefault(
                event.delivery.offset, _refusal(outcomes[-1])
            )
    await records.insert_markers(db, session)
    if by_offsets:
        assert fence_window is not None
        await advance_fences(db, session, fences, progress, fence_window)
    await grouped_runs.save_runs(db, runs.changed(), session)
    await _write(db, session, original, final, layouts, max_files, state, records)
    published: dict[str, Dataset] = {}
    for outcome in outcomes:
        if isinstance(outcome, StoreOutcome) and outcome.dataset is not None:
            published[outcome.dataset.pid] = outcome.dataset
    committed = [
        (entry, datablock_parts.written(entry.datablock, max_files)) for entry in final.values()
    ]
    return BatchOutcome(outcomes, list(published.values()), committed)


def _step(
    item: BatchItem,
    current: CatalogueEntry | CorruptStoredDocument | None,
    applied: set[str],
    beamtimes: dict[str, Any],
    runs: grouped_runs.BatchRuns,
    state: dict[str, CatalogueEntry | CorruptStoredDocument | None],
    final: dict[str, CatalogueEntry],
    original: dict[str, CatalogueEntry | None],
    records: BatchRecords,
    outcomes: list[ItemOutcome],
) -> None:
    """One event through the domain, in memory: its outcome appended, the batch's state moved."""
    event = item.event
    if isinstance(current, CorruptStoredDocument):
        outcomes.append(current)
        return
    if event.identity in applied:
        outcomes.append(StoreOutcome(_dataset_of(current), False, already_applied=True))
        return
    beamtime = beamtimes.get(event.beamtime_id) if event.beamtime_id else None
    if isinstance(beamtime, CorruptStoredDocument):
        outcomes.append(beamtime)
        return
    run, measurement = (None, None) if event.run is None else runs.recording(event.run)
    try:
        proposed = item.decide(
            current, StoredContext(beamtime, measurement, _owned(current, final, original))
        )
    except InvalidAcquisition as error:
        outcomes.append(error)
        return
    if run is not None and measurement is not None:
        runs.keep(run, measurement)
    applied.add(event.identity)
    if proposed is None:
        records.record(event, current)
        outcomes.append(StoreOutcome(_dataset_of(current), False, already_applied=False))
        return
    records.record(event, proposed)
    if proposed.pid not in original:
        same = current is not None and current.pid == proposed.pid
        original[proposed.pid] = current if same else None
    final[proposed.pid] = proposed
    state[event.pid] = proposed
    outcomes.append(StoreOutcome(proposed.dataset, changed=True, already_applied=False))


def _owned(
    current: CatalogueEntry | None,
    final: dict[str, CatalogueEntry],
    original: dict[str, CatalogueEntry | None],
) -> bool:
    """Whether `current`'s file list may grow in place (`StoredContext.owned`): this batch made
    it, and it is not the list as loaded. A start or a stop keeps the loaded list as it is
    (`with_files_kept`), and the dataset it leaves is this batch's; a file appended to that list
    in place would also be in the loaded state the writes are computed against, so it would
    never be written (the dataset counting a file its stored list lacks)."""
    if current is None or final.get(current.pid) is not current:
        return False
    loaded = original.get(current.pid)
    return (
        loaded is None
        or loaded.datablock is None
        or current.datablock is None
        or current.datablock.dataFileList is not loaded.datablock.dataFileList
    )


def _refusal(outcome: Exception) -> Refusal:
    kind = "corrupt" if isinstance(outcome, CorruptStoredDocument) else "invalid"
    return Refusal(kind, str(outcome))


def _refused_again(refusal: Refusal) -> InvalidAcquisition | CorruptStoredDocument:
    """What the committed transaction refused the record with, for its dead letter."""
    if refusal.kind == "corrupt":
        return CorruptStoredDocument(refusal.reason)
    return InvalidAcquisition(refusal.reason)


def _dataset_of(entry: CatalogueEntry | CorruptStoredDocument | None) -> Dataset | None:
    return entry.dataset if isinstance(entry, CatalogueEntry) else None


_KIND_ORDER = {InsertOne: 0, ReplaceOne: 1, DeleteOne: 2}
"""A batch's part writes touch distinct ids, so their order among kinds is free."""


async def _write(
    db: AsyncDatabase[dict[str, Any]],
    session: AsyncClientSession,
    original: dict[str, CatalogueEntry | None],
    final: dict[str, CatalogueEntry],
    layouts: dict[str, StoredParts],
    max_files: int,
    state: dict[str, CatalogueEntry | CorruptStoredDocument | None],
    records: BatchRecords,
) -> None:
    """Insert new datasets, update changed ones on their read revision, write the changed parts of
    their file lists, and the identities kept in dataset documents (carried to a new version;
    alone, on the read revision, for a dataset the batch did not otherwise change).

    Nothing is read back: the transaction read each dataset it changes (a snapshot: another
    writer's change to it fails this transaction's write), and an update sets only the fields
    the domain changed on the revision read, so each dataset in `final` is what is now stored.
    Reading the ~100 datasets of a batch back cost SecantusDB ~15 µs per event (~18% of its
    work) and the ingestor their decoding (2026-12-06)."""
    writes: list[InsertOne[dict[str, Any]] | UpdateOne] = []
    block_writes: list[InsertOne[dict[str, Any]] | ReplaceOne[dict[str, Any]] | DeleteOne] = []
    kept_unwritten = set(records.kept_changed)
    for pid, proposed in final.items():
        before = original[pid]
        new_doc = dataset_doc(proposed.dataset)
        base = proposed.dataset.pipelineBasePid or pid
        kept = records.kept.get(base)
        kept_unwritten.discard(base)
        if before is None:
            writes.append(InsertOne({"_id": pid, **new_doc, **kept_field(kept)}))
        else:
            changed = changed_fields(before.dataset, new_doc)
            if base in records.kept_changed:
                changed.update(kept_field(kept))
            writes.append(
                UpdateOne(
                    {"pid": pid, "pipelineRevision": revision_match(before.revision)},
                    {"$set": changed},
                )
            )
        if proposed.datablock is not None:
            old_block = None if before is None else before.datablock
            layout = None if before is None else layouts.get(pid)
            stored = layouts.get(pid)
            block_writes += datablock_parts.operations(
                *datablock_parts.writes(old_block, layout, proposed.datablock, max_files),
                stored=None if stored is None else stored.ids,
            )
    for base in sorted(kept_unwritten):
        unchanged = state[base]
        assert isinstance(unchanged, CatalogueEntry)  # kept only when there is a dataset
        writes.append(
            UpdateOne(
                {"pid": unchanged.pid, "pipelineRevision": revision_match(unchanged.revision)},
                {"$set": kept_field(records.kept[base])},
            )
        )
    if not writes:
        return
    updates = sum(isinstance(write, UpdateOne) for write in writes)
    try:
        result = await db[DATASET_COLLECTION].bulk_write(writes, session=session)
    except (BulkWriteError, DuplicateKeyError) as error:
        raise ConcurrentUpdate("a dataset of this batch was created meanwhile") from error
    if result.matched_count != updates:
        raise ConcurrentUpdate(
            f"{updates - result.matched_count} dataset(s) of this batch changed revision meanwhile"
        )
    if block_writes:
        # Grouped by kind: the driver sends each run of one kind as one command.
        block_writes.sort(key=lambda write: _KIND_ORDER[type(write)])
        try:
            await db[ORIG_DATABLOCK_COLLECTION].bulk_write(block_writes, session=session)
        except (BulkWriteError, DuplicateKeyError) as error:
            raise ConcurrentUpdate("a file list part of this batch appeared meanwhile") from error
