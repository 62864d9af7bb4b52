"""pytest fixtures for the embedded stack (registered as the `scicat_embedded` plugin).

Kafka (tansu) is fresh per test: it starts in milliseconds and topics are contracts with fixed
names, so a fresh broker is the clean way to isolate tests. MongoDB and OpenSearch are shared by
the session; each test gets its own database (`database_name`) and its own OpenSearch clone.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from scicat_pipeline.embedded import (
    EMBEDDED_KAFKA_TUNING,
    EmbeddedKafka,
    EmbeddedMongo,
    EmbeddedOpenSearch,
    create_topics,
)
from scicat_schemas.runtime.settings import KafkaSettings
from scicat_schemas.topics import ALL_TOPICS, NATIVE_TOPICS


@pytest.fixture
async def kafka() -> AsyncIterator[str]:
    """Bootstrap servers of a fresh Kafka broker with every contract topic created."""
    broker = EmbeddedKafka().start()
    try:
        await create_topics(broker.bootstrap_servers, [*ALL_TOPICS, *NATIVE_TOPICS], partitions=3)
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    server = EmbeddedMongo().start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def database_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def opensearch_server() -> Iterator[EmbeddedOpenSearch]:
    server = EmbeddedOpenSearch().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def opensearch_url(opensearch_server: EmbeddedOpenSearch) -> Iterator[str]:
    """A clone of the session's OpenSearch for one test."""
    clone = opensearch_server.server.clone()  # type: ignore[attr-defined]
    try:
        yield clone.url
    finally:
        clone.close()


@pytest.fixture
def kafka_settings(kafka: str) -> KafkaSettings:
    """Consumer settings tuned for the embedded broker: group joins take ~1 s, not 10 s."""
    return KafkaSettings(**EMBEDDED_KAFKA_TUNING, bootstrap_servers=kafka)
