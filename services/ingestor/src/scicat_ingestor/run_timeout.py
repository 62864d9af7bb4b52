"""Closing runs that never sent `run.stopped`: a periodic scan of open datasets in MongoDB.

Open-run state is the dataset itself (`datasetStatus: open`), so nothing is lost when the service
restarts and any replica may close a run. Every `scan_interval` the closer looks for open datasets
unchanged for `quiet_period` and closes each with status `timeout` through the same transactional
path as events: the idempotency marker `<pid>#<revision>` means two replicas scanning at once
close a run once, and a run that changed meanwhile is left open.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog

from scicat_ingestor.domain import close_quiet_run
from scicat_ingestor.publisher import DatasetEvents
from scicat_ingestor.store import AppliedEvent, CatalogueStore
from scicat_schemas.documents import Dataset

log = structlog.get_logger("scicat.ingestor.runs")

TIMEOUT_SOURCE = "/scicat-pipeline/ingestor/run-timeout"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class QuietRunCloser:
    store: CatalogueStore
    events: DatasetEvents
    quiet_period: timedelta
    scan_interval: float
    clock: Callable[[], datetime] = field(default=_utc_now)

    async def close_quiet_runs(self) -> list[Dataset]:
        """Close every run quiet for the period; the datasets closed, as stored and published."""
        now = self.clock()
        quiet_since = now - self.quiet_period
        closed = []
        for pid, revision in await self.store.stale_open_datasets(quiet_since=quiet_since):
            outcome = await self.store.apply(
                AppliedEvent(
                    identity=f"{TIMEOUT_SOURCE}\x1f{pid}#{revision}",
                    type="run.timeout",
                    pid=pid,
                    applied_at=now,
                ),
                lambda current, _context: close_quiet_run(
                    current, quiet_since=quiet_since, now=now
                ),
            )
            if outcome.changed and outcome.dataset is not None:
                await self.events.dataset_stored(outcome.dataset)
                closed.append(outcome.dataset)
                log.info("run closed after its quiet period", pid=pid)
        return closed

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Scan periodically while the context is open (the app lifespan)."""
        task = asyncio.create_task(self._loop(), name="quiet-run-closer")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.scan_interval)
            try:
                await self.close_quiet_runs()
            except Exception as error:  # an outage: the next scan tries again
                log.warning("closing quiet runs failed; next scan retries", error=repr(error))
