"""Configuration of the OAI-PMH provider, read once from `OAI_PROVIDER_*` environment variables.

Nested models use `__`: `OAI_PROVIDER_KAFKA__BOOTSTRAP_SERVERS`, `OAI_PROVIDER_MONGO__URI`,
`OAI_PROVIDER_HTTP__PORT`. Values that end up in XML (`repository_identifier`, `admin_email`) are
checked here against the patterns of the OAI-PMH schemas, so a typo stops the service at start-up
instead of producing invalid Identify responses for every harvester.
"""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scicat_schemas.runtime.settings import HttpSettings, KafkaSettings, MongoSettings

DEV_TOKEN_SECRET = "dev-only-oai-resumption-token-secret"
"""Signs resumption tokens when nothing else is configured; the service warns when it is used."""

_REPOSITORY_IDENTIFIER = re.compile(r"[a-zA-Z][a-zA-Z0-9\-]*(\.[a-zA-Z][a-zA-Z0-9\-]*)+")
_EMAIL = re.compile(r"\S+@(\S+\.)+\S+")


class OaiHttpSettings(HttpSettings):
    """The shared HTTP settings with this service's port as default.

    A subclass rather than a default instance, so that setting only `OAI_PROVIDER_HTTP__HOST`
    keeps port 8004 instead of falling back to the shared default.
    """

    port: int = 8004
    public_url: str = "http://localhost:8004"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OAI_PROVIDER_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(
        default_factory=MongoSettings,
        description="The read model lives in collection `OaiRecord` of `mongo.database`.",
    )
    http: OaiHttpSettings = Field(default_factory=OaiHttpSettings)
    log_level: str = "INFO"
    public_url: str = Field(
        default="http://localhost:8004",
        description="Public root of this service; the OAI-PMH base URL is `{public_url}/oai`.",
    )
    repository_name: str = Field(default="SciCat pipeline", min_length=1)
    repository_identifier: str = Field(
        default="scicat.example.org",
        description="Namespace of `oai:<repository_identifier>:<doi>`: a domain you control.",
    )
    admin_email: str = "admin@example.org"
    datacentre_symbol: str = Field(
        default="DESY.SCICAT", min_length=1, description="DataCite repository id in oai_datacite."
    )
    token_secret: SecretStr = Field(
        default=SecretStr(DEV_TOKEN_SECRET),
        description="Signs resumption tokens; every replica must share it.",
    )
    page_size: int = Field(default=100, ge=1, le=10_000, description="Records per list response.")
    token_ttl_seconds: int = Field(
        default=86_400, ge=60, description="Lifetime of a resumption token (BASE asks ≥ 23 h)."
    )
    facility: str = Field(
        default="DESY", min_length=1, description="Becomes set `facility:<slug>`."
    )

    @field_validator("repository_identifier")
    @classmethod
    def _repository_identifier_is_a_domain(cls, value: str) -> str:
        if not _REPOSITORY_IDENTIFIER.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid oai-identifier namespace; use a domain name such as "
                "'scicat.example.org'"
            )
        return value

    @field_validator("admin_email")
    @classmethod
    def _admin_email_is_an_address(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_without_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def base_url(self) -> str:
        """The OAI-PMH base URL harvesters are given (and see in every `request` element)."""
        return f"{self.public_url}/oai"

    @property
    def uses_dev_token_secret(self) -> bool:
        return self.token_secret.get_secret_value() == DEV_TOKEN_SECRET
