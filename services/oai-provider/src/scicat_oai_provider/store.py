"""The OAI-PMH read model in MongoDB (collection `OaiRecord`), behind the protocol the verbs use.

One document per DOI, `_id` = the OAI identifier:

    {_id, doi, publicationId, datestamp, deleted, sets: [{spec, name}], setPaths: [spec and
     every ancestor], formats: [prefix], metadata: {prefix: xml}, contentHash,
     appliedEvents: [{event, content}], version}

`setPaths` makes hierarchical set selection an exact match (`set=a` finds `a:b`), and the two
compound indexes serve the keyset order `(datestamp, _id)` with and without a set. Writes use
optimistic concurrency on `version`, so two consumers racing on one DOI (during a rebalance)
cannot lose an update: the loser raises `ConcurrentUpdate` and its message is retried.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from scicat_oai_provider.domain import (
    METADATA_FORMATS,
    AppliedEvent,
    ListQuery,
    OaiRecord,
    RecordKey,
    SetEntry,
    set_ancestors,
)
from scicat_schemas.runtime.settings import MongoSettings

OAI_RECORD_COLLECTION = "OaiRecord"
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
        self, query: ListQuery, *, after: RecordKey | None, limit: int, with_metadata: bool
    ) -> list[OaiRecord]:
        """Up to `limit` records of `query` strictly after `after`, in `(datestamp, id)` order."""
        ...

    async def count(self, query: ListQuery, *, after: RecordKey | None) -> int: ...


class ProposalDirectory(Protocol):
    async def proposal_parents(self, proposal_ids: Collection[str]) -> dict[str, str]:
        """`{beamtime id: parent proposal id}` for those of the ids that have a parent."""
        ...


def _filter(query: ListQuery, after: RecordKey | None) -> dict[str, Any]:
    window: dict[str, Any] = {"$lte": query.until}
    if query.from_ is not None:
        window["$gte"] = query.from_
    clauses: list[dict[str, Any]] = [
        {"formats": query.metadata_prefix},
        {"datestamp": window},
    ]
    if query.set_spec is not None:
        clauses.append({"setPaths": query.set_spec})
    if after is not None:
        clauses.append(
            {
                "$or": [
                    {"datestamp": {"$gt": after.datestamp}},
                    {"datestamp": after.datestamp, "_id": {"$gt": after.identifier}},
                ]
            }
        )
    return {"$and": clauses}


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

    async def open(self) -> None:
        """Connect and create the indexes the harvest queries need (idempotent)."""
        self._client = AsyncMongoClient(
            self._settings.uri,
            tz_aware=True,
            tzinfo=UTC,
            serverSelectionTimeoutMS=self._settings.timeout_ms,
        )
        self._collection = self._client[self._settings.database][OAI_RECORD_COLLECTION]
        await self._collection.create_index(
            [("datestamp", ASCENDING), ("_id", ASCENDING)], name="harvest_order"
        )
        await self._collection.create_index(
            [("setPaths", ASCENDING), ("datestamp", ASCENDING), ("_id", ASCENDING)],
            name="harvest_order_by_set",
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

    async def earliest_datestamp(self) -> datetime | None:
        document = await self.collection.find_one(
            {}, projection={"datestamp": 1}, sort=[("datestamp", ASCENDING), ("_id", ASCENDING)]
        )
        return document["datestamp"].astimezone(UTC) if document else None

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
        self, query: ListQuery, *, after: RecordKey | None, limit: int, with_metadata: bool
    ) -> list[OaiRecord]:
        projection: dict[str, Any] = {"appliedEvents": 0, "setPaths": 0}
        if with_metadata:
            projection |= {
                f"metadata.{prefix}": 0
                for prefix in METADATA_FORMATS
                if prefix != query.metadata_prefix
            }
        else:
            projection["metadata"] = 0
        cursor = (
            self.collection.find(_filter(query, after), projection=projection)
            .sort([("datestamp", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_from_document(document) async for document in cursor]

    async def count(self, query: ListQuery, *, after: RecordKey | None) -> int:
        return await self.collection.count_documents(_filter(query, after))

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
