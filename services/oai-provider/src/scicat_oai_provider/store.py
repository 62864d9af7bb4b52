"""The OAI-PMH read model in MongoDB (collection `OaiRecord`), behind the protocol the verbs use.

One document per DOI, `_id` = the OAI identifier:

    {_id, harvestKey, doi, publicationId, datestamp, deleted, sets: [{spec, name}],
     setPaths: [spec and every ancestor], formats: [prefix], metadata: {prefix: xml},
     contentHash, appliedEvents: [{event, content}], version}

`harvestKey` is the keyset order `(datestamp, _id)` as one sortable string; `setPaths` makes
hierarchical set selection an exact match (`set=a` finds `a:b`); the indexes `harvest_key` and
`harvest_key_by_set` serve a page with and without a set. `Proposal` (SciCat's collection in the
same database) is read for beamtime → proposal relations. Writes use
optimistic concurrency on `version`, so two consumers racing on one DOI (during a rebalance)
cannot lose an update: the loser raises `ConcurrentUpdate` and its message is retried.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from scicat_oai_provider.domain import (
    AppliedEvent,
    ListQuery,
    OaiRecord,
    RecordKey,
    SetEntry,
    set_ancestors,
)
from scicat_schemas.runtime.settings import MongoSettings

OAI_RECORD_COLLECTION = "OaiRecord"
_LEGACY_INDEXES = frozenset({"harvest_order", "harvest_order_by_set"})
"""Indexes of the `(datestamp, _id)` order that `harvestKey` replaced; dropped at start-up."""
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
        """Up to `limit` records of `query` strictly after `after`, in `(datestamp, id)` order.

        `span_seconds` is the time window the previous page needed (0: unknown); the answer
        says what this page needed, for the next one.
        """
        ...

    async def count(self, query: ListQuery, *, after: RecordKey | None) -> int: ...


class ProposalDirectory(Protocol):
    async def proposal_parents(self, proposal_ids: Collection[str]) -> dict[str, str]:
        """`{beamtime id: parent proposal id}` for those of the ids that have a parent."""
        ...


@dataclass(frozen=True)
class Page:
    records: list[OaiRecord]
    span_seconds: int


def harvest_key(datestamp: datetime, identifier: str) -> str:
    """The harvest order `(datestamp, identifier)` as one string that sorts the same way.

    The datestamp part has a fixed width, so string order is tuple order, and a bare datestamp
    prefix is a bound: every key of an earlier second sorts below it, every key of that second
    or later above.
    """
    return f"{_second(datestamp)} {identifier}"


def _second(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _filter(query: ListQuery, after: RecordKey | None, *, below: datetime | None = None) -> Any:
    """One range on `harvestKey` (+ set equality): `(from | after, min(until, below))`.

    The format is not part of it: nearly every record has every format, and the few that have
    none (withdrawn before they were disseminated) are cheaper to skip after reading.
    """
    upper = query.until + timedelta(seconds=1)
    key: dict[str, str] = {"$lt": _second(min(upper, below) if below else upper)}
    if after is not None:
        key["$gt"] = harvest_key(after.datestamp, after.identifier)
    elif query.from_ is not None:
        key["$gte"] = _second(query.from_)
    selector: dict[str, Any] = {"harvestKey": key}
    if query.set_spec is not None:
        selector["setPaths"] = query.set_spec
    return selector


_HEADER_FIELDS = ("doi", "publicationId", "datestamp", "deleted", "sets", "formats")
"""What a list page reads besides the one format's metadata: an inclusion projection, which
SecantusDB applies by copying a few fields instead of deep-copying the whole document."""


def _window_seconds(seconds_per_page: int) -> int:
    """Seconds of harvest order to read for a page, from the density last seen, plus 25 %."""
    return max(seconds_per_page + seconds_per_page // 4, 1)


def _to_document(record: OaiRecord) -> dict[str, Any]:
    paths = sorted({path for entry in record.sets for path in set_ancestors(entry.spec)})
    return {
        "_id": record.identifier,
        "harvestKey": harvest_key(record.datestamp, record.identifier),
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
        self._earliest: datetime | None = None
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        self._collection: AsyncCollection[dict[str, Any]] | None = None

    async def open(self) -> None:
        """Connect and create the indexes the harvest queries need (idempotent)."""
        self._client = AsyncMongoClient(
            self._settings.uri,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=self._settings.timeout_ms,
        )
        self._collection = self._client[self._settings.database][OAI_RECORD_COLLECTION]
        await self._collection.create_index([("harvestKey", ASCENDING)], name="harvest_key")
        await self._collection.create_index(
            [("setPaths", ASCENDING), ("harvestKey", ASCENDING)], name="harvest_key_by_set"
        )
        await self._collection.create_index([("datestamp", ASCENDING)], name="datestamp")
        existing = await self._collection.index_information()
        for legacy in _LEGACY_INDEXES & existing.keys():
            await self._collection.drop_index(legacy)
        async for document in self._collection.find(
            {"harvestKey": {"$exists": False}}, projection={"datestamp": 1}
        ):
            await self._collection.update_one(
                {"_id": document["_id"]},
                {"$set": {"harvestKey": harvest_key(document["datestamp"], document["_id"])}},
            )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = self._collection = None

    @property
    def collection(self) -> AsyncCollection[dict[str, Any]]:
        if self._collection is None:
            raise RuntimeError("the OAI record store is not open")
        return self._collection

    async def ping(self) -> bool:
        if self._client is None:
            return False
        await self._client.admin.command("ping")
        return True

    async def get(self, identifier: str) -> OaiRecord | None:
        document = await self.collection.find_one({"_id": identifier})
        return _from_document(document) if document else None

    async def save(self, record: OaiRecord, *, expected_version: int | None) -> None:
        document = _to_document(record)
        self._note_datestamp(record.datestamp)
        if expected_version is None:
            try:
                await self.collection.insert_one(document)
            except DuplicateKeyError as error:
                raise ConcurrentUpdate(f"{record.identifier} was created meanwhile") from error
            return
        result = await self.collection.replace_one(
            {"_id": record.identifier, "version": expected_version}, document
        )
        if result.matched_count != 1:
            raise ConcurrentUpdate(
                f"{record.identifier} changed since version {expected_version} was read"
            )

    async def insert_many(self, records: Iterable[OaiRecord]) -> int:
        """Bulk-load new pre-rendered records (seeding, benchmarks); returns how many.

        Not for the event path: it skips the optimistic concurrency `save` gives, and an
        identifier that exists already fails the whole call with `BulkWriteError`.
        """
        documents = [_to_document(record) for record in records]
        for document in documents:
            self._note_datestamp(document["datestamp"])
        if documents:
            await self.collection.insert_many(documents, ordered=False)
        return len(documents)

    async def earliest_datestamp(self) -> datetime | None:
        """A lower bound of every datestamp (the smallest, unless that record was re-dated since).

        Looked up once, then kept: records are stamped "now", never before it, so the bound only
        loosens when the earliest record is re-dated, and a lower bound is all Identify and the
        first list page need.
        """
        if self._earliest is None:
            document = await self.collection.find_one(
                {}, projection={"datestamp": 1}, sort=[("datestamp", ASCENDING)]
            )
            if document is not None:
                self._earliest = document["datestamp"].astimezone(UTC)
        return self._earliest

    def _note_datestamp(self, datestamp: datetime) -> None:
        """Keep the bound true after a write; unknown stays unknown (looked up when needed)."""
        if self._earliest is not None and datestamp < self._earliest:
            self._earliest = datestamp

    async def has_sets(self) -> bool:
        document = await self.collection.find_one(
            {"setPaths.0": {"$exists": True}}, projection={"_id": 1}
        )
        return document is not None

    async def set_entries(self) -> list[SetEntry]:
        cursor = await self.collection.aggregate(
            [
                {"$unwind": "$sets"},
                {"$group": {"_id": "$sets.spec", "name": {"$first": "$sets.name"}}},
                {"$sort": {"_id": 1}},
            ]
        )
        return [SetEntry(document["_id"], document["name"]) async for document in cursor]

    async def page(
        self,
        query: ListQuery,
        *,
        after: RecordKey | None,
        limit: int,
        with_metadata: bool,
        span_seconds: int = 0,
    ) -> Page:
        """Walks the harvest order in time windows of adaptive width, each one indexed range.

        A plain `range + sort + limit` is ideal on MongoDB, but engines without sort-by-index
        and without a limit pushed into the index walk (the embedded SecantusDB) read, decode
        and match every document of the range before sorting and cutting it, which makes a full
        harvest quadratic. Bounding each query to a window keeps every query near one page on
        any engine. The window is sized from the record density the previous page saw (carried
        in the token as the seconds `limit` records needed) with 25 % headroom, because every
        document read beyond the page is paid for and then dropped; a window that comes up
        short is followed by one sized for the records still missing (four times wider when it
        was empty, so sparse years are crossed in a few queries).
        """
        projection = dict.fromkeys(_HEADER_FIELDS, 1)
        if with_metadata:
            projection[f"metadata.{query.metadata_prefix}"] = 1
        start = after.datestamp if after else query.from_ or await self.earliest_datestamp()
        if start is None or start > query.until:
            return Page([], span_seconds)
        seconds = _window_seconds(span_seconds)
        window_start, position = start, after
        records: list[OaiRecord] = []
        while len(records) < limit and window_start <= query.until:
            below = window_start + timedelta(seconds=seconds)
            cursor = (
                self.collection.find(_filter(query, position, below=below), projection=projection)
                .sort("harvestKey", ASCENDING)
                .limit(limit - len(records))
            )
            found = [_from_document(document) async for document in cursor]
            if found:
                position = found[-1].key
            records += [r for r in found if query.metadata_prefix in r.formats]
            missing = limit - len(records)
            if missing > 0:
                window_start = below
                seconds = _window_seconds(seconds * missing // len(found)) if found else seconds * 4
        if not records:
            return Page(records, seconds)
        used = (records[-1].datestamp - start).total_seconds() + 1
        return Page(records, max(int(used * limit / len(records)), 1))

    async def count(self, query: ListQuery, *, after: RecordKey | None) -> int:
        """Exact for selective lists; for a whole-repository list, the collection's size.

        Counting means reading every matching key; for the full list that is the whole
        collection, once per harvest. OAI-PMH allows `completeListSize` to be an estimate, and
        the collection's size overestimates only by the tombstones without formats and the
        records of the current second.
        """
        if after is None and query.from_ is None and query.set_spec is None:
            return await self.collection.estimated_document_count()
        selector = _filter(query, after) | {"formats": query.metadata_prefix}
        return await self.collection.count_documents(selector)

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
