"""Kafka TLS and SASL settings: validated up front, and TLS proven on the wire.

tansu (the embedded broker) cannot serve TLS itself here, so the wire test puts a TLS-terminating
proxy in front of it and has the broker advertise the proxy: every connection the clients make,
bootstrap and after, is TLS checked against our CA.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from scicat_pipeline.embedded import EmbeddedKafka, free_port
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.tls import self_signed_certificate, tls_proxy
from scicat_schemas.producer import EventProducer
from scicat_schemas.runtime.broker import create_broker
from scicat_schemas.runtime.kafka_security import client_options
from scicat_schemas.runtime.settings import KafkaSecurity, KafkaSettings
from scicat_schemas.topics import ACQUISITION_EVENTS


@pytest.fixture
def tls_port() -> int:
    return free_port()


@pytest.fixture
def broker_behind_proxy(tls_port: int) -> Iterator[EmbeddedKafka]:
    """tansu on a plain port, telling clients to connect to the TLS proxy's port."""
    broker = EmbeddedKafka(advertised_port=tls_port).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
async def tls_kafka(
    tmp_path: Path, tls_port: int, broker_behind_proxy: EmbeddedKafka
) -> AsyncIterator[tuple[str, Path]]:
    """The broker behind a TLS proxy; yields the proxy's address and the CA file."""
    cert_file, key_file = self_signed_certificate(tmp_path, "kafka.test")
    async with tls_proxy(broker_behind_proxy.port, cert_file, key_file, port=tls_port) as port:
        yield f"127.0.0.1:{port}", cert_file


async def _create_topic(bootstrap: str, security: KafkaSecurity) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(security))

    async def started() -> bool:
        try:
            await admin.start()
        except KafkaConnectionError:
            return False
        return True

    await wait_for(started, what="the broker behind the TLS proxy")
    try:
        await admin.create_topics([NewTopic(ACQUISITION_EVENTS, 1, 1)])
    finally:
        await admin.close()


async def test_events_travel_over_tls_checked_against_the_configured_ca(
    tls_kafka: tuple[str, Path],
) -> None:
    bootstrap, ca_file = tls_kafka
    security = KafkaSecurity(protocol="SSL", ssl_cafile=ca_file)
    await _create_topic(bootstrap, security)
    async with EventProducer(bootstrap, source="/test/tls", security=security) as producer:
        sent = await producer.run_started(run_id="scan_1", beamtime_id="11012345", instrument="P08")
    consumer = AIOKafkaConsumer(
        ACQUISITION_EVENTS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        **client_options(security),
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=20)
    finally:
        await consumer.stop()
    assert sent.id.encode() in record.value


async def test_a_broker_certificate_from_an_unknown_ca_is_refused(
    tls_kafka: tuple[str, Path],
) -> None:
    bootstrap, _ = tls_kafka
    producer = EventProducer(bootstrap, source="/test/tls", security=KafkaSecurity(protocol="SSL"))
    with pytest.raises(KafkaConnectionError):
        async with producer:
            pass


def test_sasl_over_tls_gives_every_client_the_mechanism_credentials_and_a_verifying_context(
    tmp_path: Path,
) -> None:
    ca_file, _ = self_signed_certificate(tmp_path, "kafka.test")
    security = KafkaSecurity(
        protocol="SASL_SSL", sasl_username="ingestor", sasl_password="pw", ssl_cafile=ca_file
    )
    options = client_options(security)
    assert {k: v for k, v in options.items() if k != "ssl_context"} == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ingestor",
        "sasl_plain_password": "pw",
    }
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "kafka.test"),),)]
    broker = create_broker(
        service="ingestor",
        kafka=KafkaSettings(bootstrap_servers="kafka:9093", security=security),
        registry=CollectorRegistry(),
    )
    connection = broker._connection_kwargs
    assert connection["security_protocol"] == "SASL_SSL"
    assert connection["sasl_mechanism"] == "SCRAM-SHA-512"
    assert connection["sasl_plain_username"] == "ingestor"
    assert connection["ssl_context"] is not None


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"protocol": "SASL_SSL", "sasl_username": "u"}, "needs sasl_username and sasl_password"),
        ({"protocol": "PLAINTEXT", "ssl_cafile": "ca.pem"}, "does not use TLS"),
        ({"protocol": "SSL", "ssl_certfile": "client.pem"}, "both ssl_certfile and ssl_keyfile"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ],
)
def test_half_a_security_configuration_is_refused_at_start_up(
    fields: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        KafkaSecurity.model_validate(fields)


class _ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SVC_", env_nested_delimiter="__")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)


def test_services_read_security_from_nested_environment_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SVC_KAFKA__BOOTSTRAP_SERVERS", "kafka:9093")
    monkeypatch.setenv("SVC_KAFKA__SECURITY__PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("SVC_KAFKA__SECURITY__SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("SVC_KAFKA__SECURITY__SASL_USERNAME", "svc")
    monkeypatch.setenv("SVC_KAFKA__SECURITY__SASL_PASSWORD", "secret")
    security = _ServiceSettings().kafka.security
    assert client_options(security) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "secret",
    }
    assert "secret" not in repr(security)
