"""How the command-line tools reach a Kafka cluster that wants TLS or SASL.

The services read `<SERVICE>_KAFKA__SECURITY__*`; the CLI (`emit`, `dlq`, `ingest --kafka`) reads
the same fields as `SCICAT_KAFKA_SECURITY__*` (`SCICAT_KAFKA_SECURITY__PROTOCOL=SASL_SSL`,
`__SASL_USERNAME`, `__SASL_PASSWORD`, `__SASL_MECHANISM`, `__SSL_CAFILE`, ...), beside the
bootstrap servers in `--kafka` / `SCICAT_KAFKA`.
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from scicat_schemas.runtime.kafka_security import client_options
from scicat_schemas.runtime.settings import KafkaSecurity

ENV_PREFIX = "SCICAT_KAFKA_"


class _CliKafka(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__")

    security: KafkaSecurity = Field(default_factory=KafkaSecurity)


def kafka_security() -> KafkaSecurity:
    """The CLI's Kafka security from the environment; a bad setting exits 2 with its name."""
    try:
        return _CliKafka().security
    except ValidationError as error:
        problems = "; ".join(
            f"{ENV_PREFIX}{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in error.errors()
        )
        Console(stderr=True, soft_wrap=True).print(f"[red]Kafka settings:[/red] {problems}")
        raise typer.Exit(2) from None


def kafka_client_options() -> dict[str, Any]:
    """Keyword arguments for a plain aiokafka client of the CLI."""
    return client_options(kafka_security())
