"""Publishing our CloudEvents to Kafka, behind an interface a test can replace with a list."""

from __future__ import annotations

from typing import Protocol

from faststream.kafka import KafkaBroker

from scicat_schemas.events import CloudEvent, encode

CLOUDEVENTS_JSON = "application/cloudevents+json; charset=UTF-8"


class EventPublisher(Protocol):
    async def publish(self, event: CloudEvent, *, topic: str, key: str) -> None:
        """Returns once the broker has the event (the broker is built with `acks="all"`)."""


class KafkaEventPublisher:
    """Structured-mode CloudEvents: the whole event is the record value, keyed for ordering."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker

    async def publish(self, event: CloudEvent, *, topic: str, key: str) -> None:
        await self.broker.publish(
            encode(event),
            topic=topic,
            key=key.encode(),
            headers={"content-type": CLOUDEVENTS_JSON},
        )
