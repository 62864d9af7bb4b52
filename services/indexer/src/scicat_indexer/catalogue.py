"""What the indexer reads from the catalogue (MongoDB): file lists, proposals, whole datasets.

The ingestor owns these collections; the indexer only reads them. A dataset event carries the
dataset but not its files or its proposal, so the handler looks both up for each batch (two
queries per batch, not per dataset) before indexing. `reindex` also reads every dataset from here.

Proposal documents are read at indexing time (a choice, documented in the service README): a
search by proposal title, beamtime or PI finds datasets indexed after the proposal was stored;
`scicat-pipeline reindex` refreshes datasets indexed before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from scicat_indexer.domain import MAX_INDEXED_FILES, CatalogueContext
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    ORIG_DATABLOCK_COLLECTION,
    PROPOSAL_COLLECTION,
    Dataset,
)
from scicat_schemas.runtime.settings import MongoSettings


class Catalogue(Protocol):
    async def contexts(self, datasets: Sequence[Dataset]) -> dict[str, CatalogueContext]: ...

    async def ping(self) -> bool: ...


class MongoCatalogue:
    """`Catalogue` on the SciCat MongoDB database; `connected()` opens and closes the client."""

    def __init__(self, settings: MongoSettings, *, appname: str = "scicat-indexer") -> None:
        self._settings = settings
        self._appname = appname
        self._client: AsyncMongoClient[dict[str, Any]] | None = None

    @asynccontextmanager
    async def connected(self) -> AsyncIterator[MongoCatalogue]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self._settings.uri,
            tz_aware=True,
            serverSelectionTimeoutMS=self._settings.timeout_ms,
            appname=self._appname,
        )
        self._client = client
        try:
            yield self
        finally:
            self._client = None
            await client.close()

    @property
    def _db(self) -> AsyncDatabase[dict[str, Any]]:
        if self._client is None:
            raise RuntimeError("the MongoDB client is not open; use `async with connected()`")
        return self._client[self._settings.database]

    async def ping(self) -> bool:
        await self._db.command("ping")
        return True

    async def contexts(self, datasets: Sequence[Dataset]) -> dict[str, CatalogueContext]:
        """Files and proposals (with their parents) of each dataset, by pid."""
        files = await self._file_paths(datasets)
        proposals = await self._proposals({i for d in datasets for i in d.proposalIds})
        parents = await self._proposals(
            {p["parentProposalId"] for p in proposals.values() if p.get("parentProposalId")}
            - proposals.keys()
        )
        known = proposals | parents
        result: dict[str, CatalogueContext] = {}
        for dataset in datasets:
            own = [known[i] for i in dataset.proposalIds if i in known]
            parent_ids = [p.get("parentProposalId") for p in own]
            linked = [known[parent] for parent in parent_ids if parent in known]
            unique = {p["proposalId"]: p for p in own + linked}
            result[dataset.pid] = CatalogueContext(
                files=tuple(files.get(dataset.pid, ())), proposals=tuple(unique.values())
            )
        return result

    async def _file_paths(self, datasets: Sequence[Dataset]) -> dict[str, list[str]]:
        """The first `MAX_INDEXED_FILES` paths of each dataset, in file-list order, reading no
        more of a long list than that: the ingestor stores it in parts (`pipelinePart` 0, 1...,
        each as long as part 0 but the last), so part 0 (and any datablock not the ingestor's)
        is read first, and later parts only while a dataset has fewer paths than it can have
        indexed. A run of 100,000 files is 100 parts; one is read."""
        blocks = self._db[ORIG_DATABLOCK_COLLECTION]
        projection = {"datasetId": 1, "pipelinePart": 1, "dataFileList.path": 1}
        files: dict[str, list[str]] = {}
        first = blocks.find(
            {"datasetId": {"$in": [d.pid for d in datasets]}, "pipelinePart": {"$in": [0, None]}},
            projection,
        )
        async for block in first:
            files.setdefault(block["datasetId"], []).extend(_paths(block))
        short = {
            d.pid: len(files.get(d.pid, ()))
            for d in datasets
            if 0 < len(files.get(d.pid, ())) < min(d.numberOfFiles, MAX_INDEXED_FILES)
        }
        if short:
            parts = max(-(-MAX_INDEXED_FILES // length) for length in short.values())
            later = blocks.find(
                {"datasetId": {"$in": list(short)}, "pipelinePart": {"$gte": 1, "$lt": parts}},
                projection,
            ).sort("pipelinePart", 1)
            async for block in later:
                files[block["datasetId"]].extend(_paths(block))
        return files

    async def proposals(self, ids: list[str]) -> dict[str, Mapping[str, Any]]:
        """Proposal documents by proposalId (PaNOSC Documents)."""
        return await self._proposals(set(ids))

    async def _proposals(self, ids: set[str]) -> dict[str, Mapping[str, Any]]:
        if not ids:
            return {}
        cursor = self._db[PROPOSAL_COLLECTION].find({"proposalId": {"$in": sorted(ids)}})
        return {doc["proposalId"]: doc async for doc in cursor}

    async def count_datasets(self) -> int:
        return await self._db[DATASET_COLLECTION].count_documents({})

    async def dataset_documents(self, *, batch_size: int) -> AsyncIterator[list[dict[str, Any]]]:
        """Every stored dataset document (without `_id`), `batch_size` at a time (`reindex`)."""
        batch: list[dict[str, Any]] = []
        async for doc in self._db[DATASET_COLLECTION].find({}, batch_size=batch_size):
            batch.append({k: v for k, v in doc.items() if k != "_id"})
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    async def dataset_revisions(self) -> dict[str, int]:
        """`pid → pipelineRevision` of every stored dataset (a projection scan, for catch-up)."""
        cursor = self._db[DATASET_COLLECTION].find({}, {"_id": 0, "pid": 1, "pipelineRevision": 1})
        return {
            str(doc.get("pid")): revision
            if isinstance(revision := doc.get("pipelineRevision"), int)
            else 0
            async for doc in cursor
        }

    async def dataset_documents_by_pid(self, pids: list[str]) -> list[dict[str, Any]]:
        cursor = self._db[DATASET_COLLECTION].find({"pid": {"$in": pids}})
        return [{k: v for k, v in doc.items() if k != "_id"} async for doc in cursor]


def _paths(block: Mapping[str, Any]) -> list[str]:
    return [f["path"] for f in block.get("dataFileList", []) if f.get("path")]
