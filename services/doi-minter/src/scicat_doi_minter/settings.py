"""Configuration of the doi-minter, from `DOI_MINTER_*` environment variables.

Nested values use `__`: `DOI_MINTER_DATACITE__PASSWORD`, `DOI_MINTER_KAFKA__BOOTSTRAP_SERVERS`.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scicat_schemas.datacite import ResourceTypeGeneral
from scicat_schemas.runtime.settings import HttpSettings, KafkaSettings, MongoSettings

SERVICE = "doi-minter"
DEFAULT_PORT = 8003


class DataCiteSettings(BaseModel):
    """The DataCite repository account and how patiently to call it."""

    url: str = Field(
        default="https://api.test.datacite.org",
        description="REST API base URL; production is https://api.datacite.org.",
    )
    username: str = Field(description="Repository account id, e.g. `DESY.SCICAT`.")
    password: SecretStr = Field(description="Repository password or API key; never logged.")
    prefix: str = Field(default="10.5072", description="DOI prefix owned by the account.")
    timeout_seconds: float = Field(default=10, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(default=5, ge=1, description="Tries per message on 429/5xx/timeouts.")
    backoff_initial_seconds: float = Field(default=0.5, ge=0, description="First back-off.")
    backoff_max_seconds: float = Field(default=8, ge=0, description="Longest back-off.")

    @field_validator("prefix")
    @classmethod
    def _is_doi_prefix(cls, value: str) -> str:
        if not re.fullmatch(r"10\.\d{4,5}", value):
            raise ValueError(f"not a DOI prefix: {value!r} (expected 10. and 4-5 digits)")
        return value

    @field_validator("url")
    @classmethod
    def _without_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def worst_case_seconds(self) -> float:
        """The longest one DataCite call can take: every attempt times out and every back-off is
        the cap (a 429's `Retry-After` may lift even the first one to the cap)."""
        backoffs = (self.max_attempts - 1) * self.backoff_max_seconds
        return self.max_attempts * self.timeout_seconds + backoffs


class DoiMinterHttpSettings(HttpSettings):
    """The shared HTTP settings with this service's port as default.

    A subclass rather than a default instance: pydantic-settings builds a nested model from the
    variables alone, so with a default instance setting only `DOI_MINTER_HTTP__HOST` would reset
    the port to the shared default.
    """

    port: int = DEFAULT_PORT
    public_url: str = f"http://localhost:{DEFAULT_PORT}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOI_MINTER_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    http: DoiMinterHttpSettings = Field(default_factory=lambda: DoiMinterHttpSettings())
    log_level: str = "INFO"
    public_url: str = Field(
        default=f"http://localhost:{DEFAULT_PORT}",
        description="Base URL of the landing pages; DOI d resolves to `{public_url}/doi/{d}`.",
    )
    publisher: str = Field(
        default="Deutsches Elektronen-Synchrotron DESY",
        description="DataCite publisher when a publication request names none.",
    )
    source: str = Field(
        default="/scicat-pipeline/doi-minter", description="CloudEvents `source` of our events."
    )
    proposal_resource_type_general: ResourceTypeGeneral = Field(
        default="Other",
        description="DataCite `resourceTypeGeneral` of a proposal DOI that names none (4.7 "
        "vocabulary, checked at start-up), e.g. `Other` or `Project`.",
    )
    proposal_resource_type: str = Field(
        default="Proposal", description="Free-text `resourceType` of such a proposal DOI."
    )
    datacite: DataCiteSettings

    @field_validator("public_url")
    @classmethod
    def _public_url_without_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _registration_fits_in_poll_interval(self) -> Settings:
        """A handler slower than `max.poll.interval.ms` is thrown out of its group and its message
        is processed again elsewhere, in a loop; refuse retry settings that allow that."""
        budget = self.kafka.max_poll_interval_ms / 1000 / 2
        if self.datacite.worst_case_seconds() > budget:
            raise ValueError(
                f"DataCite retries may take {self.datacite.worst_case_seconds():.0f} s, more than "
                f"half of kafka.max_poll_interval_ms ({budget:.0f} s); lower "
                "datacite.max_attempts, timeout_seconds or backoff_max_seconds, or raise the "
                "poll interval"
            )
        return self

    def landing_page(self, doi: str) -> str:
        return f"{self.public_url}/doi/{doi}"
