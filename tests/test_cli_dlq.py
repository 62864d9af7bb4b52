"""`scicat-pipeline dlq list|replay`: dead letters back to their topics, once per replay group."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from scicat_pipeline.cli import app
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.runtime import dead_letter
from scicat_schemas.topics import ACQUISITION_EVENTS, PROPOSALS_EVENTS

DLQ = "ingestor.dlq"


async def dlq(*args: str):
    return await asyncio.to_thread(CliRunner().invoke, app, ["dlq", *args], env={"COLUMNS": "250"})


async def dead_letters(kafka: str, *letters: tuple[str, str, str, bytes]) -> None:
    """`(original topic, error type, reason, value)` dead-lettered as the consumer does it."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        for offset, (topic, error_type, reason, value) in enumerate(letters):
            headers = dead_letter.dead_letter_headers(
                reason=reason,
                error_type=error_type,
                service="ingestor",
                topic=topic,
                partition=0,
                offset=offset,
            )
            await producer.send_and_wait(
                DLQ,
                value,
                key=f"key-{offset}".encode(),
                partition=0,
                headers=[("content-type", b"application/cloudevents+json")]
                + [(k, v.encode()) for k, v in headers.items()],
            )
    finally:
        await producer.stop()


async def messages_on(kafka: str, topic: str) -> list:
    return await read_topic(kafka, topic, expected=0, timeout=2)


async def test_list_shows_every_letter_with_its_reason(kafka) -> None:
    await dead_letters(
        kafka,
        (ACQUISITION_EVENTS, "invalid-json", "not JSON at all", b"{x"),
        (PROPOSALS_EVENTS, "invalid-event", "data.beamline: Field required", b"{}"),
    )

    result = await dlq("list", "ingestor", "--kafka", kafka)
    filtered = await dlq("list", "ingestor", "--kafka", kafka, "--reason-contains", "BEAMLINE")

    assert result.exit_code == 0, result.output
    assert "2 letter(s)" in result.output
    assert "not JSON at all" in result.output and "invalid-event" in result.output
    assert "1 letter(s)" in filtered.output
    future = await dlq("list", "ingestor", "--kafka", kafka, "--since", "2999-01-01T00:00:00Z")
    past = await dlq("list", "ingestor", "--kafka", kafka, "--since", "2000-01-01T00:00:00Z")
    assert "0 letter(s)" in future.output and "2 letter(s)" in past.output


async def test_replay_sends_the_original_record_back_once_and_resumes_with_new_letters(
    kafka,
) -> None:
    await dead_letters(
        kafka,
        (ACQUISITION_EVENTS, "invalid-event", "size missing", b'{"id": "1"}'),
        (ACQUISITION_EVENTS, "invalid-json", "garbage", b"{x"),
        (PROPOSALS_EVENTS, "invalid-event", "beamline missing", b'{"id": "2"}'),
    )

    dry = await dlq(
        "replay", "ingestor", "--kafka", kafka, "--dry-run", "--error-type", "invalid-event"
    )
    assert dry.exit_code == 0, dry.output
    assert "would replay 2" in dry.output
    assert await messages_on(kafka, ACQUISITION_EVENTS) == []

    first = await dlq("replay", "ingestor", "--kafka", kafka, "--error-type", "invalid-event")
    again = await dlq("replay", "ingestor", "--kafka", kafka, "--error-type", "invalid-event")

    assert "replayed 2" in first.output and "replayed 0" in again.output
    [acquisition] = await read_topic(kafka, ACQUISITION_EVENTS)
    [proposal] = await read_topic(kafka, PROPOSALS_EVENTS)
    assert (acquisition.value, acquisition.key) == (b'{"id": "1"}', b"key-0")
    assert acquisition.headers == (("content-type", b"application/cloudevents+json"),)
    assert proposal.value == b'{"id": "2"}'

    await dead_letters(kafka, (ACQUISITION_EVENTS, "invalid-event", "later", b'{"id": "3"}'))
    resumed = await dlq("replay", "ingestor", "--kafka", kafka, "--error-type", "invalid-event")
    everything = await dlq("replay", "ingestor", "--kafka", kafka)

    assert "replayed 1" in resumed.output
    assert "replayed 4" in everything.output
    values = [r.value for r in await read_topic(kafka, ACQUISITION_EVENTS, expected=5)]
    assert values.count(b'{"id": "3"}') == 2
    assert values.count(b"{x") == 1


async def test_bad_since_exits_2(kafka) -> None:
    result = await dlq("replay", "ingestor", "--kafka", kafka, "--since", "yesterday")

    assert result.exit_code == 2
    assert "ISO 8601" in result.output
