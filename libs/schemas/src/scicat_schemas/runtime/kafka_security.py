"""Kafka TLS and SASL from `KafkaSecurity`, for the FastStream broker and plain aiokafka clients.

One translation for every client (services, the typed producer, the CLI), so a cluster that
needs SCRAM over TLS is reached the same way by all of them. TLS always gets a context: aiokafka
refuses an SSL protocol without one, and the default context checks the brokers' certificates
against the system's CAs (or `ssl_cafile`) and their host names.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from scicat_schemas.runtime.settings import KafkaSecurity

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext | None:
    """The TLS context of `security`, or `None` for the plain-text protocols."""
    if not security.uses_tls:
        return None
    context: ssl.SSLContext = create_ssl_context(
        cafile=None if security.ssl_cafile is None else str(security.ssl_cafile),
        certfile=None if security.ssl_certfile is None else str(security.ssl_certfile),
        keyfile=None if security.ssl_keyfile is None else str(security.ssl_keyfile),
    )
    return context


def broker_security(security: KafkaSecurity) -> BaseSecurity | None:
    """What FastStream's `KafkaBroker(security=...)` takes; `None` for PLAINTEXT."""
    context = ssl_context(security)
    if not security.uses_sasl:
        return None if context is None else BaseSecurity(ssl_context=context, use_ssl=True)
    assert security.sasl_username is not None and security.sasl_password is not None
    return _SASL[security.sasl_mechanism](
        security.sasl_username,
        security.sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=context is not None,
    )


def client_options(security: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for `AIOKafkaProducer`, `AIOKafkaConsumer` and `AIOKafkaAdminClient`."""
    options: dict[str, Any] = {"security_protocol": security.protocol}
    context = ssl_context(security)
    if context is not None:
        options["ssl_context"] = context
    if security.uses_sasl:
        assert security.sasl_username is not None and security.sasl_password is not None
        options |= {
            "sasl_mechanism": security.sasl_mechanism,
            "sasl_plain_username": security.sasl_username,
            "sasl_plain_password": security.sasl_password.get_secret_value(),
        }
    return options
