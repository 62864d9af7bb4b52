"""File paths read for indexing: the first 1,000 of a file list in order, no more of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient

from scicat_indexer.catalogue import MongoCatalogue
from scicat_indexer.domain import MAX_INDEXED_FILES, indexed_dataset
from scicat_schemas.documents import ORIG_DATABLOCK_COLLECTION, DataFile, Dataset, OrigDatablock
from scicat_schemas.runtime.settings import MongoSettings

T = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def parts_of(pid: str, files: int, per_part: int) -> list[dict[str, Any]]:
    """The datablocks the ingestor stores for `files` files, `per_part` per datablock."""
    docs = []
    for part, start in enumerate(range(0, files, per_part)):
        records = [
            DataFile(path=f"img_{n:06d}.cbf", size=1, time=T)
            for n in range(start, min(start + per_part, files))
        ]
        block = OrigDatablock(
            _id=OrigDatablock.id_for(pid, part),
            datasetId=pid,
            size=len(records),
            dataFileList=records,
            ownerGroup="g",
            pipelinePart=part,
        )
        docs.append(block.model_dump(mode="python", by_alias=True))
    return docs


async def test_only_the_parts_holding_the_first_paths_are_read_in_order(
    mongo_uri: str, database_name: str, make_dataset: Callable[..., Dataset]
) -> None:
    long_run = make_dataset("scan_long", numberOfFiles=5000)
    small_parts = make_dataset("scan_small_parts", numberOfFiles=2000)
    legacy = make_dataset("scan_legacy", numberOfFiles=1500)
    short = make_dataset("scan_short", numberOfFiles=3)
    docs = [
        *parts_of(long_run.pid, 5000, 1000),
        *parts_of(small_parts.pid, 2000, 300),
        *parts_of(short.pid, 3, 1000),
    ]
    single = parts_of(legacy.pid, 1500, 1500)[0]
    del single["pipelinePart"]
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        await client[database_name][ORIG_DATABLOCK_COLLECTION].insert_many([*docs, single])
    finally:
        await client.close()
    catalogue = MongoCatalogue(MongoSettings(uri=mongo_uri, database=database_name))

    async with catalogue.connected():
        contexts = await catalogue.contexts([long_run, small_parts, legacy, short])

    wanted = [f"img_{n:06d}.cbf" for n in range(MAX_INDEXED_FILES)]
    assert list(contexts[long_run.pid].files) == wanted
    assert list(contexts[small_parts.pid].files) == [f"img_{n:06d}.cbf" for n in range(1200)]
    assert len(contexts[legacy.pid].files) == 1500
    assert list(contexts[short.pid].files) == [f"img_{n:06d}.cbf" for n in range(3)]
    indexed = indexed_dataset(long_run, contexts[long_run.pid])
    assert indexed.files_truncated
    assert not indexed_dataset(short, contexts[short.pid]).files_truncated
