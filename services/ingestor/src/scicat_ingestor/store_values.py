"""The values the handlers and the catalogue store exchange (single events and beamtimes).

Kept apart from `store.py`, which is the MongoDB adapter: the batch store and the tests use these
without the adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from scicat_ingestor.beamtimes import BeamtimeFacts
from scicat_ingestor.domain import CatalogueEntry
from scicat_ingestor.measurements import MeasurementView
from scicat_schemas.documents import Dataset


@dataclass(slots=True)  # never changed; not frozen, which costs ~2.5x to build per event
class StoredContext:
    """What else the domain needs, read in the same transaction: the dataset's beamtime (when
    known) and, for a run grouped into a measurement, the measurement's runs."""

    beamtime: BeamtimeFacts | None = None
    measurement: MeasurementView | None = None
    owned: bool = False
    """The current state is the transaction's own (made by an earlier event of it and held by
    nothing else), so the domain may extend its file list, and update its datablock, in place
    (`apply_event`)."""


Decide = Callable[[CatalogueEntry | None, StoredContext], CatalogueEntry | None]
"""The domain step run inside the transaction: current state and context → new state, or `None`
(no change)."""

Complete = Callable[[CatalogueEntry], CatalogueEntry | None]
"""A dataset of a beamtime that just changed → its completed state, or `None` (no change)."""


Partition = tuple[str, int]
"""(topic, partition)"""


@dataclass(frozen=True)
class Delivery:
    """Where a record was read: with `DEDUPLICATION=offsets` its events are recorded by its
    offset (`delivery_fences`)."""

    topic: str
    partition: int
    offset: int

    @property
    def where(self) -> Partition:
        return (self.topic, self.partition)

    @classmethod
    def of(cls, record: Any) -> Delivery:
        """Where an aiokafka `ConsumerRecord` was read."""
        return cls(record.topic, record.partition, record.offset)


CopyRecognition = Literal["marker", "dataset", "file", "unneeded"]
"""With `DEDUPLICATION=offsets`, how an event is recognised if produced again (same identity,
a new offset): by a marker; by its identity kept in its dataset's document; by the record of its
file, which names the report that made it, else a marker; or not at all."""


@dataclass(slots=True)  # never changed; not frozen, which costs ~2.5x to build per event
class AppliedEvent:
    """The marker that records an event as applied; `identity` is CloudEvent `source` + `id`."""

    identity: str
    type: str
    pid: str
    applied_at: datetime
    beamtime_id: str | None = None
    run: GroupedRun | None = None
    delivery: Delivery | None = None
    copies: CopyRecognition = "marker"
    """With a `delivery` and `DEDUPLICATION=offsets`: how a copy of this event produced again is
    recognised (`applied_events.copy_recognition`). Recorded by identities, every event has a
    marker."""
    file: str | None = None
    """A `file.closed`'s file (absolute, normalised), whose record may name this event."""


@dataclass(frozen=True)
class GroupedRun:
    """A run's event in a measurement: recorded with the run before the domain decides."""

    beamtime_id: str
    run_id: str
    measurement: str
    metadata: dict[str, Any]
    started_at: datetime | None = None


@dataclass(slots=True)  # never changed; not frozen, which costs ~2.5x to build per event
class StoreOutcome:
    """What applying one event did; `dataset` is the dataset as stored now (None: there is none)."""

    dataset: Dataset | None
    changed: bool
    already_applied: bool


@dataclass(frozen=True)
class BeamtimeOutcome:
    """What a `beamtime.updated` did: `announced`, how many of its datasets it announced
    (`beamtime_announcements`)."""

    announced: int
    changed: bool
    already_applied: bool
    damaged: list[str] = field(default_factory=list)
    """Why each dataset of the beamtime that could not be read was left alone (its stored
    document does not validate); the others were completed. Not recorded as applied then, so
    the dead letter, replayed once they are repaired, completes them."""


class ConcurrentUpdate(Exception):
    """Another writer changed the dataset between read and write; retrying reads fresh state."""


class UngroupedRun(Exception):
    """An event of a batch was given the measurement an earlier start of the same transaction
    names, but that start was refused: the run is in no measurement. The transaction aborts and
    the events are applied again, transactions ending at such starts (`batch`)."""


class MarkerConflict(ConcurrentUpdate):
    """Recording an event collided with a marker written after this transaction looked."""
