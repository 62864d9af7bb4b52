"""The indexer's configuration: one settings class, read from `INDEXER_*` environment variables.

Nested values use `__`, e.g. `INDEXER_KAFKA__BOOTSTRAP_SERVERS`, `INDEXER_OPENSEARCH__URL`,
`INDEXER_HTTP__PORT`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scicat_schemas.runtime.settings import HttpSettings, KafkaSettings

SERVICE = "indexer"
DEFAULT_PORT = 8002


class OpenSearchSettings(BaseModel):
    url: str = Field(default="http://localhost:9200", description="OpenSearch base URL.")
    alias: str = Field(
        default="datasets",
        description="Alias searches and writes go through; the concrete index is `<alias>-v1`.",
    )
    username: str | None = Field(default=None, description="HTTP basic-auth user, if any.")
    password: SecretStr | None = Field(default=None, description="HTTP basic-auth password.")
    verify_certs: bool = Field(default=True, description="Verify the TLS certificate (https).")
    timeout_seconds: float = Field(
        default=10.0, gt=0, description="Per-request timeout; a timeout is retried by the consumer."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INDEXER_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    http: HttpSettings = Field(
        default_factory=lambda: HttpSettings(
            port=DEFAULT_PORT, public_url=f"http://localhost:{DEFAULT_PORT}"
        )
    )
    log_level: str = Field(default="INFO", description="Root log level.")
    opensearch: OpenSearchSettings = Field(default_factory=OpenSearchSettings)

    @field_validator("http", mode="before")
    @classmethod
    def _indexer_port_by_default(cls, value: Any) -> Any:
        """Keep port 8002 when only some `INDEXER_HTTP__*` variables are set.

        pydantic-settings builds a nested model from the variables alone, so without this the
        port would fall back to the shared `HttpSettings` default as soon as, say, the host is set.
        """
        if isinstance(value, dict):
            port = value.get("port", DEFAULT_PORT)
            return {"port": port, "public_url": f"http://localhost:{port}", **value}
        return value
