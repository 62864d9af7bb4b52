"""Kafka topic names: the routing half of the event contract.

The key of every message is named here too, because ordering depends on it: all events of one run,
one beamtime, one dataset or one publication land on the same partition and stay in order.
"""

from typing import Final

ACQUISITION_EVENTS: Final = "acquisition.events"
"""`run.started`, `file.closed`, `run.stopped`; key: run id."""

PROPOSALS_EVENTS: Final = "proposals.events"
"""`beamtime.updated`; key: beamtime id."""

CATALOGUE_DATASETS: Final = "catalogue.datasets"
"""`dataset.stored`, `dataset.deleted`; key: dataset pid."""

CATALOGUE_PUBLICATIONS: Final = "catalogue.publications"
"""`publication.requested`, `.registered`, `.withdrawn`; key: publication id."""

CONTRACT_TOPICS: Final = (
    ACQUISITION_EVENTS,
    PROPOSALS_EVENTS,
    CATALOGUE_DATASETS,
    CATALOGUE_PUBLICATIONS,
)

CONSUMING_SERVICES: Final = ("ingestor", "indexer", "doi-minter", "oai-provider")


def dead_letter_topic(service: str) -> str:
    """Each consuming service owns one dead-letter topic, `<service>.dlq`."""
    return f"{service}.dlq"


ALL_TOPICS: Final = CONTRACT_TOPICS + tuple(dead_letter_topic(s) for s in CONSUMING_SERVICES)

NATIVE_TOPICS: Final = ("filewriter.status", "asapo.messages", "p08.bluesky.runengine.documents")
"""Producers' own topics the embedded stack creates: ESS file-writer status (wrdn), ASAP::O
message metadata, and one bluesky-kafka topic (the ingestor matches `<prefix>.bluesky.runengine.
documents` by pattern). Not part of our contract; the ingestor settings name what it reads."""
