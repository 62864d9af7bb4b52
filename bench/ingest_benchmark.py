"""Ingestion speed: the ingestor's own CPU per file event, end to end next to MongoDB's raw rate.

Prints one table; nothing is asserted. Four measurements, in one run on one machine:

1. **Ingestor alone** — the pure work per `file.closed`: decode the CloudEvent JSON and apply it
   to the in-memory dataset (`apply_event`: file list, sizes, SI units, no I/O), measured with
   `time.process_time` over `--files` events in runs of `--files-per-run` files. Target: CPU
   ≤ 100 µs per file event.
2. **End to end** — the same events as a **backlog** on `acquisition.events` of the embedded
   stack (tansu Kafka, SecantusDB MongoDB, 3 partitions, runs spread over them), produced before
   the ingestor starts, then consumed by `--ingestors` ingestor processes (one consumer group)
   running exactly as in production (`python -m scicat_ingestor`, environment variables):
   records in batches, each batch's acquisition events applied in one MongoDB transaction
   (markers + datasets + datablocks, bulk writes), one `dataset.stored` per dataset published
   with `acks=all`, then the batch's offsets committed. Timed from the first applied event seen
   in MongoDB (start-up and group join excluded) until the last event of every partition is
   recorded; the CPU of every process (ingestors, SecantusDB, tansu) in that window is reported
   per event, which says where the time goes. `--producer asapo` puts the same files on the
   native `asapo.messages` topic instead, as ASAP::O message metadata (group
   `ingestor-native`).
3. **Raw store rate** — `insert_many` of small dataset-shaped documents into the same MongoDB,
   in batches of 1000, in the same run, before the end-to-end window and again after it (the
   machine's speed drifts within minutes). Target: end to end ≥ 0.8 × the mean of the two. For
   context, the same with documents as the ingestor stores them (every SciCat field).
4. **NeXus extraction** — the shipped P08 mapping applied to `--nexus-files` small NeXus files
   written with h5py (open, read 12 fields, close), per file.

    uv run --frozen python bench/ingest_benchmark.py
    uv run --frozen python bench/ingest_benchmark.py --files 5000 --files-per-run 50
    uv run --frozen python bench/ingest_benchmark.py --ingestors 1
    uv run --frozen python bench/ingest_benchmark.py --producer asapo
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from ingest_messages import BEAMTIME, PRODUCERS, START, file_events
from ingest_report import MONGO, EndToEnd, ingestion_table
from nexus_extraction import nexus_extraction
from process_cpu import cpu_seconds
from pymongo import AsyncMongoClient
from raw_store import raw_store_rate
from rich.console import Console

from scicat_ingestor.domain import CatalogueEntry, apply_event
from scicat_ingestor.settings import Settings
from scicat_pipeline.embedded import EmbeddedKafka, EmbeddedMongo, create_topics, free_port
from scicat_schemas.documents import DATASET_COLLECTION
from scicat_schemas.events import ACQUISITION_EVENT
from scicat_schemas.topics import ALL_TOPICS
from scicat_schemas.units import to_si

console = Console()


def ingestor_alone(events: list[tuple[bytes, bytes]], repeats: int = 3) -> float:
    """CPU seconds to decode and apply every event to in-memory datasets; best of `repeats`.

    The best of a few passes, as `timeit` does: the machine is shared, and slower passes measure
    the neighbours. pint's registry is loaded first, as the service does once at start-up.
    """
    to_si(1.0, "keV")
    return min(_apply_all(events) for _ in range(repeats))


def _apply_all(events: list[tuple[bytes, bytes]]) -> float:
    policy = Settings(pid_prefix="bench").policy()
    entries: dict[str, CatalogueEntry] = {}
    now = START
    began = time.process_time()
    for _, value in events:
        event = ACQUISITION_EVENT.validate_json(value)
        pid = policy.dataset_pid(event.data)
        current = entries.get(pid)
        # as the batch store does: a state it drops for the result is the domain's to extend
        applied = apply_event(event.data, current, policy=policy, now=now, owned=bool(current))
        if applied is not None:
            entries[pid] = applied
    return time.process_time() - began


async def end_to_end(
    kafka: EmbeddedKafka,
    mongo: MongoUnderTest,
    events: list[tuple[bytes, bytes]],
    logs: Path,
    ingestors: int,
    producer: str = "cloudevents",
    ingestor_env: dict[str, str] | None = None,
    files: int | None = None,
    nice: int = 0,
) -> EndToEnd:
    """A backlog of `events` on the `producer`'s topic consumed by `ingestors` ingestor processes.

    Produced first, outside the timed window (as Kafka consumer benchmarks do). Progress is the
    consumer group's committed offsets: the ingestor commits a batch only once its effect is
    durable in MongoDB and its `dataset.stored` published, so a committed event is an ingested
    one, whatever the store records about it. The window opens when the group is stable with
    every process and has committed something (start-up, the group join and the rebalances of
    later joiners are not ingestion; what was committed before is not counted) and closes when
    every partition is committed to its end; the events committed in it, and the CPU each
    process spent in it, are what the table reports. MongoDB is checked once at the end: the
    datasets must hold exactly one file per event (`files` in all when not every event is a
    file's). `ingestor_env`: settings of the ingestor processes beyond the stack's; `nice`:
    their CPU niceness (`--ingestor-nice`).
    """
    database = "bench_ingest"
    topic, group, _ = PRODUCERS[producer]
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo.uri, tz_aware=True)
    ends = await _produce_backlog(kafka, topic, events)
    services = [
        await _start_ingestor(
            kafka, mongo, database, logs / f"ingestor-{n}.log", ingestor_env, nice
        )
        for n in range(ingestors)
    ]
    processes = {f"ingestor {n + 1}": service.pid for n, service in enumerate(services)}
    if mongo.pid is not None:
        processes[MONGO] = mongo.pid
    processes["Kafka (tansu)"] = kafka_pid(kafka)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    # Reads the group's committed offsets without joining it (tansu answers the admin client's
    # OffsetFetch in a form aiokafka cannot parse).
    reader = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=group, enable_auto_commit=False
    )
    await admin.start()
    await reader.start()

    async def until(done: Callable[[], Awaitable[bool]]) -> None:
        while not await done():
            if any(service.returncode is not None for service in services):
                raise RuntimeError(f"an ingestor exited; see {logs}")
            await asyncio.sleep(0.02)

    async def committed() -> int:
        return sum([await reader.committed(partition) or 0 for partition in ends])

    async def started() -> bool:
        members = await _group_members(admin, group)
        return members == ingestors and await committed() > 0

    async def finished() -> bool:
        return await committed() == sum(ends.values())

    try:
        await until(started)
        began = time.perf_counter()
        cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        committed_before = await committed()
        await until(finished)
        elapsed = time.perf_counter() - began
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in processes.items()}
        stored = await _stored_files(client[database])
        expected = len(events) if files is None else files
        if stored != expected:
            raise RuntimeError(f"{stored} files stored, {expected} expected; see {logs}")
    finally:
        await reader.stop()
        await admin.close()
        for service in services:
            service.terminate()
            await service.wait()
        await client.drop_database(database)
        await client.close()
    return EndToEnd(len(events) - committed_before, elapsed, cpu)


async def _group_members(admin: AIOKafkaAdminClient, group: str) -> int:
    """Members of a consumer group once it is stable, else 0."""
    [response] = await admin.describe_consumer_groups([group])
    [(_, _, state, _, _, members, *_)] = response.groups
    return len(members) if state == "Stable" else 0


async def _produce_backlog(
    kafka: EmbeddedKafka, topic: str, events: list[tuple[bytes, bytes]]
) -> dict[TopicPartition, int]:
    """Produce every event; the end offset of each partition."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        sends = [await producer.send(topic, value, key=key) for key, value in events]
        delivered = await asyncio.gather(*sends)
    finally:
        await producer.stop()
    ends: dict[TopicPartition, int] = {}
    for metadata in delivered:
        partition = TopicPartition(metadata.topic, metadata.partition)
        ends[partition] = max(ends.get(partition, 0), metadata.offset + 1)
    return ends


async def _start_ingestor(
    kafka: EmbeddedKafka,
    mongo: MongoUnderTest,
    database: str,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    nice: int = 0,
) -> asyncio.subprocess.Process:
    """`python -m scicat_ingestor`, configured as in production through its environment, at
    CPU niceness `nice` (set before it reads its first record: it has not joined a group yet)."""
    env = (
        os.environ
        | {
            "INGESTOR_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "INGESTOR_KAFKA__SESSION_TIMEOUT_MS": "6000",
            "INGESTOR_KAFKA__HEARTBEAT_INTERVAL_MS": "1000",
            "INGESTOR_KAFKA__REBALANCE_TIMEOUT_MS": "6000",
            "INGESTOR_MONGO__URI": mongo.uri,
            "INGESTOR_MONGO__DATABASE": database,
            "INGESTOR_HTTP__HOST": "127.0.0.1",
            "INGESTOR_HTTP__PORT": str(free_port()),
            "INGESTOR_PID_PREFIX": "bench",
            "INGESTOR_LOG_LEVEL": "WARNING",
        }
        | (extra_env or {})
    )
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scicat_ingestor", env=env, stdout=log, stderr=log
        )
    os.setpriority(os.PRIO_PROCESS, process.pid, nice)
    return process


async def _stored_files(db: Any) -> int:
    """Files in the stored datasets' file lists."""
    counted = await db[DATASET_COLLECTION].aggregate(
        [{"$group": {"_id": None, "files": {"$sum": "$numberOfFiles"}}}]
    )
    totals = await counted.to_list()
    return int(totals[0]["files"]) if totals else 0


@dataclass(frozen=True)
class MongoUnderTest:
    """The MongoDB the benchmark writes to: the embedded SecantusDB (its process known, so its
    CPU is measured) or an external one (`--mongodb URI`)."""

    uri: str
    pid: int | None = None


def embedded_mongo(mongo: EmbeddedMongo) -> MongoUnderTest:
    assert mongo.process is not None
    return MongoUnderTest(mongo.uri, mongo.process.pid)


def kafka_pid(kafka: EmbeddedKafka) -> int:
    assert kafka.process is not None
    return int(kafka.process.pid)


async def main(arguments: argparse.Namespace) -> None:
    events = file_events(arguments.files, arguments.files_per_run, arguments.checksums)
    cpu = ingestor_alone(events)
    topic, _, messages = PRODUCERS[arguments.producer]
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as scratch:
        folder = Path(scratch)
        per_nexus = nexus_extraction(arguments.nexus_files, folder, beamtime=BEAMTIME, start=START)
        kafka = EmbeddedKafka().start()
        embedded = None if arguments.mongodb else EmbeddedMongo().start()
        mongo = MongoUnderTest(arguments.mongodb) if embedded is None else embedded_mongo(embedded)
        try:
            await create_topics(kafka.bootstrap_servers, sorted({*ALL_TOPICS, topic}))
            measured = await raw_store_rate(mongo.uri, arguments.files, server_pid=mongo.pid)
            raw_stored = await raw_store_rate(mongo.uri, arguments.files, stored_shape=True)
            e2e = await end_to_end(
                kafka,
                mongo,
                messages(arguments.files, arguments.files_per_run, arguments.checksums),
                folder,
                arguments.ingestors,
                arguments.producer,
                ingestor_env={"INGESTOR_DEDUPLICATION": arguments.deduplication},
                nice=arguments.ingestor_nice,
            )
            # Measured again after the window: this machine's speed drifts within minutes, and
            # the mean of the two brackets the window the end-to-end rate was measured in.
            again = await raw_store_rate(mongo.uri, arguments.files, server_pid=mongo.pid)
        finally:
            kafka.stop()
            if embedded is not None:
                embedded.stop()
    console.print(
        ingestion_table(
            arguments, len(events), cpu, e2e, measured, again, raw_stored, per_nexus, topic
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--files",
        type=int,
        default=60000,
        help="file.closed events (60,000: a window of ~8 s, long enough to steady the rate)",
    )
    parser.add_argument("--files-per-run", type=int, default=20, help="files per run (dataset)")
    parser.add_argument("--nexus-files", type=int, default=200, help="NeXus files to read")
    parser.add_argument(
        "--ingestors",
        type=int,
        default=3,
        help="ingestor processes in one consumer group; 3, one per partition of the backlog, as "
        "deploy/k8s runs the ingestor (3 replicas)",
    )
    parser.add_argument(
        "--ingestor-nice",
        type=int,
        default=10,
        help="CPU niceness of the ingestor processes (0: the same priority as the stores). In "
        "production MongoDB and Kafka have CPUs of their own; here every process shares one "
        "machine, and the single-threaded store that every ingestor waits on lost its CPU to "
        "them. 10 lets the stores run first when they have work; the ingestors get the rest",
    )
    parser.add_argument(
        "--producer",
        choices=sorted(PRODUCERS),
        default="cloudevents",
        help="the end-to-end backlog's format: our CloudEvents on acquisition.events, or "
        "ASAP::O message metadata on asapo.messages (a native topic)",
    )
    parser.add_argument(
        "--checksums",
        action="store_true",
        help="every file event carries a blake2b checksum (CloudEvents backlog only)",
    )
    parser.add_argument(
        "--deduplication",
        choices=["identity", "offsets"],
        default="offsets",
        help="how the ingestor records applied events (INGESTOR_DEDUPLICATION; the service's "
        "default is offsets)",
    )
    parser.add_argument(
        "--mongodb",
        metavar="URI",
        help="measure against this MongoDB (a replica set: transactions need one) instead of the "
        "embedded SecantusDB; its CPU is then not measured. Databases bench_ingest and bench_raw "
        "are dropped.",
    )
    arguments = parser.parse_args()
    if arguments.checksums and arguments.producer != "cloudevents":
        parser.error("--checksums needs --producer cloudevents (ASAP::O messages carry none)")
    asyncio.run(main(arguments))
