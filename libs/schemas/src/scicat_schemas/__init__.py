"""The one library every scicat-pipeline service shares.

It holds the contracts between services (CloudEvents and their payloads, topic names, the stored
SciCat documents) and every mapping more than one service needs — above all the single
DataCite / Dublin Core mapping. `scicat_schemas.runtime` holds the plumbing every service runs on
(logging, dead letters, health and metrics), so the four services read the same way.
"""

from scicat_schemas import topics
from scicat_schemas.events import (
    BeamtimeUpdated,
    DatasetDeleted,
    DatasetStored,
    FileClosed,
    PublicationRegistered,
    PublicationRequested,
    PublicationWithdrawn,
    RunStarted,
    RunStopped,
)

__all__ = [
    "BeamtimeUpdated",
    "DatasetDeleted",
    "DatasetStored",
    "FileClosed",
    "PublicationRegistered",
    "PublicationRequested",
    "PublicationWithdrawn",
    "RunStarted",
    "RunStopped",
    "topics",
]
