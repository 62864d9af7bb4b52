"""How a batch records the events it applied (`batch_store`).

With identities (`DEDUPLICATION=identity`, or events without a Kafka offset) every event goes
into its dataset's marker for the batch. With offsets the fence records the batch, and only the
identities a copy produced again must meet are kept, each where the batch writes anyway
(`applied_events.copy_recognition`): in the dataset's document, in the file record a report
made, or, for the rare rest, in a marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from scicat_ingestor.applied_events import (
    APPLIED_EVENT_COLLECTION,
    applied_among,
    copy_already_applied,
    keeping,
    marker_document,
)
from scicat_ingestor.catalogue_entry import report_of
from scicat_ingestor.domain import CatalogueEntry
from scicat_ingestor.store_values import AppliedEvent, MarkerConflict
from scicat_ingestor.stored_documents import CorruptStoredDocument
from scicat_schemas.documents import INGESTOR_APPLIED_EVENTS


@dataclass
class BatchRecords:
    """How the batch records the events it applies: markers (one per dataset), or with
    `by_offsets` only where a copy must be recognised (`AppliedEvent.copies`), identities kept
    in the dataset's own document included."""

    by_offsets: bool
    kept: dict[str, list[str]]
    """By base pid: the identities its latest version's document keeps, as loaded, then as the
    batch leaves them."""
    markers: dict[str, list[AppliedEvent]] = field(default_factory=dict)
    kept_changed: set[str] = field(default_factory=set)

    def record(self, event: AppliedEvent, entry: CatalogueEntry | None) -> None:
        """`event` applied; `entry`: its dataset now (`None`: there is none to keep it)."""
        if (
            not self.by_offsets
            or event.copies == "marker"
            or (event.copies == "dataset" and entry is None)
        ):
            self.markers.setdefault(event.pid, []).append(event)
        elif event.copies == "dataset":
            self.kept[event.pid] = keeping(self.kept.get(event.pid, []), event.identity)
            self.kept_changed.add(event.pid)
        elif event.copies == "file" and not made_its_record(entry, event):
            self.markers.setdefault(event.pid, []).append(event)

    async def insert_markers(
        self, db: AsyncDatabase[dict[str, Any]], session: AsyncClientSession
    ) -> None:
        """One marker per dataset with the events recorded by markers, if any. They were absent
        when read in this transaction: a duplicate now is a race (`MarkerConflict`)."""
        if not self.markers:
            return
        docs = [_marker(events) for events in self.markers.values()]
        try:
            await db[APPLIED_EVENT_COLLECTION].insert_many(docs, session=session)
        except (BulkWriteError, DuplicateKeyError) as error:
            raise MarkerConflict(
                "another consumer recorded an event of this batch meanwhile"
            ) from error


def kept_field(kept: list[str] | None) -> dict[str, list[str]]:
    """The identities a dataset document keeps, as the fields to write (none when empty)."""
    return {INGESTOR_APPLIED_EVENTS: kept} if kept else {}


def made_its_record(entry: CatalogueEntry | None, event: AppliedEvent) -> bool:
    """Whether `event`'s file record now names it; a new file's record is the last one, so
    usually without looking the path up."""
    block = None if entry is None else entry.datablock
    if block is not None and block.dataFileList:
        if report_of(block.dataFileList[-1]) == event.identity:
            return True
    return copy_already_applied(entry, event) is True


async def file_reports_applied(
    db: AsyncDatabase[dict[str, Any]],
    session: AsyncClientSession,
    events: Sequence[AppliedEvent],
    state: dict[str, CatalogueEntry | CorruptStoredDocument | None],
    applied: set[str],
    earlier_markers: bool | None,
) -> set[str]:
    """Of the file reports recognised by their file's record (`copies == "file"`), those already
    applied: the record names them, or (when it names another report) a marker does. Usually no
    command at all. `earlier_markers` `None`: every event was looked up among the markers
    already (`DEDUPLICATION=identity`)."""
    found: set[str] = set()
    doubtful: list[str] = []
    for event in events:
        if event.copies != "file" or event.identity in applied:
            continue
        current = state[event.pid]
        if isinstance(current, CorruptStoredDocument):
            continue
        known = copy_already_applied(current, event)
        if known:
            found.add(event.identity)
        elif known is None:
            doubtful.append(event.identity)
    if doubtful and earlier_markers is not None:
        found |= await applied_among(
            db, list(dict.fromkeys(doubtful)), session, earlier_layout=earlier_markers
        )
    return found


def _marker(events: list[AppliedEvent]) -> dict[str, Any]:
    """One dataset's events of this batch, in applied order."""
    return marker_document(
        [event.identity for event in events],
        pid=events[0].pid,
        types=[event.type for event in events],
        applied_at=events[0].applied_at,
    )
