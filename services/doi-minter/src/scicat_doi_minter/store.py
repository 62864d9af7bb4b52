"""What the minter reads and writes in the SciCat MongoDB, behind one small interface.

Every write is safe to repeat: a redelivered request must converge on the same documents, so
datasets are flipped to published by a conditional update (the revision moves once), and a
registered PublishedData is never overwritten by a pending copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Protocol

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from scicat_schemas.documents import (
    DATASET_COLLECTION,
    PROPOSAL_COLLECTION,
    PUBLISHED_DATA_COLLECTION,
    Dataset,
    DatasetSummary,
    Proposal,
    ProposalSummary,
    PublicationRecord,
    PublishedData,
)
from scicat_schemas.runtime.settings import MongoSettings

REGISTERED_STATUSES = ("registered", "amended")
SHOWN_STATUSES = (*REGISTERED_STATUSES, "withdrawn")

SUMMARIES_FIELD = "datasetSummaries"
"""Pipeline field of PublishedData: the dataset summaries DataCite's metadata was built from, so the
landing page and OAI-PMH render exactly what was registered even after a dataset changes."""

PROPOSAL_FIELD = "proposalSummary"
"""Pipeline field of PublishedData: the proposal a proposal DOI was built from."""

REQUEST_FIELD = "publicationRequest"
"""Pipeline field of PublishedData: the effective request (after amendments) it was built from, so
an amendment rebuilds the metadata along the same path as the first registration."""

LAST_ERROR_FIELD = "lastError"
"""Pipeline field of PublishedData: why the last registration attempt failed; unset on success."""


class StoredDatasetInvalid(ValueError):
    """A Dataset document that does not parse as a SciCat v4 Dataset (written by someone else)."""


class PublicationStore(Protocol):
    async def find_datasets(self, pids: list[str]) -> list[Dataset]: ...

    async def find_proposal(self, proposal_id: str) -> Proposal | None: ...

    async def find_proposal_publications(self, proposal_ids: list[str]) -> list[PublishedData]:
        """Registered proposal DOIs of these proposals."""

    async def find_dataset_publications(self, proposal_id: str) -> list[PublishedData]:
        """Registered dataset DOIs whose datasets belong to this proposal."""

    async def get_request(self, doi: str) -> dict[str, Any] | None: ...

    async def still_published(self, pids: list[str], *, except_doi: str) -> set[str]:
        """Which of `pids` another registered publication names."""

    async def mark_datasets_unpublished(self, pids: list[str], *, at: datetime) -> list[Dataset]:
        """Clear `isPublished`; the revision moves only for datasets published before."""

    async def save_withdrawn(self, publication: PublishedData) -> None: ...

    async def get_record(self, doi: str) -> PublicationRecord | None:
        """A registered, amended or withdrawn publication; None for anything else."""

    async def get_published(self, doi: str) -> PublishedData | None: ...

    async def save_pending(
        self, publication: PublishedData, datasets: list[DatasetSummary], **extra: Any
    ) -> None:
        """Store a publication about to be registered, unless it is registered already.

        `extra`: pipeline fields stored beside it (`proposalSummary`, `publicationRequest`)."""

    async def record_error(self, doi: str, error: str) -> None: ...

    async def mark_datasets_published(self, pids: list[str], *, at: datetime) -> list[Dataset]:
        """Set `isPublished`; the revision moves only for datasets not published before."""

    async def save_registered(
        self, publication: PublishedData, datasets: list[DatasetSummary], **extra: Any
    ) -> None: ...

    async def get_registered_record(self, doi: str) -> PublicationRecord | None: ...

    async def ping(self) -> bool: ...


class MongoPublicationStore:
    """The SciCat `Dataset` and `PublishedData` collections through PyMongo's async client."""

    def __init__(self, settings: MongoSettings) -> None:
        self.settings = settings
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[MongoPublicationStore]:
        """The client belongs to one event loop, so it is opened inside the app's lifespan."""
        self._client = AsyncMongoClient(
            self.settings.uri, tz_aware=True, serverSelectionTimeoutMS=self.settings.timeout_ms
        )
        try:
            yield self
        finally:
            client, self._client = self._client, None
            await client.close()

    def _collection(self, name: str) -> AsyncCollection[dict[str, Any]]:
        if self._client is None:
            raise RuntimeError("MongoPublicationStore used outside `opened()`")
        return self._client[self.settings.database][name]

    @property
    def datasets(self) -> AsyncCollection[dict[str, Any]]:
        return self._collection(DATASET_COLLECTION)

    @property
    def published_data(self) -> AsyncCollection[dict[str, Any]]:
        return self._collection(PUBLISHED_DATA_COLLECTION)

    async def ping(self) -> bool:
        if self._client is None:
            return False
        await self._client.admin.command("ping")
        return True

    async def find_datasets(self, pids: list[str]) -> list[Dataset]:
        documents = await self.datasets.find({"pid": {"$in": pids}}).to_list(None)
        return [_dataset(document) for document in documents]

    async def get_published(self, doi: str) -> PublishedData | None:
        document = await self.published_data.find_one({"_id": doi})
        return _published(document) if document else None

    async def find_proposal(self, proposal_id: str) -> Proposal | None:
        document = await self._collection(PROPOSAL_COLLECTION).find_one({"proposalId": proposal_id})
        if document is None:
            return None
        fields = {k: v for k, v in document.items() if k != "_id"}
        try:
            return Proposal.model_validate(fields)
        except ValueError as error:
            raise StoredDatasetInvalid(
                f"proposal {proposal_id} in MongoDB is not a valid SciCat Proposal: {error}"
            ) from error

    async def _registered(self, query: dict[str, Any]) -> list[PublishedData]:
        found = self.published_data.find({**query, "status": {"$in": list(REGISTERED_STATUSES)}})
        return [_published(document) for document in await found.sort("_id").to_list(None)]

    async def find_proposal_publications(self, proposal_ids: list[str]) -> list[PublishedData]:
        return await self._registered({"proposalId": {"$in": proposal_ids}})

    async def find_dataset_publications(self, proposal_id: str) -> list[PublishedData]:
        return await self._registered(
            {"proposalId": None, f"{SUMMARIES_FIELD}.proposalIds": proposal_id}
        )

    async def get_request(self, doi: str) -> dict[str, Any] | None:
        document = await self.published_data.find_one({"_id": doi}, {REQUEST_FIELD: 1})
        request = (document or {}).get(REQUEST_FIELD)
        return dict(request) if isinstance(request, dict) else None

    async def still_published(self, pids: list[str], *, except_doi: str) -> set[str]:
        others = await self._registered({"_id": {"$ne": except_doi}, "datasetPids": {"$in": pids}})
        return {pid for other in others for pid in other.datasetPids if pid in pids}

    async def mark_datasets_unpublished(self, pids: list[str], *, at: datetime) -> list[Dataset]:
        unpublished = []
        for pid in pids:
            document = await self.datasets.find_one_and_update(
                {"pid": pid, "isPublished": True},
                {"$set": {"isPublished": False, "updatedAt": at}, "$inc": {"pipelineRevision": 1}},
                return_document=ReturnDocument.AFTER,
            )
            document = document or await self.datasets.find_one({"pid": pid})
            if document is not None:  # a dataset deleted since is simply no longer published
                unpublished.append(_dataset(document))
        return unpublished

    async def save_withdrawn(self, publication: PublishedData) -> None:
        await self.published_data.update_one(
            {"_id": publication.doi},
            {
                "$set": {
                    "status": "withdrawn",
                    "withdrawnTime": publication.withdrawnTime,
                    "withdrawalReason": publication.withdrawalReason,
                    "updatedAt": publication.updatedAt,
                },
                "$unset": {LAST_ERROR_FIELD: ""},
            },
        )

    async def save_pending(
        self, publication: PublishedData, datasets: list[DatasetSummary], **extra: Any
    ) -> None:
        fields = _document(publication, datasets) | extra
        on_insert = {"createdAt": fields.pop("createdAt")}
        for unset_when_pending in ("registeredTime", LAST_ERROR_FIELD):
            fields.pop(unset_when_pending, None)
        try:
            await self.published_data.update_one(
                {"_id": publication.doi, "status": {"$nin": list(REGISTERED_STATUSES)}},
                {"$set": fields, "$setOnInsert": on_insert},
                upsert=True,
            )
        except DuplicateKeyError:
            return  # registered already: its metadata changes only once DataCite accepts the update

    async def record_error(self, doi: str, error: str) -> None:
        await self.published_data.update_one({"_id": doi}, {"$set": {LAST_ERROR_FIELD: error}})

    async def mark_datasets_published(self, pids: list[str], *, at: datetime) -> list[Dataset]:
        published = []
        for pid in pids:
            document = await self.datasets.find_one_and_update(
                {"pid": pid, "isPublished": {"$ne": True}},
                {"$set": {"isPublished": True, "updatedAt": at}, "$inc": {"pipelineRevision": 1}},
                return_document=ReturnDocument.AFTER,
            )
            document = document or await self.datasets.find_one({"pid": pid})
            if document is None:
                raise LookupError(f"dataset {pid} disappeared while its publication was registered")
            published.append(_dataset(document))
        return published

    async def save_registered(
        self, publication: PublishedData, datasets: list[DatasetSummary], **extra: Any
    ) -> None:
        fields = _document(publication, datasets) | extra
        created = fields.pop("createdAt")
        await self.published_data.update_one(
            {"_id": publication.doi},
            {
                "$set": fields,
                "$setOnInsert": {"createdAt": created},
                "$unset": {LAST_ERROR_FIELD: ""},
            },
            upsert=True,
        )

    async def get_registered_record(self, doi: str) -> PublicationRecord | None:
        return await self._record({"_id": doi, "status": {"$in": list(REGISTERED_STATUSES)}})

    async def get_record(self, doi: str) -> PublicationRecord | None:
        return await self._record({"_id": doi, "status": {"$in": list(SHOWN_STATUSES)}})

    async def _record(self, query: dict[str, Any]) -> PublicationRecord | None:
        document = await self.published_data.find_one(query)
        if document is None:
            return None
        summaries = [DatasetSummary.model_validate(s) for s in document.get(SUMMARIES_FIELD, [])]
        proposal = document.get(PROPOSAL_FIELD)
        return PublicationRecord(
            publication=_published(document),
            datasets=summaries,
            proposal=ProposalSummary.model_validate(proposal) if proposal else None,
        )


def _document(publication: PublishedData, datasets: list[DatasetSummary]) -> dict[str, Any]:
    document: dict[str, Any] = publication.model_dump(exclude={LAST_ERROR_FIELD})
    document[SUMMARIES_FIELD] = [s.model_dump() for s in datasets]
    return document


def _published(document: dict[str, Any]) -> PublishedData:
    pipeline_only = ("_id", SUMMARIES_FIELD, PROPOSAL_FIELD, REQUEST_FIELD)
    fields = {k: v for k, v in document.items() if k not in pipeline_only}
    return PublishedData.model_validate(fields)


def _dataset(document: dict[str, Any]) -> Dataset:
    fields = {k: v for k, v in document.items() if k != "_id"}
    try:
        return Dataset.model_validate(fields)
    except ValueError as error:
        raise StoredDatasetInvalid(
            f"dataset {document.get('pid') or document.get('_id')} in MongoDB is not a valid "
            f"SciCat Dataset: {error}"
        ) from error
