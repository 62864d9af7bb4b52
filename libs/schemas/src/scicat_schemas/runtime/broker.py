"""The Kafka broker every service builds the same way."""

from __future__ import annotations

from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from prometheus_client import CollectorRegistry

from scicat_schemas.runtime.kafka_security import broker_security
from scicat_schemas.runtime.settings import KafkaSettings
from scicat_schemas.runtime.tracing import tracer_provider


def create_broker(
    *, service: str, kafka: KafkaSettings, registry: CollectorRegistry
) -> KafkaBroker:
    """A FastStream Kafka broker with Prometheus metrics and structured logs.

    Producers wait for all in-sync replicas (`acks="all"`): a downstream event counts as published
    only when the cluster has it, which is what "ack after the effect is durable" needs. TLS and
    SASL come from `kafka.security`; traces, when tracing is on, from `runtime.tracing`.
    """
    middlewares: list[Any] = [KafkaPrometheusMiddleware(registry=registry, app_name=service)]
    provider = tracer_provider(service)
    if provider is not None:
        middlewares.insert(0, KafkaTelemetryMiddleware(tracer_provider=provider))
    return KafkaBroker(
        kafka.bootstrap_servers,
        client_id=service,
        acks="all",
        metadata_max_age_ms=kafka.metadata_max_age_ms,
        security=broker_security(kafka.security),
        middlewares=tuple(middlewares),
        logger=structlog.get_logger(f"scicat.{service}.broker"),
        graceful_timeout=15.0,
    )
