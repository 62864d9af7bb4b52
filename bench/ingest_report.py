"""The ingestion benchmark's table: what was measured, against its targets.

Kept apart from `ingest_benchmark`, which runs the stack and measures; this only renders.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from raw_store import RawRate
from rich.table import Table

MONGO = "MongoDB (SecantusDB)"
"""SecantusDB serves under one interpreter lock: at most one core, whatever the machine has."""


@dataclass(frozen=True)
class EndToEnd:
    """What the timed window of the end-to-end run measured."""

    events: int
    seconds: float
    cpu_seconds: dict[str, float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_per_event_us(self, process: str) -> float:
        return self.cpu_seconds[process] / self.events * 1e6


def ingestion_table(
    arguments: argparse.Namespace,
    events: int,
    cpu: float,
    e2e: EndToEnd,
    measured: RawRate,
    again: RawRate,
    raw_stored: RawRate,
    per_nexus: float,
    topic: str,
) -> Table:
    """The table; the target applies to the mean of the raw rates `measured` before the window
    and `again` after it (the server slows as it fills)."""
    raw = (measured.docs_per_second + again.docs_per_second) / 2
    per_event_us = cpu / events * 1e6
    table = Table(
        title=f"ingestion: {events:,} file events, {arguments.files_per_run} per run"
        f"{', MongoDB at ' + arguments.mongodb if arguments.mongodb else ''}"
        f"{', with checksums' if arguments.checksums else ''}, "
        f"{arguments.ingestors} ingestor process(es) at nice {arguments.ingestor_nice}, "
        f"backlog on {topic}"
        f", applied events recorded by {arguments.deduplication}"
    )
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    table.add_row(
        "ingestor alone, CPU per file event",
        f"{per_event_us:.0f} µs",
        "≤ 100 µs",
        _met(per_event_us <= 100),
    )
    table.add_row("ingestor alone, events/s (1 core)", f"{events / cpu:,.0f}", "", "")
    table.add_row(
        f"end to end (Kafka backlog on {topic} → ingestor → MongoDB)",
        f"{e2e.rate:,.0f} events/s",
        f"≥ {0.8 * raw:,.0f} (0.8 × raw)",
        _met(e2e.rate >= 0.8 * raw),
    )
    table.add_row(
        "MongoDB raw insert_many (mean of before / after the window)",
        f"{raw:,.0f} docs/s ({measured.docs_per_second:,.0f} / {again.docs_per_second:,.0f})",
        "",
        "",
    )
    table.add_row(
        "end to end ÷ raw: the mean / before the window / after it",
        " / ".join(
            f"{e2e.rate / rate:.2f}"
            for rate in (raw, measured.docs_per_second, again.docs_per_second)
        ),
        "≥ 0.8 (the mean)",
        "",
    )
    table.add_row(
        "MongoDB raw insert_many, datasets as stored (context)",
        f"{raw_stored.docs_per_second:,.0f} docs/s",
        "",
        "",
    )
    if measured.server_cpu_us_per_doc is not None and again.server_cpu_us_per_doc is not None:
        table.add_row(
            "MongoDB (SecantusDB) CPU per raw document (before / after)",
            f"{measured.server_cpu_us_per_doc:.0f} / {again.server_cpu_us_per_doc:.0f} µs",
            "",
            "",
        )
    if MONGO in e2e.cpu_seconds:
        ceiling = 1e6 / e2e.cpu_per_event_us(MONGO)
        table.add_row(
            "ceiling set by MongoDB alone (1 core ÷ its CPU per ingested event)",
            f"{ceiling:,.0f} events/s = {ceiling / raw:.2f} × raw",
            f"≥ {0.8 * raw:,.0f} (0.8 × raw)",
            _met(ceiling >= 0.8 * raw),
        )
    for process in e2e.cpu_seconds:
        table.add_row(
            f"end to end, CPU of {process}", f"{e2e.cpu_per_event_us(process):.0f} µs/event", "", ""
        )
    table.add_row("end to end, window", f"{e2e.events:,} events in {e2e.seconds:.2f} s", "", "")
    table.add_row("NeXus extraction (P08 mapping)", f"{per_nexus * 1e3:.2f} ms/file", "", "")
    return table


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"
