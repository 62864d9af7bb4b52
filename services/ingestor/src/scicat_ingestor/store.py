"""The catalogue in MongoDB: datasets, their datablocks and the record of applied events.

Exactly-once effect over at-least-once delivery (the pyeventsourcing way): one transaction records
the event's identity in `PipelineAppliedEvent` (`applied_events`), reads the dataset, asks the
domain for the new state and writes it. A redelivered event is found there and changes nothing;
a crash before commit leaves nothing behind.

Writes are guarded by `pipelineRevision` and touch only the fields the domain changed, so a field
another service sets meanwhile (`isPublished`) is neither overwritten nor silently lost: a guard
miss raises `ConcurrentUpdate` and the consumer retries on fresh state.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pymongo import AsyncMongoClient, ReturnDocument, WriteConcern
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure

from scicat_ingestor import (
    beamtime_completion,
    datablock_parts,
    grouped_runs,
    stored_proposals,
)
from scicat_ingestor.applied_events import (
    APPLIED_EVENT_COLLECTION,
    AlreadyApplied,
    copy_already_applied,
    earlier_markers_may_exist,
    ensure_marker_indexes,
    kept_identities,
    marker_document,
    record_applied,
)
from scicat_ingestor.beamtime_announcements import ANNOUNCEMENT_COLLECTION
from scicat_ingestor.beamtime_completion import Announce
from scicat_ingestor.datablock_parts import DATABLOCK_MAX_FILES, StoredParts
from scicat_ingestor.delivery_fences import FENCE_COLLECTION
from scicat_ingestor.domain import STATUS_OPEN, CatalogueEntry
from scicat_ingestor.grouped_runs import RUN_COLLECTION
from scicat_ingestor.recent_entries import RecentEntries
from scicat_ingestor.store_values import (
    AppliedEvent,
    BeamtimeOutcome,
    Complete,
    ConcurrentUpdate,
    Decide,
    GroupedRun,
    MarkerConflict,
    StoredContext,
    StoreOutcome,
)
from scicat_ingestor.stored_documents import (
    CorruptStoredDocument as CorruptStoredDocument,  # part of this module's interface
)
from scicat_ingestor.stored_documents import (
    changed_fields,
    dataset_doc,
    dataset_from,
    revision_match,
)
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    INGESTOR_APPLIED_EVENTS,
    ORIG_DATABLOCK_COLLECTION,
    PROPOSAL_COLLECTION,
    Dataset,
    Proposal,
)
from scicat_schemas.runtime.settings import MongoSettings

NAMESPACE_EXISTS = 48
"""MongoDB's error code for a collection created twice."""

if TYPE_CHECKING:
    from scicat_ingestor.batch_store import BatchItem, BatchOutcome


class CatalogueStore(Protocol):
    async def apply(self, event: AppliedEvent, decide: Decide) -> StoreOutcome:
        """Apply `decide` to the event's dataset once; the same event again changes nothing."""
        ...

    async def apply_beamtime(
        self,
        event: AppliedEvent,
        proposals: tuple[Proposal, Proposal],
        complete: Complete,
        announce: Announce,
    ) -> BeamtimeOutcome:
        """Store the DOOR proposal and its beamtime and complete the beamtime's datasets, once,
        handing `announce` what must be published as it goes."""
        ...

    async def stale_open_datasets(self, *, quiet_since: datetime) -> list[tuple[str, int]]:
        """`(pid, revision)` of open datasets with no change since `quiet_since`."""
        ...

    async def measurement_of(self, beamtime_id: str, run_id: str) -> str | None:
        """The measurement a run was grouped into at its start, if any."""
        ...

    async def ping(self) -> None:
        """Raise when the store cannot be reached."""
        ...


class MongoCatalogueStore:
    """`CatalogueStore` on MongoDB (a replica set: transactions need one)."""

    def __init__(
        self,
        settings: MongoSettings,
        *,
        marker_retention: timedelta | None = None,
        datablock_max_files: int = DATABLOCK_MAX_FILES,
        fence_window: int | None = None,
    ) -> None:
        """`marker_retention`: how long applied-event markers are kept (zero: for ever; `None`:
        leave the TTL index as configured). `datablock_max_files`: files per OrigDatablock part.
        `fence_window`: record batches of Kafka records by offsets (`delivery_fences`), keeping
        refusals this many offsets back; `None`: by identities (`applied_events`)."""
        self._settings = settings
        self._marker_retention = marker_retention
        self._max_files = datablock_max_files
        self._fence_window = fence_window
        self._recent = RecentEntries()
        self._earlier_markers = True
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[MongoCatalogueStore]:
        """Open the client (it belongs to the running event loop) and ensure the indexes."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self._settings.uri,
            tz_aware=True,
            serverSelectionTimeoutMS=self._settings.timeout_ms,
            appname="scicat-ingestor",
        )
        self._client = client
        try:
            await self.ensure_indexes()
            self._earlier_markers = await earlier_markers_may_exist(self._db)
            yield self
        finally:
            self._client = None
            await client.close()

    @property
    def _db(self) -> AsyncDatabase[dict[str, Any]]:
        if self._client is None:
            raise RuntimeError("the MongoDB client is not open; use `async with store.connected()`")
        return self._client[self._settings.database]

    async def ensure_indexes(self) -> None:
        await self._db[DATASET_COLLECTION].create_index("pid", unique=True)
        await self._db[ORIG_DATABLOCK_COLLECTION].create_index("datasetId")
        await ensure_marker_indexes(self._db, self._marker_retention)
        await self._db[DATASET_COLLECTION].create_index("proposalIds")
        await self._db[RUN_COLLECTION].create_index([("beamtimeId", 1), ("measurement", 1)])
        await self._db[DATASET_COLLECTION].create_index("pipelineBasePid", sparse=True)
        await self._db[DATASET_COLLECTION].create_index([("datasetStatus", 1), ("updatedAt", 1)])
        # Readers look proposals up by SciCat's `proposalId` (the indexer, once per batch).
        await self._db[PROPOSAL_COLLECTION].create_index("proposalId")
        await self._create_collections(FENCE_COLLECTION, ANNOUNCEMENT_COLLECTION)

    async def _create_collections(self, *names: str) -> None:
        """Collections first written inside a transaction, created before any is: replicas
        starting together otherwise create one in their first transactions, and all but one
        fail with a `WriteConflict` and apply their whole first batch again (seen with three
        ingestors on a fresh database). The others are created by their indexes above."""
        existing = set(await self._db.list_collection_names())
        for name in names:
            if name in existing:
                continue
            try:
                await self._db.create_collection(name)
            except CollectionInvalid:
                pass  # another replica created it meanwhile
            except OperationFailure as error:
                if error.code != NAMESPACE_EXISTS:
                    raise

    async def ping(self) -> None:
        await self._db.command("ping")

    async def load(
        self, pid: str, *, session: AsyncClientSession | None = None, latest: bool = True
    ) -> CatalogueEntry | None:
        """The latest version of the dataset and its file list, or None if there is none.

        Versions after the first (`update_strategy: version`) name the first in
        `pipelineBasePid`; events always address the first, and apply to the latest.
        `latest=False` loads exactly `pid`.
        """
        entry, _, _ = await self._load(pid, session=session, latest=latest)
        return entry

    async def _load(
        self,
        pid: str,
        *,
        session: AsyncClientSession | None,
        latest: bool = True,
        files: bool = True,
    ) -> tuple[CatalogueEntry | None, StoredParts | None, list[str]]:
        """`load`, how the file list is stored (which `_write` needs) and the identities the
        dataset's document keeps (`applied_events.kept_identities`); `files=False`: the dataset
        alone (datablock `None`), for changes that leave the file list alone."""
        datasets = self._db[DATASET_COLLECTION]
        # One query per index, not an `$or` (which SecantusDB answers by scanning the collection).
        dataset_doc = await datasets.find_one({"pid": pid}, session=session)
        if latest:
            newest = await datasets.find_one(
                {"pipelineBasePid": pid}, sort=[("pipelineVersion", -1)], session=session
            )
            if newest is not None:
                dataset_doc = newest
        if dataset_doc is None:
            return None, None, []
        kept = kept_identities(dataset_doc)
        if not files:
            return CatalogueEntry(dataset=dataset_from(dataset_doc)), None, kept
        found = self._db[ORIG_DATABLOCK_COLLECTION].find(
            {"datasetId": dataset_doc["pid"]}, session=session
        )
        parts = datablock_parts.ours(dataset_doc["pid"], [doc async for doc in found])
        datablock, stored = datablock_parts.merged(parts, self._max_files)
        return CatalogueEntry(dataset=dataset_from(dataset_doc), datablock=datablock), stored, kept

    async def apply(self, event: AppliedEvent, decide: Decide) -> StoreOutcome:
        if self._client is None:
            raise RuntimeError("the MongoDB client is not open; use `async with store.connected()`")
        async with self._client.start_session() as session:
            try:
                async with await session.start_transaction(
                    write_concern=WriteConcern(w="majority")
                ):
                    await self._record_applied(event, session)
                    current, parts, kept = await self._load(event.pid, session=session)
                    # Applied by a batch with `DEDUPLICATION=offsets`, kept where it was written.
                    if event.identity in kept or copy_already_applied(current, event) is True:
                        raise AlreadyApplied
                    context = StoredContext(
                        beamtime=await stored_proposals.beamtime_facts(
                            self._db, event.beamtime_id, session
                        ),
                        measurement=None
                        if event.run is None
                        else await grouped_runs.record_run(self._db, event.run, session),
                    )
                    proposed = decide(current, context)
                    if proposed is None:
                        unchanged = None if current is None else current.dataset
                        return StoreOutcome(unchanged, changed=False, already_applied=False)
                    same_dataset = current is not None and current.pid == proposed.pid
                    stored = await self._write(
                        current if same_dataset else None,
                        parts if same_dataset else None,
                        proposed,
                        session,
                        kept,
                    )
            except AlreadyApplied:
                entry = await self.load(event.pid)
                dataset = None if entry is None else entry.dataset
                return StoreOutcome(dataset, changed=False, already_applied=True)
        return StoreOutcome(stored, changed=True, already_applied=False)

    async def apply_many(self, items: Sequence[BatchItem]) -> BatchOutcome:
        """Apply many events in order in ONE transaction (`batch_store`, which imports this)."""
        from scicat_ingestor.batch_store import apply_batch

        if self._client is None:
            raise RuntimeError("the MongoDB client is not open; use `async with store.connected()`")
        async with self._client.start_session() as session:
            try:
                outcome = await apply_batch(
                    self._db,
                    session,
                    items,
                    earlier_markers=self._earlier_markers,
                    datablock_max_files=self._max_files,
                    recent=self._recent,
                    fence_window=self._fence_window,
                )
            except MarkerConflict:
                self._earlier_markers = True
                raise
        for entry, parts in outcome.committed:  # committed: apply_batch returns after it
            self._recent.remember(entry, parts)
        return outcome

    async def apply_beamtime(
        self,
        event: AppliedEvent,
        proposals: tuple[Proposal, Proposal],
        complete: Complete,
        announce: Announce,
    ) -> BeamtimeOutcome:
        """See `beamtime_completion.apply_beamtime`."""
        if self._client is None:
            raise RuntimeError("the MongoDB client is not open; use `async with store.connected()`")
        return await beamtime_completion.apply_beamtime(
            self._client, self._db, event, proposals, complete, announce
        )

    async def measurement_of(self, beamtime_id: str, run_id: str) -> str | None:
        return await grouped_runs.measurement_of(self._db, beamtime_id, run_id)

    async def measurements_of(self, runs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        return await grouped_runs.measurements_of(self._db, runs)

    async def stale_open_datasets(self, *, quiet_since: datetime) -> list[tuple[str, int]]:
        cursor = self._db[DATASET_COLLECTION].find(
            {"datasetStatus": STATUS_OPEN, "updatedAt": {"$lt": quiet_since}},
            projection={"pid": True, "pipelineRevision": True},
        )
        return [(doc["pid"], int(doc.get("pipelineRevision") or 0)) async for doc in cursor]

    async def _record_applied(self, event: AppliedEvent, session: AsyncClientSession) -> None:
        marker = marker_document(
            [event.identity], pid=event.pid, types=[event.type], applied_at=event.applied_at
        )
        await record_applied(self._db, marker, session)

    async def _write(
        self,
        current: CatalogueEntry | None,
        parts: StoredParts | None,
        proposed: CatalogueEntry,
        session: AsyncClientSession,
        kept: list[str],
    ) -> Dataset:
        """`kept`: the identities the loaded dataset's document keeps, carried to a new version."""
        datasets = self._db[DATASET_COLLECTION]
        new_doc = dataset_doc(proposed.dataset)
        if current is None:
            if kept:
                new_doc[INGESTOR_APPLIED_EVENTS] = kept
            try:
                await datasets.insert_one({"_id": proposed.pid, **new_doc}, session=session)
            except DuplicateKeyError as error:
                raise ConcurrentUpdate(f"dataset {proposed.pid} was created meanwhile") from error
            stored = proposed.dataset
        else:
            changed = changed_fields(current.dataset, new_doc)
            after = await datasets.find_one_and_update(
                {"pid": proposed.pid, "pipelineRevision": revision_match(current.revision)},
                {"$set": changed},
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            if after is None:
                raise ConcurrentUpdate(
                    f"dataset {proposed.pid} is no longer at revision {current.revision}"
                )
            stored = dataset_from(after)
        if proposed.datablock is not None:
            before = None if current is None else current.datablock
            upserts, deletes = datablock_parts.writes(
                before, parts, proposed.datablock, self._max_files
            )
            if upserts or deletes:
                known = None if parts is None else parts.ids
                await self._db[ORIG_DATABLOCK_COLLECTION].bulk_write(
                    datablock_parts.operations(upserts, deletes, stored=known), session=session
                )
        return stored


__all__ = [
    "APPLIED_EVENT_COLLECTION",
    "RUN_COLLECTION",
    "AppliedEvent",
    "BeamtimeOutcome",
    "CatalogueStore",
    "Complete",
    "ConcurrentUpdate",
    "CorruptStoredDocument",
    "Decide",
    "GroupedRun",
    "MongoCatalogueStore",
    "StoreOutcome",
    "StoredContext",
]
