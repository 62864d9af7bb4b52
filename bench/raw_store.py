"""MongoDB's raw bulk-insert rate, the yardstick of the ingestion benchmarks.

Also the server's own CPU per document while it inserts: SecantusDB answers under one
interpreter lock, so at most one core's worth, and its CPU per ingested event (measured end to
end) bounds the pipeline no matter how fast the ingestor is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ingest_messages import BEAMTIME, START, file_events
from process_cpu import cpu_seconds
from pymongo import AsyncMongoClient

from scicat_ingestor.domain import apply_event
from scicat_ingestor.settings import Settings
from scicat_ingestor.stored_documents import dataset_doc
from scicat_schemas.events import ACQUISITION_EVENT


@dataclass(frozen=True)
class RawRate:
    docs_per_second: float
    server_cpu_us_per_doc: float | None
    """The MongoDB server's CPU per document inserted, when its process is known."""


async def raw_store_rate(
    uri: str, count: int, *, stored_shape: bool = False, server_pid: int | None = None
) -> RawRate:
    """Documents per second of `insert_many` (batches of 1000) of dataset-shaped documents, and
    the CPU the server (`server_pid`) spent per document meanwhile.

    `stored_shape`: documents exactly as the ingestor stores a dataset (every SciCat field, a
    pipeline revision...), for context; the target uses the small ones.
    """
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri, tz_aware=True)
    collection = client["bench_raw"]["Dataset"]
    await collection.drop()
    docs = (
        _stored_datasets(count)
        if stored_shape
        else [
            {
                "_id": f"bench/{BEAMTIME}/raw_{n}",
                "pid": f"bench/{BEAMTIME}/raw_{n}",
                "datasetName": f"raw_{n}",
                "sourceFolder": f"/asap3/petra3/gpfs/p08/2026/data/{BEAMTIME}/raw/raw_{n}",
                "size": 1_024_000,
                "numberOfFiles": 1,
                "creationTime": START,
                "scientificMetadata": {"energy": {"value": 18.0, "unit": "keV"}},
                "ownerGroup": f"{BEAMTIME}-dmgt",
                "accessGroups": [f"{BEAMTIME}-dmgt", "p08staff"],
            }
            for n in range(count)
        ]
    )
    cpu_before = None if server_pid is None else cpu_seconds(server_pid)
    began = time.perf_counter()
    for offset in range(0, count, 1000):
        await collection.insert_many(docs[offset : offset + 1000], ordered=False)
    elapsed = time.perf_counter() - began
    cpu = None if server_pid is None else cpu_seconds(server_pid) - (cpu_before or 0.0)
    await client.drop_database("bench_raw")
    await client.close()
    return RawRate(count / elapsed, None if cpu is None else cpu / count * 1e6)


def _stored_datasets(count: int) -> list[dict[str, Any]]:
    """`count` distinct datasets as the ingestor stores them (one file each)."""
    policy = Settings(pid_prefix="bench").policy()
    docs = []
    for _, value in file_events(count, 1):
        event = ACQUISITION_EVENT.validate_json(value)
        entry = apply_event(event.data, None, policy=policy, now=START)
        assert entry is not None
        docs.append({"_id": entry.pid, **dataset_doc(entry.dataset)})
    return docs
