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
    PUBLISHED_DATA_COLLECTION,
    Dataset,
    DatasetSummary,
    PublicationRecord,
    PublishedData,
)
from scicat_schemas.runtime.settings import MongoSettings

REGISTERED_STATUSES = ("registered", "amended")

SUMMARIES_FIELD = "datasetSummaries"
"""Pipeline field of PublishedData: the dataset summaries DataCite's metadata was built from, so the
landing page and OAI-PMH render exactly what was registered even after a dataset changes."""

LAST_ERROR_FIELD = "lastError"
"""Pipeline field of PublishedData: why the last registration attempt failed; unset on success."""


class StoredDatasetInvalid(ValueError):
    """A Dataset document that does not parse as a SciCat v4 Dataset (written by someone else)."""


class PublicationStore(Protocol):
    async def find_datasets(self, pids: list[str]) -> list[Dataset]: ...

    async def get_published(self, doi: str) -> PublishedData | None: ...

    async def save_pending(
        self, publication: PublishedData, datasets: list[DatasetSummary]
    ) -> None:
        """Store a publication about to be registered, unless it is registered already."""

    async def record_error(self, doi: str, error: str) -> None: ...

    async def mark_datasets_published(self, pids: list[str], *, at: datetime) -> list[Dataset]:
        """Set `isPublished`; the revision moves only for datasets not published before."""

    async def save_registered(
        self, publication: PublishedData, datasets: list[DatasetSummary]
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

    async def save_pending(
        self, publication: PublishedData, datasets: list[DatasetSummary]
    ) -> None:
        fields = _document(publication, datasets)
        on_insert = {"status": fields.pop("status"), "createdAt": fields.pop("createdAt")}
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
        self, publication: PublishedData, datasets: list[DatasetSummary]
    ) -> None:
        fields = _document(publication, datasets)
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
        document = await self.published_data.find_one(
            {"_id": doi, "status": {"$in": list(REGISTERED_STATUSES)}}
        )
        if document is None:
            return None
        summaries = [DatasetSummary.model_validate(s) for s in document.get(SUMMARIES_FIELD, [])]
        return PublicationRecord(publication=_published(document), datasets=summaries)


def _document(publication: PublishedData, datasets: list[DatasetSummary]) -> dict[str, Any]:
    document: dict[str, Any] = publication.model_dump(exclude={LAST_ERROR_FIELD})
    document[SUMMARIES_FIELD] = [s.model_dump() for s in datasets]
    return document


def _published(document: dict[str, Any]) -> PublishedData:
    fields = {k: v for k, v in document.items() if k not in ("_id", SUMMARIES_FIELD)}
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
