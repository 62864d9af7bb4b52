"""A dataset's file list stored as several OrigDatablocks ("parts") of at most `max_files` files.

Why: a MongoDB document holds at most 16 MiB. A run of tens of thousands of files in ONE
datablock outgrows it, and then its write fails on every retry and blocks its partition. SciCat
allows any number of OrigDatablocks per dataset (linked by `datasetId`); its readers, and the
indexer, read them all. Parts also bound what a change rewrites: a file appended to a large
dataset rewrites its last part, not the whole list.

The layout (canonical): part k holds files `[k * max_files, (k + 1) * max_files)` of the list,
in order; its `_id` is `OrigDatablock.id_for(pid, k)` (part 0 keeps the id of the single datablock
written by earlier versions), `pipelinePart` is k, `size` the sum of its own files; every other
field (`chkAlg`, groups...) is the dataset's, the same in every part. The domain sees one
datablock: the parts merged in order (`merged`). A stored layout that is not canonical (written
with another `max_files`, or by an earlier version as one document) is rewritten whole on the next
change (`writes`). Datablocks of the dataset that are not ours (other ids) are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import DeleteOne, InsertOne, ReplaceOne

from scicat_ingestor.stored_documents import datablock_doc, datablock_from
from scicat_schemas.documents import OrigDatablock

DATABLOCK_MAX_FILES = 1000
"""Default files per part. A SciCat file record is at most ~4.3 KiB (a path is at most 4,096 bytes,
`PATH_MAX`), so even 3,000 (the setting's upper bound) stay under 16 MiB; 1,000 keeps a rewrite
after an append small."""

_PER_PART = {"id", "size", "dataFileList", "pipelinePart"}
"""The fields that differ between parts; the others are the dataset's, equal in every part."""


@dataclass(frozen=True)
class StoredParts:
    """How a dataset's file list is stored: our part documents' ids, and whether the layout is
    the canonical one for `max_files` (only then can a change rewrite just the parts it alters)."""

    ids: tuple[str, ...]
    canonical: bool


def ours(pid: str, docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents among `docs` that are parts of `pid`'s file list (not foreign datablocks)."""
    return [doc for doc in docs if doc.get("_id") == OrigDatablock.id_for(pid, _part(doc))]


def merged(
    docs: Sequence[dict[str, Any]], max_files: int
) -> tuple[OrigDatablock | None, StoredParts]:
    """The parts (as read, any order) as one datablock, and how they are stored.

    Raises `CorruptStoredDocument` when a part does not validate.
    """
    if not docs:
        return None, StoredParts((), canonical=True)
    parts = sorted((datablock_from(doc) for doc in docs), key=lambda part: part.pipelinePart)
    first = parts[0]
    files = [record for part in parts for record in part.dataFileList]
    whole = first.model_copy(
        update={
            "id": OrigDatablock.id_for(first.datasetId),
            "pipelinePart": 0,
            "size": sum(part.size for part in parts),
            "dataFileList": files,
        }
    )
    stored = StoredParts(tuple(part.id for part in parts), _canonical(parts, max_files))
    return whole, stored


def writes(
    before: OrigDatablock | None,
    stored: StoredParts | None,
    after: OrigDatablock,
    max_files: int,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The part documents to upsert and the part ids to delete to store `after`.

    `before`/`stored`: the file list as loaded and its layout (`None` for a new dataset). With a
    canonical layout only the parts whose files or shared fields changed are written; list
    slices compare unchanged records by identity, so this costs little for large lists.
    """
    spans = _spans(len(after.dataFileList), max_files)
    if before is None or stored is None or not stored.canonical:
        upserts = [_part_doc(after, k, span) for k, span in enumerate(spans)]
        written = {doc["_id"] for doc in upserts}
        existing = () if stored is None else stored.ids
        return upserts, [part_id for part_id in existing if part_id not in written]
    old_spans = _spans(len(before.dataFileList), max_files)
    shared_same = _shared(before) == _shared(after)
    upserts = []
    for k, (start, end) in enumerate(spans):
        unchanged = (
            shared_same
            and k < len(old_spans)
            and old_spans[k] == (start, end)
            and before.dataFileList[start:end] == after.dataFileList[start:end]
        )
        if not unchanged:
            upserts.append(_part_doc(after, k, (start, end)))
    deletes = [OrigDatablock.id_for(after.datasetId, k) for k in range(len(spans), len(old_spans))]
    return upserts, deletes


def written(after: OrigDatablock | None, max_files: int) -> StoredParts:
    """The layout `writes` leaves behind for `after` (canonical, whatever was before)."""
    if after is None:
        return StoredParts((), canonical=True)
    count = len(_spans(len(after.dataFileList), max_files))
    ids = tuple(OrigDatablock.id_for(after.datasetId, k) for k in range(count))
    return StoredParts(ids, canonical=True)


def _part(doc: dict[str, Any]) -> int:
    part = doc.get("pipelinePart", 0)
    return part if isinstance(part, int) and part >= 0 else -1


def _spans(files: int, max_files: int) -> list[tuple[int, int]]:
    """Where each part starts and ends in the list; an empty list is one empty part."""
    return [(start, min(start + max_files, files)) for start in range(0, files, max_files)] or [
        (0, 0)
    ]


def _shared(datablock: OrigDatablock) -> dict[str, Any]:
    return datablock.model_dump(mode="python", exclude=_PER_PART)


def _part_doc(whole: OrigDatablock, k: int, span: tuple[int, int]) -> dict[str, Any]:
    files = whole.dataFileList[span[0] : span[1]]
    part = whole.model_copy(
        update={
            "id": OrigDatablock.id_for(whole.datasetId, k),
            "pipelinePart": k,
            "size": sum(record.size for record in files),
            "dataFileList": files,
        }
    )
    return datablock_doc(part)


def _canonical(parts: list[OrigDatablock], max_files: int) -> bool:
    """Whether `parts` (sorted) are exactly what `writes` would store for their merged list."""
    last = len(parts) - 1
    shared = _shared(parts[0])
    for k, part in enumerate(parts):
        count = len(part.dataFileList)
        fits = count == max_files if k < last else (0 if last == 0 else 1) <= count <= max_files
        if not (
            fits
            and part.pipelinePart == k
            and part.id == OrigDatablock.id_for(part.datasetId, k)
            and part.size == sum(record.size for record in part.dataFileList)
            and (k == 0 or _shared(part) == shared)
        ):
            return False
    return True


def operations(
    upserts: list[dict[str, Any]], deletes: list[str], *, stored: Sequence[str] | None = None
) -> list[InsertOne[dict[str, Any]] | ReplaceOne[dict[str, Any]] | DeleteOne]:
    """`writes` as bulk-write operations on the OrigDatablock collection.

    `stored`: the ids of the dataset's parts as read in this transaction, when known; a part
    not among them is inserted (SecantusDB inserts in half the time of an upsert; should one
    appear meanwhile, the insert fails and the transaction is retried). Unknown: every part is
    upserted.
    """
    known = None if stored is None else set(stored)
    written: list[InsertOne[dict[str, Any]] | ReplaceOne[dict[str, Any]] | DeleteOne] = [
        InsertOne(doc)
        if known is not None and doc["_id"] not in known
        else ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)
        for doc in upserts
    ]
    return written + [DeleteOne({"_id": part_id}) for part_id in deletes]
