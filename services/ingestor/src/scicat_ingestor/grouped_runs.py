"""Runs grouped into measurements (`MEASUREMENT_KEY`): each run's measurement and own metadata.

Kept in `PipelineRun`, written in the transaction of the event that names the run, so the
measurement dataset's aggregated metadata is always computed from every run it holds.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from scicat_ingestor.measurements import MeasurementView, RunSample
from scicat_ingestor.scientific_metadata import merge_scientific_metadata
from scicat_ingestor.store_values import GroupedRun

RUN_COLLECTION = "PipelineRun"
"""Runs grouped into measurements: the measurement of each run and the run's own metadata."""


async def measurement_of(
    db: AsyncDatabase[dict[str, Any]], beamtime_id: str, run_id: str
) -> str | None:
    doc = await db[RUN_COLLECTION].find_one({"_id": _run_key(beamtime_id, run_id)})
    return None if doc is None else str(doc["measurement"])


async def record_run(
    db: AsyncDatabase[dict[str, Any]], run: GroupedRun, session: AsyncClientSession
) -> MeasurementView:
    """Merge the event's metadata into its run; the measurement's runs, in start order."""
    runs = db[RUN_COLLECTION]
    key = _run_key(run.beamtime_id, run.run_id)
    stored = await runs.find_one({"_id": key}, session=session) or {}
    doc = {
        "beamtimeId": run.beamtime_id,
        "runId": run.run_id,
        "measurement": stored.get("measurement", run.measurement),
        "metadata": merge_scientific_metadata(stored.get("metadata", {}), run.metadata),
        "startedAt": stored.get("startedAt") or run.started_at,
    }
    await runs.replace_one({"_id": key}, doc, upsert=True, session=session)
    cursor = runs.find(
        {"beamtimeId": run.beamtime_id, "measurement": doc["measurement"]}, session=session
    )
    members = sorted(
        [member async for member in cursor],
        key=lambda member: (
            member.get("startedAt") is None,
            member.get("startedAt"),
            member["runId"],
        ),
    )
    return MeasurementView(
        measurement_id=doc["measurement"],
        runs=[RunSample(member["runId"], member.get("metadata", {})) for member in members],
    )


def _run_key(beamtime_id: str, run_id: str) -> str:
    return f"{beamtime_id}\x1f{run_id}"
