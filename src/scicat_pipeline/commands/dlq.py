"""`scicat-pipeline dlq list|replay <service>`: inspect and re-publish dead letters.

`replay` sends each selected letter of `<service>.dlq` back to the topic it came from
(`dlq-original-topic`) with its original key, value and headers, the `dlq-*` headers stripped,
and waits for Kafka's acknowledgement (`acks=all`) before committing the letter's offset in the
replay's own consumer group. So an interrupted replay resumes where it stopped, and a letter is
never replayed twice by the same group.

The group is `scicat-dlq-replay-<service>`, with a digest of the filter appended when one is
given: each filter keeps its own position, and letters one filter passed over stay available
to another. A letter matching two different filters can be replayed once per filter; the
services recognise the repeated event (`source` + `id`) and change nothing. `--group` names a
group explicitly (e.g. a fresh one to replay everything again).

Replay reads up to the end offsets seen when it starts, so letters dead-lettered again while it
runs (a bug still present) wait for the next replay instead of looping.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from scicat_pipeline.kafka_access import kafka_client_options
from scicat_schemas.runtime import dead_letter
from scicat_schemas.topics import dead_letter_topic

app = typer.Typer(name="dlq", help="Inspect and replay dead letters.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

KafkaOpt = Annotated[
    str, typer.Option("--kafka", envvar="SCICAT_KAFKA", help="Kafka bootstrap servers.")
]
ServiceArg = Annotated[str, typer.Argument(help="Service whose <service>.dlq to read.")]
ErrorTypeOpt = Annotated[
    list[str] | None,
    typer.Option("--error-type", help="Only letters of this dlq-error-type (repeatable)."),
]
ReasonOpt = Annotated[
    str | None,
    typer.Option("--reason-contains", help="Only letters whose reason contains this (any case)."),
]
SinceOpt = Annotated[
    str | None,
    typer.Option("--since", help="Only letters dead-lettered at or after this ISO 8601 time."),
]


@dataclass(frozen=True)
class LetterFilter:
    error_types: frozenset[str] = frozenset()
    reason_contains: str | None = None
    since: datetime | None = None

    @property
    def is_empty(self) -> bool:
        return not self.error_types and self.reason_contains is None and self.since is None

    def digest(self) -> str:
        text = "|".join(
            [
                ",".join(sorted(self.error_types)),
                self.reason_contains or "",
                self.since.isoformat() if self.since else "",
            ]
        )
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def matches(self, letter: DeadLetter) -> bool:
        if self.error_types and letter.error_type not in self.error_types:
            return False
        if self.reason_contains and self.reason_contains.lower() not in letter.reason.lower():
            return False
        if self.since is not None:
            return letter.failed_at is not None and letter.failed_at >= self.since
        return True


@dataclass(frozen=True)
class DeadLetter:
    record: ConsumerRecord[Any, Any]

    @property
    def headers(self) -> dict[str, str]:
        return {k: v.decode(errors="replace") for k, v in (self.record.headers or ())}

    @property
    def reason(self) -> str:
        return self.headers.get(dead_letter.REASON, "")

    @property
    def error_type(self) -> str:
        return self.headers.get(dead_letter.ERROR_TYPE, "")

    @property
    def original_topic(self) -> str | None:
        return self.headers.get(dead_letter.ORIGINAL_TOPIC) or None

    @property
    def failed_at(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.headers[dead_letter.FAILED_AT])
        except (KeyError, ValueError):
            return None

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers: every `dlq-*` header the dead-lettering added is dropped."""
        return [(k, v) for k, v in (self.record.headers or ()) if not k.startswith("dlq-")]


def make_filter(
    error_types: Sequence[str] | None, reason_contains: str | None, since: str | None
) -> LetterFilter:
    moment = None
    if since is not None:
        try:
            moment = datetime.fromisoformat(since)
        except ValueError:
            err.print(f"[red]error:[/red] --since {since!r} is not an ISO 8601 time")
            raise typer.Exit(2) from None
        if moment.tzinfo is None:
            err.print(f"[red]error:[/red] --since {since!r} needs a UTC offset (e.g. Z)")
            raise typer.Exit(2)
    return LetterFilter(frozenset(error_types or ()), reason_contains, moment)


def replay_group(service: str, letters: LetterFilter) -> str:
    base = f"scicat-dlq-replay-{service}"
    return base if letters.is_empty else f"{base}-{letters.digest()}"


async def _open_consumer(
    kafka: str, topic: str, group: str | None
) -> tuple[AIOKafkaConsumer, dict[TopicPartition, int]]:
    """A consumer assigned every partition of `topic`, and the end offsets at this moment."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **kafka_client_options(),
    )
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise KafkaError(f"topic {topic!r} does not exist")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        ends = await consumer.end_offsets(assigned)
        for tp in assigned:
            committed = await consumer.committed(tp) if group else None
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
    except BaseException:
        await consumer.stop()
        raise
    return consumer, ends


async def _remaining(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> int:
    return sum([max(0, end - await consumer.position(tp)) for tp, end in ends.items()])


async def _letters(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> Any:
    """Every record up to the end offsets taken at start, partition by partition in order."""
    pending = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
    while pending:
        batch = await consumer.getmany(*pending, timeout_ms=1000)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    yield tp, DeadLetter(record)
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)


@app.command("list")
def list_letters(
    service: ServiceArg,
    kafka: KafkaOpt = "localhost:9092",
    error_type: ErrorTypeOpt = None,
    reason_contains: ReasonOpt = None,
    since: SinceOpt = None,
) -> None:
    """Show the dead letters of a service (read without a consumer group: changes nothing)."""
    letters = make_filter(error_type, reason_contains, since)

    async def run() -> list[DeadLetter]:
        consumer, ends = await _open_consumer(kafka, dead_letter_topic(service), None)
        try:
            return [
                letter async for _, letter in _letters(consumer, ends) if letters.matches(letter)
            ]
        finally:
            await consumer.stop()

    found = _run(run(), kafka)
    table = Table(title=f"{dead_letter_topic(service)}: {len(found)} letter(s)")
    for column in ("partition:offset", "failed at", "error type", "from", "reason"):
        table.add_column(column)
    for letter in found:
        table.add_row(
            f"{letter.record.partition}:{letter.record.offset}",
            letter.headers.get(dead_letter.FAILED_AT, "?"),
            letter.error_type,
            letter.original_topic or "?",
            letter.reason,
        )
    Console().print(table)


@app.command("replay")
def replay(
    service: ServiceArg,
    kafka: KafkaOpt = "localhost:9092",
    error_type: ErrorTypeOpt = None,
    reason_contains: ReasonOpt = None,
    since: SinceOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be replayed; send nothing.")
    ] = False,
    group: Annotated[
        str | None, typer.Option("--group", help="Replay consumer group (default: see docs).")
    ] = None,
) -> None:
    """Re-publish dead letters to their original topics, once per replay group."""
    letters = make_filter(error_type, reason_contains, since)
    group_id = group or replay_group(service, letters)

    async def run() -> tuple[int, int]:
        consumer, ends = await _open_consumer(kafka, dead_letter_topic(service), group_id)
        producer = (
            None
            if dry_run
            else AIOKafkaProducer(bootstrap_servers=kafka, acks="all", **kafka_client_options())
        )
        replayed = passed = 0
        try:
            if producer is not None:
                await producer.start()
            with Progress(console=err, transient=False) as progress:
                task = progress.add_task(
                    "dry run" if dry_run else "replaying", total=await _remaining(consumer, ends)
                )
                async for tp, letter in _letters(consumer, ends):
                    if letters.matches(letter) and letter.original_topic is not None:
                        replayed += 1
                        if producer is None:
                            out.print(_describe(letter))
                        else:
                            await producer.send_and_wait(
                                letter.original_topic,
                                letter.record.value,
                                key=letter.record.key,
                                headers=letter.replay_headers(),
                            )
                    else:
                        passed += 1
                    if producer is not None:
                        offset = OffsetAndMetadata(letter.record.offset + 1, "")
                        await consumer.commit({tp: offset})
                    progress.advance(task)
        finally:
            if producer is not None:
                await producer.stop()
            await consumer.stop()
        return replayed, passed

    replayed, passed = _run(run(), kafka)
    verb = "would replay" if dry_run else "replayed"
    err.print(
        f"{verb} {replayed} letter(s) of {dead_letter_topic(service)}; {passed} passed over "
        f"(not matching, or without {dead_letter.ORIGINAL_TOPIC}); group {group_id}"
    )


def _describe(letter: DeadLetter) -> str:
    return (
        f"{letter.record.partition}:{letter.record.offset} → {letter.original_topic} "
        f"[{letter.error_type}] {letter.reason}"
    )


def _run(coroutine: Any, kafka: str) -> Any:
    try:
        return asyncio.run(coroutine)
    except KafkaError as error:
        err.print(f"[red]Kafka at {kafka}:[/red] {error!r}")
        raise typer.Exit(1) from None


def register(root: typer.Typer) -> None:
    root.add_typer(app)
