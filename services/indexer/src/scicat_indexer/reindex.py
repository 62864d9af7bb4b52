"""Rebuild the dataset index from MongoDB into `<alias>-v(N+1)` and switch the alias atomically.

Searches keep working throughout: they go through the alias, which points at the old index until
the new one is complete, and then moves in one `_aliases` request (remove + add together). The
running indexer keeps writing through the alias too, so changes made while the new index is being
filled land in the old one; after the switch a catch-up pass re-reads `(pid, pipelineRevision)` of
every dataset and re-indexes those that changed or appeared since they were read, and removes
those that disappeared. External versioning makes every such write safe to repeat or to lose
against a newer one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from opensearchpy import AsyncOpenSearch
from pydantic import ValidationError

from scicat_indexer.catalogue import MongoCatalogue
from scicat_indexer.domain import indexed_dataset
from scicat_indexer.mapping import concrete_index, index_body, index_version
from scicat_indexer.store import BulkWrite, DocumentRefused, bulk_into
from scicat_schemas.documents import Dataset

log = structlog.get_logger("scicat.indexer.reindex")

Progress = Callable[[int], None]
"""Called with the number of datasets just handled."""


@dataclass
class ReindexReport:
    """What a rebuild did; `refused` and `invalid` name each dataset left out and why."""

    alias: str
    new_index: str
    old_indices: list[str]
    indexed: int = 0
    caught_up: int = 0
    removed: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)
    deleted_old: bool = False


async def indices_behind(client: AsyncOpenSearch, alias: str) -> list[str]:
    """The concrete indices the alias points to now (none when it does not exist)."""
    if not await client.indices.exists_alias(name=alias):
        return []
    return sorted(await client.indices.get_alias(name=alias))


async def next_index(client: AsyncOpenSearch, alias: str) -> str:
    """`<alias>-v(N+1)` where N is the highest version present (pointed to or not)."""
    existing = await client.indices.get(index=f"{alias}-v*", ignore_unavailable=True)
    versions = [v for v in (index_version(alias, name) for name in existing) if v is not None]
    return concrete_index(alias, max(versions, default=0) + 1)


async def rebuild(
    *,
    client: AsyncOpenSearch,
    catalogue: MongoCatalogue,
    alias: str,
    batch_size: int = 500,
    delete_old: bool = False,
    progress: Progress | None = None,
) -> ReindexReport:
    """Fill a new versioned index from MongoDB, switch `alias` to it, catch up, report."""
    old = await indices_behind(client, alias)
    new = await next_index(client, alias)
    await client.indices.create(index=new, body=index_body(None))
    report = ReindexReport(alias=alias, new_index=new, old_indices=old)
    log.info("reindex started", alias=alias, new_index=new, old_indices=old)
    read: dict[str, int] = {}
    async for documents in catalogue.dataset_documents(batch_size=batch_size):
        datasets = _valid(documents, report)
        await _index(client, catalogue, new, datasets, report)
        read.update({str(d.get("pid")): _revision(d) for d in documents})
        report.indexed += len(datasets)
        if progress is not None:
            progress(len(documents))
    await switch_alias(client, alias, old=old, new=new)
    await _catch_up(client, catalogue, new, read, report)
    if delete_old and old:
        await client.indices.delete(index=",".join(old))
        report.deleted_old = True
    log.info(
        "reindex finished",
        alias=alias,
        new_index=new,
        indexed=report.indexed,
        caught_up=report.caught_up,
        refused=len(report.refused),
        invalid=len(report.invalid),
    )
    return report


async def switch_alias(client: AsyncOpenSearch, alias: str, *, old: list[str], new: str) -> None:
    """One `_aliases` request: the alias never points nowhere, nor at both for writes."""
    actions: list[dict[str, Any]] = [{"remove": {"index": index, "alias": alias}} for index in old]
    actions.append({"add": {"index": new, "alias": alias, "is_write_index": True}})
    await client.indices.update_aliases(body={"actions": actions})


def _revision(document: dict[str, Any]) -> int:
    revision = document.get("pipelineRevision", 0)
    return revision if isinstance(revision, int) else 0


def _valid(documents: list[dict[str, Any]], report: ReindexReport) -> list[Dataset]:
    datasets: list[Dataset] = []
    for document in documents:
        try:
            datasets.append(Dataset.model_validate(document))
        except ValidationError as error:
            report.invalid.append((str(document.get("pid")), str(error).splitlines()[0]))
    return datasets


async def _index(
    client: AsyncOpenSearch,
    catalogue: MongoCatalogue,
    index: str,
    datasets: list[Dataset],
    report: ReindexReport,
) -> None:
    if not datasets:
        return
    contexts = await catalogue.contexts(datasets)
    writes = []
    for dataset in datasets:
        indexed = indexed_dataset(dataset, contexts.get(dataset.pid))
        writes.append(BulkWrite(pid=indexed.pid, revision=indexed.revision, source=indexed.source))
    results = await bulk_into(client, index, writes)
    for write, result in zip(writes, results, strict=True):
        if isinstance(result, DocumentRefused):
            report.refused.append((write.pid, result.reason))


async def _catch_up(
    client: AsyncOpenSearch,
    catalogue: MongoCatalogue,
    index: str,
    read: dict[str, int],
    report: ReindexReport,
) -> None:
    """Re-index what changed while the new index was filled; remove what disappeared."""
    now = await catalogue.dataset_revisions()
    changed = sorted(pid for pid, revision in now.items() if read.get(pid) != revision)
    for start in range(0, len(changed), 500):
        documents = await catalogue.dataset_documents_by_pid(changed[start : start + 500])
        datasets = _valid(documents, report)
        await _index(client, catalogue, index, datasets, report)
        report.caught_up += len(datasets)
    gone = [BulkWrite(pid=pid, revision=read[pid], source=None) for pid in read if pid not in now]
    await bulk_into(client, index, gone)
    report.removed = len(gone)
