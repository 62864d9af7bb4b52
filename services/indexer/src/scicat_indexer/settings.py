"""The indexer's configuration: one settings class, read from `INDEXER_*` environment variables.

Nested values use `__`, e.g. `INDEXER_KAFKA__BOOTSTRAP_SERVERS`, `INDEXER_OPENSEARCH__URL`,
`INDEXER_HTTP__PORT`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scicat_schemas.runtime.settings import HttpSettings, KafkaSettings, MongoSettings

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
    ca_certs: Path | None = Field(
        default=None,
        description="CA bundle the cluster's certificate is checked against (a facility's "
        "internal CA); default: the system's CAs.",
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, description="Per-request timeout; a timeout is retried by the consumer."
    )


class OidcSettings(BaseModel):
    """Bearer-token checks of the search API (see `scicat_indexer.auth`).

    Without `issuer` every request is anonymous and sees only published datasets: the safe
    default, since a service that cannot check tokens must not show private data.
    """

    issuer: str | None = Field(
        default=None,
        description="Expected `iss`, e.g. `https://keycloak.example.org/realms/facility`; "
        "unset = access control off, anonymous view only.",
    )
    audience: str | None = Field(
        default=None, description="Expected `aud` (Keycloak client id); unset = not checked."
    )
    jwks_url: str | None = Field(
        default=None,
        description="The issuer's JWKS; default: `jwks_uri` of its "
        "`/.well-known/openid-configuration`.",
    )
    groups_claim: str = Field(
        default="groups",
        description="Claim listing the caller's groups (a dotted path such as "
        "`realm_access.roles` works too); a leading `/` (Keycloak full paths) is dropped.",
    )
    leeway_seconds: float = Field(default=30, ge=0, description="Clock skew allowed on exp/nbf.")
    jwks_cache_seconds: float = Field(
        default=300, gt=0, description="Keys are re-fetched after this long (revoked keys go)."
    )
    jwks_min_refresh_seconds: float = Field(
        default=10,
        ge=0,
        description="An unknown key id triggers a refresh at most this often.",
    )
    timeout_seconds: float = Field(default=5, gt=0, description="Discovery and JWKS requests.")


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
    mongo: MongoSettings = Field(
        default_factory=MongoSettings,
        description="The SciCat database, read for file lists, proposals and `reindex`.",
    )
    batch_max_records: int = Field(
        default=2000,
        ge=1,
        le=10_000,
        description="Events consumed per batch at most; offsets are committed per batch.",
    )
    bulk_max_records: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="Events per `_bulk` request at most. A batch's requests are pipelined: the "
        "next one is built while OpenSearch indexes the one before.",
    )
    oidc: OidcSettings = Field(default_factory=OidcSettings)

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
