"""Ingestion with measurement grouping (DESY, SciCat #984): runs of one measurement, one dataset.

Prints one table; nothing is asserted. The backlog of `ingest_benchmark.py` with every run opened
by a `run.started` naming its measurement (`--runs-per-measurement` runs each), consumed by one
ingestor process with `INGESTOR_MEASUREMENT_KEY=measurement`, next to MongoDB's raw
`insert_many` rate in the same run. A grouped event also records its run (`PipelineRun`) and
recomputes the measurement's statistics over its runs, and a measurement's file list is the
files of all its runs.

    uv run --frozen python bench/grouped_ingest_benchmark.py
    uv run --frozen python bench/grouped_ingest_benchmark.py --files-per-run 10 \
        --runs-per-measurement 500
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from ingest_benchmark import embedded_mongo, end_to_end
from ingest_messages import grouped_events
from raw_store import raw_store_rate
from rich.console import Console
from rich.table import Table

from scicat_pipeline.embedded import EmbeddedKafka, EmbeddedMongo, create_topics
from scicat_schemas.topics import ALL_TOPICS


async def main(arguments: argparse.Namespace) -> None:
    files, per_run, grouped = (
        arguments.files,
        arguments.files_per_run,
        arguments.runs_per_measurement,
    )
    events = grouped_events(files, per_run, grouped)
    kafka, mongo = EmbeddedKafka().start(), EmbeddedMongo().start()
    try:
        await create_topics(kafka.bootstrap_servers, sorted(ALL_TOPICS))
        raw = (await raw_store_rate(mongo.uri, files)).docs_per_second
        with tempfile.TemporaryDirectory(prefix="grouped-bench-") as logs:
            e2e = await end_to_end(
                kafka,
                embedded_mongo(mongo),
                events,
                Path(logs),
                1,
                ingestor_env={"INGESTOR_MEASUREMENT_KEY": "measurement"},
                files=files,
            )
    finally:
        kafka.stop()
        mongo.stop()
    runs = -(-files // per_run)
    table = Table(
        title=f"grouped ingestion: {files:,} files in {runs:,} runs of {per_run}, "
        f"{grouped} runs per measurement (one dataset each), 1 ingestor process"
    )
    for column in ("measure", "value"):
        table.add_column(column)
    table.add_row("end to end, events/s (starts and files)", f"{e2e.rate:,.0f}")
    table.add_row("MongoDB raw insert_many, docs/s", f"{raw:,.0f}")
    for process in e2e.cpu_seconds:
        table.add_row(f"CPU of {process}", f"{e2e.cpu_per_event_us(process):.0f} µs/event")
    table.add_row("window", f"{e2e.events:,} events in {e2e.seconds:.2f} s")
    Console().print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10000, help="file.closed events")
    parser.add_argument("--files-per-run", type=int, default=50, help="files per run")
    parser.add_argument(
        "--runs-per-measurement", type=int, default=100, help="runs grouped into one dataset"
    )
    asyncio.run(main(parser.parse_args()))
