"""The record of applied events, which makes a redelivered event change nothing.

A marker holds the identities (CloudEvent `source` + `id`) of the events one transaction applied
to one dataset: one per event on the per-event path, one per dataset per batch on the batch path
(a batch of 500 file events of 25 runs writes 25 markers, not 500). Identities are looked up
through a multikey index on `events`. It is not UNIQUE, because it need not be: two transactions
that both apply an event with an effect both write its dataset, conditionally on the revision
they read, so one of them fails and is retried on fresh state, where it finds the marker (an event
without effect recorded twice changed nothing twice). Uniqueness cost SecantusDB a probe per
identity, about a fifth of its time per ingested event. The marker's `_id` is its first identity,
so markers of the earlier one-document-per-event layout (`{_id: identity}`, no `events`) are still
recognised by the same lookup and still collide on `_id`.

Markers matter only while an event can be delivered again; a TTL index on `appliedAt` removes
them after the configured retention (`INGESTOR_APPLIED_EVENT_RETENTION_DAYS`), which must exceed
how long a record can come back (topic retention, dead letters one may replay).

With `DEDUPLICATION=offsets` a redelivery is recognised by its partition's fence
(`delivery_fences`), and only the events whose copy, *produced* again later, could undo a newer
change need their identity kept (`copy_recognition`), each where it is read and written anyway,
with no command of its own: a run's start and stop in the dataset's own document
(`kept_identities`, a few per dataset), a file report carrying metadata in the record of the file
it made (`catalogue_entry.REPORT_FIELD`). Markers are left for the rare others: a report that
made no record (its file unchanged), events of grouped runs. A plain file report needs nothing:
repeated, it changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from scicat_ingestor.catalogue_entry import recorded_file, report_of
from scicat_ingestor.domain import AcquisitionData, CatalogueEntry, changes_nothing_if_repeated
from scicat_ingestor.file_paths import InvalidPath, normalise_file_path
from scicat_ingestor.store_values import AppliedEvent, CopyRecognition
from scicat_schemas.acquisition_payloads import FileClosedData
from scicat_schemas.documents import INGESTOR_APPLIED_EVENTS

APPLIED_EVENT_COLLECTION = "PipelineAppliedEvent"
EVENTS_FIELD = "events"
TTL_INDEX = "appliedAt_ttl"


KEPT_IDENTITIES_MAX = 64
"""Identities kept in one dataset's document, the latest: a run has a start and a stop; a
producer re-sending them under new identities many times is the only way to reach this bound,
beyond which the oldest are forgotten, as markers expire."""


def copy_recognition(
    data: AcquisitionData, *, grouped: bool, groupable: bool = False
) -> CopyRecognition:
    """How a copy of `data` produced again must be recognised (`DEDUPLICATION=offsets`).

    A plain file report needs nothing (`domain.changes_nothing_if_repeated`). A start or a stop
    outside a measurement is kept with its dataset: a run has one of each, so the document stays
    small. A file report carrying metadata (a long run may have thousands) is named by the file
    record it makes, written anyway; one that makes no record (its file unchanged) gets a
    marker. Every event of a grouped run gets a marker, and with grouping on (`groupable`:
    `MEASUREMENT_KEY` set) every event: a run reported before its start is grouped only from
    the start on, and a copy of an earlier event would then go to the measurement, where what
    the run's own dataset keeps cannot recognise it (found by the differential test).
    """
    if grouped or groupable:
        return "marker"
    if changes_nothing_if_repeated(data):
        return "unneeded"
    return "file" if isinstance(data, FileClosedData) else "dataset"


def reported_file(data: AcquisitionData) -> str | None:
    """A `file.closed`'s file as its record is found (`catalogue_entry.recorded_file`); `None`
    for other events and for a path the domain will refuse."""
    if not isinstance(data, FileClosedData):
        return None
    try:
        return normalise_file_path(data.path)
    except InvalidPath:
        return None


def copy_already_applied(entry: CatalogueEntry | None, event: AppliedEvent) -> bool | None:
    """For a `file` event (`copy_recognition`): whether its file's record names it (a copy of
    the report that made the record: already applied), names none or another report (it may be
    a copy of a report that changed nothing, which has a marker: `None`, look it up), or there
    is no record (nothing applied it: False)."""
    if entry is None or event.file is None:
        return False
    record = recorded_file(entry, event.file)
    if record is None:
        return False
    return True if report_of(record) == event.identity else None


def kept_identities(doc: Mapping[str, Any]) -> list[str]:
    """The identities a stored dataset document keeps (`INGESTOR_APPLIED_EVENTS`)."""
    value = doc.get(INGESTOR_APPLIED_EVENTS)
    if not isinstance(value, list):
        return []
    return [identity for identity in value if isinstance(identity, str)]


def keeping(kept: Sequence[str], identity: str) -> list[str]:
    """`kept` with `identity` added, the latest `KEPT_IDENTITIES_MAX`."""
    return [*kept, identity][-KEPT_IDENTITIES_MAX:]


def marker_document(
    identities: Sequence[str], *, pid: str, types: Iterable[str], applied_at: datetime
) -> dict[str, Any]:
    """The marker of `identities` (in applied order) applied to dataset `pid`."""
    return {
        "_id": identities[0],
        EVENTS_FIELD: list(identities),
        "pid": pid,
        "types": sorted(set(types)),
        "appliedAt": applied_at,
    }


async def applied_among(
    db: AsyncDatabase[dict[str, Any]],
    identities: Sequence[str],
    session: AsyncClientSession | None = None,
    *,
    earlier_layout: bool = True,
) -> set[str]:
    """Which of `identities` are recorded: one indexed query, and one more by `_id` for markers
    of the earlier layout when some may exist (`earlier_markers_may_exist`)."""
    if not identities:
        return set()
    wanted = list(identities)
    markers = db[APPLIED_EVENT_COLLECTION]
    queries: list[dict[str, Any]] = [{EVENTS_FIELD: {"$in": wanted}}]
    if earlier_layout:
        queries.append({"_id": {"$in": wanted}})
    recorded: set[str] = set()
    for query in queries:
        async for doc in markers.find(query, projection={EVENTS_FIELD: True}, session=session):
            recorded.update(doc.get(EVENTS_FIELD) or [doc["_id"]])
    return recorded.intersection(wanted)


class AlreadyApplied(Exception):
    """Aborts the transaction of a redelivered event on the per-event path."""


async def record_applied(
    db: AsyncDatabase[dict[str, Any]], marker: dict[str, Any], session: AsyncClientSession
) -> None:
    """Insert one event's marker, or raise `AlreadyApplied`: a marker holds the event already
    (whichever path applied it), or one of the earlier layout collides on `_id`."""
    if await applied_among(db, marker[EVENTS_FIELD], session, earlier_layout=False):
        raise AlreadyApplied
    try:
        await db[APPLIED_EVENT_COLLECTION].insert_one(marker, session=session)
    except DuplicateKeyError as error:
        raise AlreadyApplied from error


async def earlier_markers_may_exist(db: AsyncDatabase[dict[str, Any]]) -> bool:
    """Whether the oldest marker is of the one-per-event layout (written before the upgrade).

    Checked at start-up, so the `_id` lookup is skipped once they have expired. A marker of that
    layout written later (an old replica during a rolling upgrade) makes a batch's marker insert
    collide; the store then looks them up again (`MarkerConflict`).
    """
    oldest = await db[APPLIED_EVENT_COLLECTION].find_one(
        {}, projection={EVENTS_FIELD: True}, sort=[("appliedAt", 1)]
    )
    return oldest is not None and EVENTS_FIELD not in oldest


async def ensure_marker_indexes(
    db: AsyncDatabase[dict[str, Any]], retention: timedelta | None
) -> None:
    """The multikey index (sparse: earlier markers have no `events`) and the TTL.

    The index was UNIQUE before (see the module docstring); such an index is replaced.

    `retention` `None` leaves the TTL index as it is (tools that share the store but not the
    service's settings); zero removes it (markers kept for ever); a changed retention is applied
    to the existing index (`collMod`).
    """
    markers = db[APPLIED_EVENT_COLLECTION]
    await markers.create_index("pid")
    existing_indexes = await markers.index_information()
    for name, spec in existing_indexes.items():
        if spec["key"] == [(EVENTS_FIELD, 1)] and spec.get("unique"):
            await markers.drop_index(name)
    await markers.create_index(EVENTS_FIELD, sparse=True)
    if retention is None:
        return
    existing = existing_indexes.get(TTL_INDEX)
    seconds = int(retention.total_seconds())
    if seconds <= 0:
        if existing is not None:
            await markers.drop_index(TTL_INDEX)
    elif existing is None:
        await markers.create_index("appliedAt", name=TTL_INDEX, expireAfterSeconds=seconds)
    elif existing.get("expireAfterSeconds") != seconds:
        await db.command(
            {
                "collMod": APPLIED_EVENT_COLLECTION,
                "index": {"name": TTL_INDEX, "expireAfterSeconds": seconds},
            }
        )
