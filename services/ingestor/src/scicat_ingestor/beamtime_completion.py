"""A `beamtime.updated` applied to its proposals and to every dataset of its beamtime.

Not one transaction: a beamtime of thousands of datasets would outlast MongoDB's transaction
lifetime (60 s by default) and be retried for ever. The proposals first (written only when
changed), then the datasets `BEAMTIME_DATASETS_PER_TRANSACTION` per transaction, then the marker.
Each step is idempotent (a proposal or dataset already completed is not written again) and the
marker comes last, so an interrupted update is redone from the start and finishes; what it
changed and did not announce is announced by the next update (`beamtime_announcements`). A
dataset whose stored document does not validate is left alone and reported, not allowed to stop
the others: one damaged dataset must not keep thousands from their new access groups. The
update is then not recorded as applied, so replaying its dead letter after the repair completes
the rest.

A chunk costs four commands whatever its size: one `find` of its datasets (without their file
lists, which completing never changes), one `bulk_write` of the changed ones (each conditional
on the revision read), one `bulk_write` giving the datablocks of datasets whose groups changed
those groups, one `find` reading the changed datasets back. One command per dataset made a
beamtime of 5,000 datasets ~15,000 round trips.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymongo import UpdateMany, UpdateOne, WriteConcern
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.asynchronous.mongo_client import AsyncMongoClient

from scicat_ingestor import beamtime_announcements, stored_proposals
from scicat_ingestor.applied_events import (
    AlreadyApplied,
    applied_among,
    marker_document,
    record_applied,
)
from scicat_ingestor.domain import CatalogueEntry
from scicat_ingestor.store_values import AppliedEvent, BeamtimeOutcome, Complete, ConcurrentUpdate
from scicat_ingestor.stored_documents import (
    CorruptStoredDocument,
    changed_fields,
    dataset_doc,
    dataset_from,
    revision_match,
)
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    ORIG_DATABLOCK_COLLECTION,
    Dataset,
    Proposal,
)

BEAMTIME_DATASETS_PER_TRANSACTION = 100
"""Datasets completed per transaction."""

Db = AsyncDatabase[dict[str, Any]]

Announce = Callable[[Sequence[Dataset]], Awaitable[None]]
"""Publish `dataset.stored` for each, in order; return once all are durable."""


async def apply_beamtime(
    client: AsyncMongoClient[dict[str, Any]],
    db: Db,
    event: AppliedEvent,
    proposals: tuple[Proposal, Proposal],
    complete: Complete,
    announce: Announce,
) -> BeamtimeOutcome:
    """Store the DOOR proposal and its beamtime and complete the beamtime's datasets, once.

    After each chunk's commit, `announce` gets the datasets to announce: the changed ones, or
    all of them while an earlier update may have left changes unannounced
    (`beamtime_announcements`); chunk by chunk, so a beamtime of 100,000 datasets is never held
    in memory at once.
    """
    parent, child = proposals
    beamtime = child.proposalId
    majority = WriteConcern(w="majority")
    announced, changed, damaged = 0, False, []
    async with client.start_session() as session:
        if await applied_among(db, [event.identity], session):
            return await _already_applied(db, beamtime, event.identity, announce)
        async with await session.start_transaction(write_concern=majority):
            await stored_proposals.save_proposals(db, parent, child, session)
            unannounced = await beamtime_announcements.flag(db, beamtime, event.identity, session)
        pids = await stored_proposals.pids_of_beamtime(db, beamtime, session)
        for start in range(0, len(pids), BEAMTIME_DATASETS_PER_TRANSACTION):
            chunk = pids[start : start + BEAMTIME_DATASETS_PER_TRANSACTION]
            async with await session.start_transaction(write_concern=majority):
                completed, unreadable = await complete_datasets(db, session, chunk, complete)
            due = [dataset for dataset, wrote in completed if wrote or unannounced]
            await announce(due)
            announced += len(due)
            changed = changed or any(wrote for _, wrote in completed)
            damaged += unreadable
        if damaged:
            await beamtime_announcements.announced(db, beamtime, event.identity)
            return BeamtimeOutcome(announced, changed, already_applied=False, damaged=damaged)
        marker = marker_document(
            [event.identity], pid=event.pid, types=[event.type], applied_at=event.applied_at
        )
        try:
            async with await session.start_transaction(write_concern=majority):
                await record_applied(db, marker, session)
        except AlreadyApplied:
            return await _already_applied(db, beamtime, event.identity, announce)
    await beamtime_announcements.announced(db, beamtime, event.identity)
    return BeamtimeOutcome(announced, changed, already_applied=False)


async def complete_datasets(
    db: Db, session: AsyncClientSession, pids: Sequence[str], complete: Complete
) -> tuple[list[tuple[Dataset, bool]], list[str]]:
    """Each of `pids` still stored and readable, completed, in order: the dataset as stored now
    and whether this changed it (`ConcurrentUpdate` when another writer changed one meanwhile);
    and why each unreadable one was left alone."""
    found = db[DATASET_COLLECTION].find({"pid": {"$in": list(pids)}}, session=session)
    docs = {doc["pid"]: doc async for doc in found}
    results: dict[str, tuple[Dataset, bool]] = {}
    damaged: list[str] = []
    writes: list[UpdateOne] = []
    group_writes: list[UpdateMany] = []
    for pid in pids:
        if pid not in docs:
            continue  # removed since the pids were read
        try:
            current = dataset_from(docs[pid])
        except CorruptStoredDocument as error:
            damaged.append(str(error))
            continue
        completed = complete(CatalogueEntry(dataset=current))
        if completed is None:
            results[pid] = (current, False)
            continue
        proposed = completed.dataset
        writes.append(
            UpdateOne(
                {"pid": pid, "pipelineRevision": revision_match(current.pipelineRevision)},
                {"$set": changed_fields(current, dataset_doc(proposed))},
            )
        )
        groups = (proposed.ownerGroup, proposed.accessGroups)
        if groups != (current.ownerGroup, current.accessGroups):
            group_writes.append(
                UpdateMany(
                    {"datasetId": pid},
                    {"$set": {"ownerGroup": groups[0], "accessGroups": groups[1]}},
                )
            )
        results[pid] = (proposed, True)
    if writes:
        result = await db[DATASET_COLLECTION].bulk_write(writes, session=session)
        if result.matched_count != len(writes):
            raise ConcurrentUpdate(
                f"{len(writes) - result.matched_count} dataset(s) of the beamtime changed "
                "revision meanwhile"
            )
    if group_writes:
        await db[ORIG_DATABLOCK_COLLECTION].bulk_write(group_writes, session=session)
    written = [pid for pid, (_, wrote) in results.items() if wrote]
    if written:
        # Read back: a stored dataset may carry fields someone else set.
        read = db[DATASET_COLLECTION].find({"pid": {"$in": written}}, session=session)
        async for doc in read:
            results[doc["pid"]] = (dataset_from(doc), True)
    return [results[pid] for pid in pids if pid in results], damaged


async def _already_applied(
    db: Db, beamtime_id: str, update: str, announce: Announce
) -> BeamtimeOutcome:
    """Announce the beamtime's datasets again, chunk by chunk and without their file lists
    (thousands of datasets of thousands of files each, read for nothing), unless every change
    was announced already."""
    if not await beamtime_announcements.flagged(db, beamtime_id):
        return BeamtimeOutcome(0, changed=False, already_applied=True)
    await beamtime_announcements.flag_if_unknown(db, beamtime_id, update)
    announced, damaged = 0, []
    chunk: list[Dataset] = []
    async for doc in stored_proposals.datasets_of_beamtime(db, beamtime_id):
        try:
            chunk.append(dataset_from(doc))
        except CorruptStoredDocument as error:
            damaged.append(str(error))
        if len(chunk) == BEAMTIME_DATASETS_PER_TRANSACTION:
            await announce(chunk)
            announced, chunk = announced + len(chunk), []
    await announce(chunk)
    await beamtime_announcements.announced(db, beamtime_id, update)
    return BeamtimeOutcome(
        announced + len(chunk), changed=False, already_applied=True, damaged=damaged
    )
