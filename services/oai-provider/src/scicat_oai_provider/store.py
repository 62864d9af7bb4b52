"""The OAI-PMH read model in MongoDB, behind the protocol the verbs use.

Collection `OaiRecord`, one document per DOI, `_id` = the OAI identifier, the source of truth:

    {_id, doi, publicationId, datestamp, deleted, sets: [{spec, name}],
     setPaths: [spec and every ancestor], formats: [prefix], metadata: {prefix: xml},
     contentHash, appliedEvents: [{event, content}], version}

and, derived from it in the same transaction, the list entries of `listing` (collection
`OaiListEntry`, one per record and format) that ListRecords and ListIdentifiers read, and the
facts about the store as a whole of `summary` (collection `OaiReadModel`). `setPaths` makes
hierarchical set selection an exact match (`set=a` finds `a:b`); the `datestamp` index finds
`earliestDatestamp` in a store that does not keep it yet. `Proposal` (SciCat's collection in
the same database) is read for beamtime → proposal relations. Writes use optimistic
concurrency on `version`, so two consumers racing on one DOI (during a rebalance) cannot lose
an update: the loser raises `ConcurrentUpdate` and its message is retried.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.write_concern import WriteConcern

from scicat_oai_provider.domain import (
    AppliedEvent,
    ListQuery,
    OaiRecord,
    RecordKey,
    SetEntry,
    set_ancestors,
)
from scicat_oai_provider.listing import (
    OAI_LIST_COLLECTION,
    Page,
    create_indexes,
    entry_documents,
    insert_missing_entries,
    list_filter,
    read_page,
    stale_entry_ids,
)
from scicat_oai_provider.sets import OPENAIRE_DATA
from scicat_oai_provider.summary import READ_MODEL_COLLECTION, SET_COLLECTION, ReadModelSummary
from scicat_schemas.runtime.settings import MongoSettings

OAI_RECORD_COLLECTION = "OaiRecord"
_LEGACY_INDEXES = frozenset(
    {"harvest_order", "harvest_order_by_set", "harvest_key", "harvest_key_by_set"}
)
"""Indexes of earlier layouts, when lists were read from `OaiRecord`; dropped at start-up."""
LAYOUT = 3
"""Layout 3: list entries in `OaiListEntry`. A store with a lower (or no) layout marker gets its
list entries built from `OaiRecord` at start-up, then the marker."""
_BACKFILL_BATCH = 500
PROPOSAL_COLLECTION = "Proposal"


class ConcurrentUpdate(RuntimeError):
    """Someone else changed the record since it was read; read again and retry."""


class OaiRecordStore(Protocol):
    async def get(self, identifier: str) -> OaiRecord | None: ...

    async def save(self, record: OaiRecord, *, expected_version: int | None) -> None:
        """Insert (`expected_version` None) or replace the version read; else `ConcurrentUpdate`."""
        ...

    async def earliest_datestamp(self) -> datetime | None: ...

    async def has_sets(self) -> bool:
        """Whether any record is in a set, i.e. whether a set hierarchy exists."""
        ...

    async def set_entries(self) -> list[SetEntry]:
        """Distinct minimal sets of all records (ancestors are added by the caller)."""
        ...

    async def page(
        self,
        query: ListQuery,
        *,
        after: RecordKey | None,
        limit: int,
        with_metadata: bool,
        span_seconds: int = 0,
    ) -> Page:
        """Up to `limit` list entries of `query` strictly after `after`, in `(datestamp, id)` order.

        `span_seconds` is the time window the previous page needed (0: unknown); the answer
        says what this page needed, for the next one.
        """
        ...

    async def count(self, query: ListQuery, *, after: RecordKey | None) -> int: ...


class ProposalDirectory(Protocol):
    async def proposal_parents(self, proposal_ids: Collection[str]) -> dict[str, str]:
        """`{beamtime id: parent proposal id}` for those of the ids that have a parent."""
        ...


def _to_document(record: OaiRecord) -> dict[str, Any]:
    paths = sorted({path for entry in record.sets for path in set_ancestors(entry.spec)})
    return {
        "_id": record.identifier,
        "doi": record.doi,
        "publicationId": record.publication_id,
        "datestamp": record.datestamp,
        "deleted": record.deleted,
        "sets": [{"spec": s.spec, "name": s.name} for s in record.sets],
        "setPaths": paths,
        "formats": list(record.formats),
        "metadata": dict(record.metadata),
        "contentHash": record.content_hash,
        "appliedEvents": [{"event": a.event, "content": a.content} for a in record.applied],
        "version": record.version,
    }


def _from_document(document: dict[str, Any]) -> OaiRecord:
    return OaiRecord(
        identifier=document["_id"],
        doi=document["doi"],
        publication_id=document.get("publicationId"),
        datestamp=document["datestamp"].astimezone(UTC),
        deleted=bool(document.get("deleted")),
        sets=tuple(SetEntry(s["spec"], s["name"]) for s in document.get("sets", [])),
        formats=tuple(document.get("formats", [])),
        metadata=document.get("metadata", {}),
        content_hash=document.get("contentHash", ""),
        applied=tuple(
            AppliedEvent(a["event"], a["content"]) for a in document.get("appliedEvents", [])
        ),
        version=int(document.get("version", 0)),
    )


class MongoOaiRecordStore:
    """`OaiRecordStore` on MongoDB; the client is opened and closed by the app's lifespan."""

    def __init__(self, settings: MongoSettings) -> None:
        self._settings = settings
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._collection: AsyncCollection[dict[str, Any]] | None = None
        self._entries: AsyncCollection[dict[str, Any]] | None = None
        self._summary: ReadModelSummary | None = None

    async def open(self) -> None:
        """Connect, create the indexes, and bring a read model of an earlier layout up to date.

        Idempotent, and safe to interrupt: the layout marker is written only after every list
        entry exists, so an interrupted upgrade is resumed at the next start.
        """
        self._client = AsyncMongoClient(
            self._settings.uri,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=self._settings.timeout_ms,
        )
        database = self._client[self._settings.database]
        self._collection = database[OAI_RECORD_COLLECTION]
        self._entries = database[OAI_LIST_COLLECTION]
        await self._collection.create_index([("datestamp", ASCENDING)], name="datestamp")
        await create_indexes(self._entries)
        existing = await self._collection.index_information()
        for legacy in _LEGACY_INDEXES & existing.keys():
            await self._collection.drop_index(legacy)
        self._summary = summary = ReadModelSummary(
            database[READ_MODEL_COLLECTION], database[SET_COLLECTION]
        )
        if await self._collection.estimated_document_count() == 0:
            await summary.start_empty_store()
        if await summary.layout() < LAYOUT:
            await self._build_list_entries()
            await summary.set_layout(LAYOUT)

    async def _build_list_entries(self) -> None:
        """Writes the list entries and summary of every stored record (upgrade)."""
        batch: list[OaiRecord] = []
        async for document in self.collection.find({}, projection={"appliedEvents": 0}):
            batch.append(_from_document(document))
            if len(batch) == _BACKFILL_BATCH:
                await insert_missing_entries(self.entries, batch)
                await self._summarize(batch)
                batch = []
        await insert_missing_entries(self.entries, batch)
        if batch:
            await self._summarize(batch)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._collection = self._entries = self._summary = None

    @property
    def collection(self) -> AsyncCollection[dict[str, Any]]:
        if self._collection is None:
            raise RuntimeError("the OAI record store is not open")
        return self._collection

    @property
    def entries(self) -> AsyncCollection[dict[str, Any]]:
        """The list entries (`listing`), derived from `collection`."""
        if self._entries is None:
            raise RuntimeError("the OAI record store is not open")
        return self._entries

    @property
    def summary(self) -> ReadModelSummary:
        if self._summary is None:
            raise RuntimeError("the OAI record store is not open")
        return self._summary

    async def ping(self) -> bool:
        if self._client is None:
            return False
        await self._client.admin.command("ping")
        return True

    async def get(self, identifier: str) -> OaiRecord | None:
        document = await self.collection.find_one({"_id": identifier})
        return _from_document(document) if document else None

    async def save(self, record: OaiRecord, *, expected_version: int | None) -> None:
        """The record and its list entries in one transaction, so lists never lag the record.

        A write conflict with another transaction on the same DOI is a `ConcurrentUpdate` too.
        """
        if self._client is None:
            raise RuntimeError("the OAI record store is not open")
        document = _to_document(record)
        async with self._client.start_session() as session:
            try:
                async with await session.start_transaction(
                    write_concern=WriteConcern(w="majority")
                ):
                    await self._write_record(document, expected_version, session)
                    await self.summary.note_written(
                        record.datestamp, sets=record.sets, session=session
                    )
                    for entry in entry_documents(record):
                        await self.entries.replace_one(
                            {"_id": entry["_id"]}, entry, upsert=True, session=session
                        )
                    if stale := stale_entry_ids(record):
                        await self.entries.delete_many({"_id": {"$in": stale}}, session=session)
                self.summary.committed(sets=record.sets)
            except DuplicateKeyError as error:
                raise ConcurrentUpdate(f"{record.identifier} was created meanwhile") from error
            except OperationFailure as error:
                if error.has_error_label("TransientTransactionError"):
                    raise ConcurrentUpdate(
                        f"{record.identifier} is being written by someone else"
                    ) from error
                raise

    async def _write_record(
        self, document: dict[str, Any], expected_version: int | None, session: Any
    ) -> None:
        if expected_version is None:
            await self.collection.insert_one(document, session=session)
            return
        result = await self.collection.replace_one(
            {"_id": document["_id"], "version": expected_version}, document, session=session
        )
        if result.matched_count != 1:
            raise ConcurrentUpdate(
                f"{document['_id']} changed since version {expected_version} was read"
            )

    async def insert_many(self, records: Iterable[OaiRecord]) -> int:
        """Bulk-load new pre-rendered records and their list entries (seeding, benchmarks).

        Not for the event path: it skips the optimistic concurrency and the transaction `save`
        gives, and an identifier that exists already fails the whole call with `BulkWriteError`.
        """
        batch = list(records)
        if batch:
            await self.collection.insert_many([_to_document(r) for r in batch], ordered=False)
            entries = [entry for record in batch for entry in entry_documents(record)]
            if entries:
                await self.entries.insert_many(entries, ordered=False)
            await self._summarize(batch)
        return len(batch)

    async def _summarize(self, records: list[OaiRecord]) -> None:
        """The summary of records written without `save` (bulk load, upgrade)."""
        sets = [entry for record in records for entry in record.sets]
        earliest = min(record.datestamp for record in records)
        await self.summary.note_written(earliest, sets=sets, session=None)
        self.summary.committed(sets=sets)

    async def earliest_datestamp(self) -> datetime | None:
        """A lower bound of every datestamp (the smallest, unless that record was re-dated since).

        Kept in `OaiReadModel` (see `summary`): records are stamped "now", never before it, so
        the bound only loosens when the earliest record is re-dated, and a lower bound is all
        Identify and the first list page need.
        """
        return await self.summary.earliest(self._search_earliest_datestamp)

    async def _search_earliest_datestamp(self) -> datetime | None:
        document = await self.collection.find_one(
            {}, projection={"datestamp": 1}, sort=[("datestamp", ASCENDING)]
        )
        return None if document is None else document["datestamp"].astimezone(UTC)

    async def has_sets(self) -> bool:
        """Kept in `OaiReadModel` (see `summary`); a record never leaves its sets."""
        return await self.summary.has_sets(self._search_sets)

    async def _search_sets(self) -> bool:
        document = await self.collection.find_one(
            {"setPaths.0": {"$exists": True}}, projection={"_id": 1}
        )
        return document is not None

    async def set_entries(self) -> list[SetEntry]:
        """Kept in `OaiSet` (see `summary`); a record never leaves its sets."""
        return await self.summary.set_entries()

    async def page(
        self,
        query: ListQuery,
        *,
        after: RecordKey | None,
        limit: int,
        with_metadata: bool,
        span_seconds: int = 0,
    ) -> Page:
        """One indexed query on the list entries per time window; see `listing.read_page`."""
        start = after.datestamp if after else query.from_ or await self.earliest_datestamp()
        if start is None or start > query.until:
            return Page([], span_seconds)
        return await read_page(
            self.entries,
            query,
            start=start,
            after=after,
            limit=limit,
            with_metadata=with_metadata,
            span_seconds=span_seconds,
        )

    async def count(self, query: ListQuery, *, after: RecordKey | None) -> int:
        """Exact for selective lists; for a whole-repository list, the collection's size.

        Counting means reading every matching key; for the full list, or `openaire_data` (the
        set of every record, OpenAIRE's usual harvest), that is the whole collection, once per
        harvest. OAI-PMH allows `completeListSize` to be an estimate, and the collection's size
        overestimates only by the tombstones without formats and the records of the current
        second.
        """
        whole = query.set_spec is None or query.set_spec == OPENAIRE_DATA
        if after is None and query.from_ is None and whole:
            return await self.collection.estimated_document_count()
        return await self.entries.count_documents(list_filter(query, after))

    async def proposal_parents(self, proposal_ids: Collection[str]) -> dict[str, str]:
        """Reads SciCat's `Proposal` collection (same database), where beamtimes name a parent."""
        if not proposal_ids or self._client is None:
            return {}
        ids = sorted(set(proposal_ids))
        proposals = self._client[self._settings.database][PROPOSAL_COLLECTION]
        cursor = proposals.find(
            {
                "$or": [{"_id": {"$in": ids}}, {"proposalId": {"$in": ids}}],
                "parentProposalId": {"$type": "string"},
            },
            projection={"proposalId": 1, "parentProposalId": 1},
        )
        parents: dict[str, str] = {}
        async for document in cursor:
            child = document.get("proposalId") or document["_id"]
            if isinstance(child, str) and document["parentProposalId"] != child:
                parents[child] = document["parentProposalId"]
        return parents
