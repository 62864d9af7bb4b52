"""Rebuild the read model from the catalogue itself: `scicat-pipeline oai rebuild`.

The read model is normally fed by `publication.registered` / `publication.withdrawn`. When it is
lost, new, or must be re-rendered after a change of the shared mapping, the same records can be
derived from MongoDB: every `PublishedData` that is `registered`, `amended` or `withdrawn`, with the
dataset summaries the doi-minter stored beside it (`datasetSummaries`, what was registered at
DataCite) or, for publications written by another SciCat component, the `Dataset` documents.

Idempotent by construction: a record whose rendered content is unchanged is not written at all,
so its datestamp stays and incremental harvesters see nothing new; only what changed gets a new
datestamp. Running beside the live service is safe: writes use the store's optimistic
concurrency, and a record changed meanwhile is read again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from pymongo import ASCENDING, AsyncMongoClient

from scicat_oai_provider.domain import (
    InvalidPublication,
    OaiRecord,
    RecordContent,
    apply_content,
    oai_identifier,
    registered_content,
    withdrawn_content,
)
from scicat_oai_provider.store import ConcurrentUpdate, MongoOaiRecordStore
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    PROPOSAL_COLLECTION,
    PUBLISHED_DATA_COLLECTION,
    DatasetSummary,
    PublicationRecord,
    PublishedData,
)
from scicat_schemas.runtime.settings import MongoSettings

SHOWN_STATUSES = ("registered", "amended", "withdrawn")
"""PublishedData states a harvester may know of; `private`/`public` were never disseminated."""

_SUMMARIES_FIELD = "datasetSummaries"
_PROPOSAL_FIELD = "proposalSummary"
_PIPELINE_FIELDS = ("_id", _SUMMARIES_FIELD, _PROPOSAL_FIELD, "publicationRequest", "lastError")
_BATCH = 500
_ATTEMPTS = 5


@dataclass(frozen=True)
class RebuildOptions:
    repository_identifier: str
    datacentre_symbol: str
    facility: str
    dry_run: bool = False


@dataclass
class RebuildReport:
    """What a rebuild did (or, with `--dry-run`, would do)."""

    examined: int = 0
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    """`(doi, reason)` of publications that cannot be disseminated as stored."""


@dataclass(frozen=True)
class StoredPublication:
    doi: str
    status: str
    record: PublicationRecord | None
    problem: str | None = None


class Catalogue:
    """Reads SciCat's `PublishedData`, `Dataset` and `Proposal` collections (read-only)."""

    def __init__(self, settings: MongoSettings) -> None:
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.uri, tz_aware=True, tzinfo=UTC, serverSelectionTimeoutMS=settings.timeout_ms
        )
        self._db = self._client[settings.database]

    async def close(self) -> None:
        await self._client.close()

    async def count(self) -> int:
        published = self._db[PUBLISHED_DATA_COLLECTION]
        return await published.count_documents({"status": {"$in": list(SHOWN_STATUSES)}})

    async def proposal_parents(self) -> dict[str, str]:
        """Every `{beamtime id: parent proposal id}` the catalogue knows, in one query."""
        cursor = self._db[PROPOSAL_COLLECTION].find(
            {"parentProposalId": {"$type": "string"}},
            projection={"proposalId": 1, "parentProposalId": 1},
        )
        return {
            str(document.get("proposalId") or document["_id"]): document["parentProposalId"]
            async for document in cursor
        }

    async def publications(self) -> AsyncIterator[StoredPublication]:
        """Every disseminable publication, in DOI order, with its dataset summaries."""
        cursor = (
            self._db[PUBLISHED_DATA_COLLECTION]
            .find({"status": {"$in": list(SHOWN_STATUSES)}})
            .sort("_id", ASCENDING)
            .batch_size(_BATCH)
        )
        batch: list[dict[str, Any]] = []
        async for document in cursor:
            batch.append(document)
            if len(batch) == _BATCH:
                for publication in await self._complete(batch):
                    yield publication
                batch = []
        for publication in await self._complete(batch):
            yield publication

    async def _complete(self, documents: list[dict[str, Any]]) -> list[StoredPublication]:
        """Attach dataset summaries: one `Dataset` query for the publications of a batch."""
        wanted = {
            pid
            for document in documents
            if _SUMMARIES_FIELD not in document
            for pid in document.get("datasetPids", [])
        }
        datasets: dict[str, DatasetSummary] = {}
        if wanted:
            cursor = self._db[DATASET_COLLECTION].find({"pid": {"$in": sorted(wanted)}})
            async for dataset in cursor:
                summary = _summary(dataset)
                if summary is not None:
                    datasets[summary.pid] = summary
        return [_stored_publication(document, datasets) for document in documents]


def _summary(document: Mapping[str, Any]) -> DatasetSummary | None:
    fields = {k: document[k] for k in DatasetSummary.model_fields if k in document}
    try:
        return DatasetSummary.model_validate(fields)
    except ValidationError:
        return None


def _stored_publication(
    document: dict[str, Any], datasets: Mapping[str, DatasetSummary]
) -> StoredPublication:
    doi = str(document.get("doi") or document["_id"])
    status = str(document.get("status"))
    try:
        publication = PublishedData.model_validate(
            {k: v for k, v in document.items() if k not in _PIPELINE_FIELDS}
        )
        if _SUMMARIES_FIELD in document:
            summaries = [DatasetSummary.model_validate(s) for s in document[_SUMMARIES_FIELD]]
        else:
            summaries = [datasets[p] for p in publication.datasetPids if p in datasets]
        fields: dict[str, Any] = {"publication": publication, "datasets": summaries}
        if document.get(_PROPOSAL_FIELD):
            fields["proposal"] = document[_PROPOSAL_FIELD]
        record = PublicationRecord.model_validate(fields)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
        )
        return StoredPublication(doi, status, None, f"PublishedData is not valid: {problems}")
    return StoredPublication(doi, status, record)


def _content(
    stored: StoredPublication,
    current: OaiRecord | None,
    options: RebuildOptions,
    parents: Mapping[str, str],
) -> RecordContent:
    """What the record should be; `InvalidPublication` when it cannot be rendered."""
    if stored.record is None:
        if stored.status == "withdrawn":
            return _tombstone(stored, current, options)
        raise InvalidPublication(stored.problem or "unreadable PublishedData")
    try:
        content = registered_content(
            stored.record,
            repository_identifier=options.repository_identifier,
            datacentre_symbol=options.datacentre_symbol,
            facility=options.facility,
            proposal_parents=parents,
        )
    except InvalidPublication:
        if stored.status == "withdrawn":
            return _tombstone(stored, current, options)
        raise
    if stored.status == "withdrawn":
        # The header keeps the sets and formats it had when it was disseminated (§2.5.1).
        return replace(content, deleted=True, metadata={})
    return content


def _tombstone(
    stored: StoredPublication, current: OaiRecord | None, options: RebuildOptions
) -> RecordContent:
    publication_id = stored.record.publication.publicationId if stored.record else stored.doi
    return withdrawn_content(
        current,
        repository_identifier=options.repository_identifier,
        doi=stored.doi,
        publication_id=publication_id,
    )


async def rebuild(
    *,
    catalogue: Catalogue,
    store: MongoOaiRecordStore,
    options: RebuildOptions,
    advance: Callable[[int], None] = lambda _: None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RebuildReport:
    """Bring the read model in line with the catalogue; `advance(1)` after each publication."""
    report = RebuildReport()
    parents = await catalogue.proposal_parents()
    async for stored in catalogue.publications():
        report.examined += 1
        try:
            await _reconcile(
                stored, store=store, options=options, parents=parents, report=report, clock=clock
            )
        except InvalidPublication as error:
            report.refused.append((stored.doi, str(error)))
        advance(1)
    return report


async def _reconcile(
    stored: StoredPublication,
    *,
    store: MongoOaiRecordStore,
    options: RebuildOptions,
    parents: Mapping[str, str],
    report: RebuildReport,
    clock: Callable[[], datetime],
) -> None:
    identifier = oai_identifier(options.repository_identifier, stored.doi.strip())
    for _ in range(_ATTEMPTS):
        current = await store.get(identifier)
        content = _content(stored, current, options, parents)
        if current is not None and current.content_hash == content.content_hash:
            report.unchanged += 1
            return
        updated = apply_content(
            current, content, event=f"oai-rebuild\x1f{content.content_hash}", now=clock()
        )
        if updated is None:
            report.unchanged += 1
            return
        if not options.dry_run:
            try:
                await store.save(updated, expected_version=current.version if current else None)
            except ConcurrentUpdate:
                continue
        if current is None:
            report.created += 1
        else:
            report.changed += 1
        return
    raise ConcurrentUpdate(f"{identifier} kept changing during the rebuild; run it again")
