"""A batch's datasets as they stand: the latest version of each, with its file list.

Read once per transaction for all the datasets a batch addresses (`batch_store`), in two indexed
queries and one for the file lists this process does not remember (`RecentEntries`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from scicat_ingestor import datablock_parts
from scicat_ingestor.applied_events import kept_identities
from scicat_ingestor.datablock_parts import StoredParts
from scicat_ingestor.domain import CatalogueEntry
from scicat_ingestor.recent_entries import RecentEntries
from scicat_ingestor.stored_documents import CorruptStoredDocument, dataset_from
from scicat_schemas.documents import DATASET_COLLECTION, ORIG_DATABLOCK_COLLECTION, Dataset


@dataclass(frozen=True)
class Latest:
    state: dict[str, CatalogueEntry | CorruptStoredDocument | None]
    """By base pid: the latest version and its file list, `None` if there is none."""
    layouts: dict[str, StoredParts]
    """By the loaded dataset's own pid: how its file list is stored."""
    kept: dict[str, list[str]]
    """By base pid: the identities its latest version's document keeps, if any."""


async def load_latest(
    db: AsyncDatabase[dict[str, Any]],
    session: AsyncClientSession,
    base_pids: list[str],
    max_files: int,
    recent: RecentEntries,
) -> Latest:
    """The latest version of each dataset and its file list (as `MongoCatalogueStore.load`),
    how each loaded dataset's file list is stored, by the dataset's own pid, and the identities
    its document keeps (`applied_events.kept_identities`). A file list this process committed
    with exactly the dataset loaded is taken from `recent`.

    A damaged stored document spoils only the events of its dataset, as on the per-event path.
    """
    wanted = set(base_pids)
    latest: dict[str, dict[str, Any]] = {}
    # Two queries, not one `$or`: each uses its index, where an `$or` of `$in`s may scan.
    for key in ("pid", "pipelineBasePid"):
        async for doc in db[DATASET_COLLECTION].find({key: {"$in": base_pids}}, session=session):
            base = doc.get("pid") if doc.get("pid") in wanted else doc.get("pipelineBasePid")
            if base not in wanted:
                continue
            seen = latest.get(base)
            if seen is None or _version(doc) > _version(seen):
                latest[base] = doc
    state: dict[str, CatalogueEntry | CorruptStoredDocument | None] = dict.fromkeys(base_pids)
    layouts: dict[str, StoredParts] = {}
    datasets: dict[str, Dataset] = {}
    kept = {base: ids for base, doc in latest.items() if (ids := kept_identities(doc))}
    for base, doc in latest.items():
        try:
            datasets[base] = dataset_from(doc)
        except CorruptStoredDocument as error:
            state[base] = error
    known = {base: recent.file_list_of(dataset) for base, dataset in datasets.items()}
    blocks: dict[str, list[dict[str, Any]]] = {}
    unknown = [dataset.pid for base, dataset in datasets.items() if known[base] is None]
    # A dataset not stored yet has no parts unless some were left behind (deleted by hand):
    # looking costs an index probe each, and knowing lets its parts be inserted, which SecantusDB
    # does in half the time of an upsert.
    absent = [base for base in base_pids if base not in latest]
    unknown += absent
    if unknown:
        async for block in db[ORIG_DATABLOCK_COLLECTION].find(
            {"datasetId": {"$in": unknown}}, session=session
        ):
            blocks.setdefault(block["datasetId"], []).append(block)
    for base, dataset in datasets.items():
        pid = dataset.pid
        try:
            datablock, layouts[pid] = known[base] or datablock_parts.merged(
                datablock_parts.ours(pid, blocks.get(pid, [])), max_files
            )
            state[base] = CatalogueEntry(dataset=dataset, datablock=datablock)
        except CorruptStoredDocument as error:
            state[base] = error
    for base in absent:
        parts = datablock_parts.ours(base, blocks.get(base, []))
        layouts[base] = datablock_parts.StoredParts(
            tuple(part["_id"] for part in parts), canonical=not parts
        )
    return Latest(state, layouts, kept)


def _version(doc: dict[str, Any]) -> int:
    """MongoDB sorts a missing `pipelineVersion` below every number; so does this."""
    value = doc.get("pipelineVersion")
    return -1 if value is None else int(value)
