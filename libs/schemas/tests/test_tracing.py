"""One trace across services: Kafka headers carry it, spans record it, log lines name it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import structlog
from aiokafka import AIOKafkaProducer, ConsumerRecord
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.consumer import ConsumerMetrics, ReliableConsumer
from scicat_schemas.runtime.http import create_service_app
from scicat_schemas.runtime.logging import configure_logging
from scicat_schemas.runtime.settings import KafkaSettings
from scicat_schemas.runtime.tracing import (
    OTLP_ENDPOINT_VARIABLES,
    disable_tracing,
    enable_tracing,
    tracer_provider,
)

SERVICE = "tracesvc"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    enable_tracing(SERVICE, exporter)
    try:
        yield exporter
    finally:
        disable_tracing(SERVICE)


def _traceparent(record: ConsumerRecord[Any, Any]) -> str:
    return dict(record.headers)["traceparent"].decode()


async def test_a_consumed_events_trace_continues_into_what_the_service_publishes(
    kafka: str, kafka_settings: KafkaSettings, spans: InMemorySpanExporter
) -> None:
    broker = create_broker(service=SERVICE, kafka=kafka_settings, registry=CollectorRegistry())
    consumer = ReliableConsumer(
        broker, SERVICE, kafka_settings, ConsumerMetrics(CollectorRegistry())
    )

    async def handler(record: ConsumerRecord[Any, Any]) -> None:
        await broker.publish(record.value, topic="catalogue.datasets", key=record.key)

    consumer.subscribe("acquisition.events", handler=handler)
    await broker.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        await producer.send_and_wait(
            "acquisition.events",
            b'{"hello": 1}',
            key=b"run-1",
            headers=[("traceparent", TRACEPARENT.encode())],
        )
        [published] = await read_topic(kafka, "catalogue.datasets", expected=1)
    finally:
        await producer.stop()
        await broker.stop()

    assert _traceparent(published).split("-")[1] == TRACE_ID
    ours = [s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == TRACE_ID]
    kinds = {s.kind for s in ours}
    assert {SpanKind.CONSUMER, SpanKind.PRODUCER} <= kinds
    assert all(s.resource.attributes["service.name"] == f"scicat-{SERVICE}" for s in ours)


async def test_http_requests_are_spans_and_probes_are_not(spans: InMemorySpanExporter) -> None:
    @asynccontextmanager
    async def nothing() -> AsyncIterator[None]:
        yield

    broker = create_broker(service=SERVICE, kafka=KafkaSettings(), registry=CollectorRegistry())
    app = create_service_app(
        name=SERVICE,
        version="0",
        broker=broker,
        registry=CollectorRegistry(),
        resources=nothing,
        checks={},
    )

    @app.get("/things")
    async def things() -> dict[str, int]:
        return {"things": 3}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as http:
        assert (await http.get("/things")).status_code == 200
        assert (await http.get("/healthz")).status_code == 200

    servers = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [s.attributes.get("http.route") for s in servers] == ["/things"]


def test_log_lines_inside_a_span_carry_its_trace(
    spans: InMemorySpanExporter, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(SERVICE)
    provider = tracer_provider(SERVICE)
    assert provider is not None
    with provider.get_tracer("test").start_as_current_span("work") as span:
        structlog.get_logger("scicat.test").info("inside")
    structlog.get_logger("scicat.test").info("outside")
    lines = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")
    ]
    inside = next(line for line in lines if line["event"] == "inside")
    outside = next(line for line in lines if line["event"] == "outside")
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "trace_id" not in outside


def test_tracing_is_off_without_an_otlp_endpoint_and_on_with_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in OTLP_ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tracer_provider("untraced") is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    try:
        provider = tracer_provider("traced")
        assert provider is not None
        assert provider.resource.attributes["service.namespace"] == "scicat-pipeline"
    finally:
        disable_tracing("traced")
