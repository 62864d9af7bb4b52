"""Search speed: the indexer's bulk indexing rate next to raw `_bulk`, and query latency.

Prints two tables; nothing is asserted. In one run on one machine, on the embedded stack (tansu
Kafka, SecantusDB MongoDB, osmem OpenSearch):

1. **Raw `_bulk`** — the indexed form of `--datasets` synthetic datasets sent straight to a
   scratch index with the same mapping, `--batch` per request: the store's own rate. Embedded,
   on an osmem of its own (the indexer then gets a fresh one: osmem keeps paying for a deleted
   index, which taxed the second phase); osmem's CPU per document is printed for both phases.
2. **Indexer** — the same datasets as `dataset.stored` events on `catalogue.datasets` (3
   partitions), consumed by the indexer running as its own process (`python -m scicat_indexer`,
   environment variables, as in production): decode, read files and proposals from MongoDB,
   flatten metadata with SI values, pipelined `_bulk` requests, commit. Timed from the first
   produce to the last dataset searchable. Target: ≥ 0.8 × raw `_bulk`.
3. **Query latency** over HTTP against that indexer (anonymous caller, so the visibility filter is
   in every query), `--queries` of each kind, p50/p95: free text fragments, unit-aware conditions
   (`energy>5keV` etc. over values stored in eV and keV), and faceted searches (six terms facets
   and the creation-time histogram). Target: p95 ≤ 100 ms.
4. **Operations** — each part of a search (visibility filter, sort, free text, a nested
   condition, one facet) sent straight to the store on its own, `--operation-runs` times, median:
   where the time of a slow query goes.

    uv run --frozen python bench/search_benchmark.py
    uv run --frozen python bench/search_benchmark.py --datasets 10000 --queries 100
    flock /tmp/bench.lock uv run --frozen python bench/search_benchmark.py --queries 40
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from opensearchpy import AsyncOpenSearch
from process_cpu import child_pid, cpu_seconds
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table
from search_corpus import beamtime_proposal, door_proposal, synthetic
from search_operations import operation_costs

from scicat_indexer.domain import indexed_dataset
from scicat_indexer.mapping import index_body
from scicat_indexer.store import BulkWrite, bulk_into
from scicat_pipeline.embedded import (
    EmbeddedKafka,
    EmbeddedMongo,
    EmbeddedOpenSearch,
    create_topics,
    free_port,
)
from scicat_schemas.documents import (
    DATASET_COLLECTION,
    ORIG_DATABLOCK_COLLECTION,
    PROPOSAL_COLLECTION,
    Dataset,
    OrigDatablock,
)
from scicat_schemas.events import DatasetStored, DatasetStoredData, encode
from scicat_schemas.topics import ALL_TOPICS, CATALOGUE_DATASETS

DATABASE = "bench_search"
console = Console()


async def _raw_phase(
    url: str | None, writes: list[BulkWrite], batch: int
) -> tuple[float, dict[str, float]]:
    """The raw rate, and osmem's CPU seconds per document, on an osmem of its own.

    A fresh server for each phase: osmem keeps paying for a deleted index (its heap), which
    taxed whichever phase ran second on a shared one by ~10% CPU per document. On a server given
    by URL both phases share it (the raw index is deleted afterwards).
    """
    if url is not None:
        return await raw_bulk_rate(url, writes, batch), {}
    server = EmbeddedOpenSearch().start()
    try:
        pid = child_pid("osmem-server")
        before = cpu_seconds(pid)
        rate = await raw_bulk_rate(server.url, writes, batch)
        return rate, {"osmem": (cpu_seconds(pid) - before) / len(writes)}
    finally:
        server.stop()


async def raw_bulk_rate(url: str, writes: list[BulkWrite], batch: int) -> float:
    client = AsyncOpenSearch(hosts=[url], timeout=600)
    try:
        await client.indices.create(index="bench-raw", body=index_body(None))
        began = time.perf_counter()
        for offset in range(0, len(writes), batch):
            await bulk_into(client, "bench-raw", writes[offset : offset + batch])
        elapsed = time.perf_counter() - began
        await client.indices.delete(index="bench-raw")
    finally:
        await client.close()
    return len(writes) / elapsed


async def store_catalogue(uri: str, datasets: list[Dataset]) -> None:
    """Datasets, datablocks and proposals in MongoDB, as the ingestor leaves them."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    db = client[DATABASE]
    # The indexes the ingestor creates (`ensure_indexes`) and the indexer's lookups rely on:
    # without the one on datasetId, each batch's file lookup scans every datablock.
    await db[ORIG_DATABLOCK_COLLECTION].create_index("datasetId")
    await db[PROPOSAL_COLLECTION].create_index("proposalId")
    for offset in range(0, len(datasets), 1000):
        chunk = datasets[offset : offset + 1000]
        await db[DATASET_COLLECTION].insert_many(
            [{"_id": d.pid, **d.model_dump(mode="python")} for d in chunk]
        )
        await db[ORIG_DATABLOCK_COLLECTION].insert_many(
            [
                {
                    "_id": OrigDatablock.id_for(d.pid),
                    "datasetId": d.pid,
                    "size": d.size,
                    "ownerGroup": d.ownerGroup,
                    "dataFileList": [
                        {"path": f"img_{f:05d}.cbf", "size": 1, "time": d.creationTime}
                        for f in range(5)
                    ],
                }
                for d in chunk
            ]
        )
    await db[PROPOSAL_COLLECTION].insert_many(
        [beamtime_proposal(b) for b in range(200)] + [door_proposal(p) for p in range(100)]
    )
    await client.close()


async def indexer_rate(
    kafka: str,
    mongo: str,
    url: str,
    datasets: list[Dataset],
    logs: Path,
    processes: dict[str, int],
) -> tuple[float, asyncio.subprocess.Process, str, dict[str, float]]:
    """Datasets per second through Kafka and the indexer process into OpenSearch, and the CPU
    seconds per dataset each of `processes` (and the indexer) spent meanwhile."""
    port = free_port()
    env = os.environ | {
        "INDEXER_KAFKA__BOOTSTRAP_SERVERS": kafka,
        "INDEXER_KAFKA__SESSION_TIMEOUT_MS": "1000",
        "INDEXER_KAFKA__HEARTBEAT_INTERVAL_MS": "300",
        "INDEXER_KAFKA__REBALANCE_TIMEOUT_MS": "1000",
        "INDEXER_MONGO__URI": mongo,
        "INDEXER_MONGO__DATABASE": DATABASE,
        "INDEXER_OPENSEARCH__URL": url,
        "INDEXER_OPENSEARCH__TIMEOUT_SECONDS": "600",
        "INDEXER_HTTP__HOST": "127.0.0.1",
        "INDEXER_HTTP__PORT": str(port),
        "INDEXER_LOG_LEVEL": "WARNING",
    }
    with (logs / "indexer.log").open("wb") as log:
        service = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scicat_indexer", env=env, stdout=log, stderr=log
        )
    client = AsyncOpenSearch(hosts=[url], timeout=600)

    async def indexed(count: int) -> None:
        # Polled once a second: each count costs the store tens of ms at 100k documents, time
        # the indexer pass would otherwise lose to the measurement itself.
        while True:
            if service.returncode is not None:
                raise RuntimeError(f"the indexer exited; see {logs / 'indexer.log'}")
            if await client.indices.exists_alias(name="datasets"):
                if (await client.count(index="datasets"))["count"] >= count:
                    return
            await asyncio.sleep(1.0)

    events = [
        (d.pid.encode(), encode(DatasetStored(source="/bench", data=DatasetStoredData(dataset=d))))
        for d in datasets
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka, linger_ms=5)
    await producer.start()
    try:
        warm_up, *timed = events
        await producer.send_and_wait(CATALOGUE_DATASETS, warm_up[1], key=warm_up[0])
        await indexed(1)
        processes = processes | {"indexer": service.pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        began = time.perf_counter()
        sends = [await producer.send(CATALOGUE_DATASETS, value, key=key) for key, value in timed]
        await asyncio.gather(*sends)
        await indexed(len(events))
        elapsed = time.perf_counter() - began
        cpu = {
            name: (cpu_seconds(pid) - cpu_before[name]) / len(timed)
            for name, pid in processes.items()
        }
    finally:
        await producer.stop()
        await client.close()
    return len(timed) / elapsed, service, f"http://127.0.0.1:{port}", cpu


QUERIES: dict[str, list[dict[str, Any]]] = {
    "free text": [
        {"text": t}
        for t in ("lab6", "nematic", "img_0000", "scan_00", "110000", "Lovelace", "ilm", "p08/2024")
    ],
    "unit-aware": [
        {"condition": c}
        for c in (
            "energy>5keV",
            "energy<=12000eV",
            "energy=8..9 keV",
            "sample.temperature>300K",
            "detector.distance<2000mm",
            "energy>1.5e-15J",
        )
    ],
    "faceted": [
        {
            "facet": [
                "instrument",
                "beamtime",
                "proposal",
                "pi",
                "technique",
                "type",
                "creationTime",
            ],
            **extra,
        }
        for extra in ({}, {"text": "film"}, {"instrument": "P08"}, {"condition": "energy>10keV"})
    ],
}


async def latencies(base_url: str, queries: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for kind, variants in QUERIES.items():
            timings = []
            for n in range(queries):
                params = variants[n % len(variants)]
                began = time.perf_counter()
                response = await http.get("/datasets", params=params)
                timings.append(time.perf_counter() - began)
                response.raise_for_status()
            results[kind] = timings
    return results


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def main(arguments: argparse.Namespace) -> None:
    console.print(f"generating {arguments.datasets} datasets …")
    datasets, contexts = synthetic(arguments.datasets)
    writes = []
    for d in datasets:
        indexed = indexed_dataset(d, contexts[d.pid])
        writes.append(BulkWrite(pid=indexed.pid, revision=indexed.revision, source=indexed.source))
    with tempfile.TemporaryDirectory(prefix="search-bench-") as folder:
        embedded: list[Any] = []
        kafka = arguments.kafka or _start(EmbeddedKafka(), embedded).bootstrap_servers
        mongo = arguments.mongodb or _start(EmbeddedMongo(), embedded).uri
        service = None
        try:
            await create_topics(kafka, list(ALL_TOPICS))
            console.print("raw _bulk …")
            raw, raw_cpu = await _raw_phase(arguments.opensearch, writes, arguments.batch)
            opensearch = arguments.opensearch or _start(EmbeddedOpenSearch(), embedded).url
            processes = _embedded_processes(embedded)
            console.print("catalogue in MongoDB …")
            await store_catalogue(mongo, datasets)
            console.print("indexer …")
            rate, service, base_url, cpu = await indexer_rate(
                kafka, mongo, opensearch, datasets, Path(folder), processes
            )
            console.print("queries …")
            timings = await latencies(base_url, arguments.queries)
            console.print("operations …")
            costs = await operation_costs(
                opensearch, arguments.operation_runs, list(QUERIES["faceted"][0]["facet"])
            )
        finally:
            if service is not None:
                service.terminate()
                await service.wait()
            for server in reversed(embedded):
                server.stop()
    table = Table(title=f"search: {arguments.datasets} datasets, anonymous caller")
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    table.add_row("raw _bulk (docs/s)", f"{raw:,.0f}", "", "")
    table.add_row(
        "indexer, Kafka → _bulk (docs/s)",
        f"{rate:,.0f}",
        f"≥ {0.8 * raw:,.0f}",
        _met(rate >= 0.8 * raw),
    )
    for name, seconds in raw_cpu.items():
        table.add_row(f"raw _bulk, CPU of {name} (ms/doc)", f"{seconds * 1000:.2f}", "", "")
    for name, seconds in cpu.items():
        table.add_row(f"indexer run, CPU of {name} (ms/doc)", f"{seconds * 1000:.2f}", "", "")
    for kind, values in timings.items():
        p50, p95 = _percentile(values, 0.5) * 1000, _percentile(values, 0.95) * 1000
        table.add_row(
            f"{kind} p50 / p95 (ms)", f"{p50:.1f} / {p95:.1f}", "p95 ≤ 100", _met(p95 <= 100)
        )
    console.print(table)
    operations = Table(title="what each operation costs the store (anonymous caller)")
    for column in ("operation", "matches", "median (ms)"):
        operations.add_column(column)
    for name, matches, median in costs:
        operations.add_row(name, f"{matches:,}", f"{median:.0f}")
    console.print(operations)
    console.print(
        f"queries per kind: {arguments.queries}; mean of all: "
        f"{statistics.mean(v for vs in timings.values() for v in vs) * 1000:.1f} ms"
    )


def _embedded_processes(embedded: list[Any]) -> dict[str, int]:
    """The embedded servers this run started, by name (none given by URL)."""
    processes = {"benchmark (producer)": os.getpid()}
    for server in embedded:
        if isinstance(server, EmbeddedKafka) and server.process is not None:
            processes["Kafka (tansu)"] = server.process.pid
        elif isinstance(server, EmbeddedMongo) and server.process is not None:
            processes["MongoDB (SecantusDB)"] = server.process.pid
        elif isinstance(server, EmbeddedOpenSearch):
            processes["osmem"] = child_pid("osmem-server")
    return processes


def _start(server: Any, started: list[Any]) -> Any:
    started.append(server.start())
    return server


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=int, default=100_000, help="synthetic datasets")
    parser.add_argument("--batch", type=int, default=500, help="documents per raw _bulk request")
    parser.add_argument("--queries", type=int, default=200, help="queries of each kind")
    parser.add_argument(
        "--operation-runs", type=int, default=5, help="runs of each operation measured alone"
    )
    parser.add_argument("--kafka", help="use this Kafka (host:port) instead of the embedded one")
    parser.add_argument("--mongodb", help="use this MongoDB (a scratch one: the bench writes)")
    parser.add_argument("--opensearch", help="use this OpenSearch URL instead of osmem")
    asyncio.run(main(parser.parse_args()))
