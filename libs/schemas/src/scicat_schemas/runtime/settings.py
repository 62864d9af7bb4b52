"""Setting models every service nests inside its one pydantic-settings class."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator

KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurity(BaseModel):
    """How clients prove who they are to a production cluster (ESS, for one, runs SASL_SSL with
    SCRAM-SHA-512); `scicat_schemas.runtime.kafka_security` turns it into client options."""

    protocol: KafkaProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_*)."
    )
    sasl_username: str | None = Field(default=None, description="SASL user (SASL_*).")
    sasl_password: SecretStr | None = Field(
        default=None, description="SASL password (SASL_*); never logged."
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="CA bundle the brokers' certificates are checked against (SSL, SASL_SSL); "
        "default: the system's CAs.",
    )
    ssl_certfile: Path | None = Field(
        default=None, description="Client certificate for mutual TLS (with `ssl_keyfile`)."
    )
    ssl_keyfile: Path | None = Field(default=None, description="Client certificate's key.")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        """Refuse half a configuration at start-up, not at the first connection attempt."""
        if self.uses_sasl and (self.sasl_username is None or self.sasl_password is None):
            raise ValueError(f"protocol {self.protocol} needs sasl_username and sasl_password")
        tls_files = [self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile]
        if not self.uses_tls and any(f is not None for f in tls_files):
            raise ValueError(f"ssl_* files are set but protocol {self.protocol} does not use TLS")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("a client certificate needs both ssl_certfile and ssl_keyfile")
        return self


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field(default="localhost:9092", description="host:port[,host:port]")
    security: KafkaSecurity = Field(
        default_factory=KafkaSecurity, description="TLS and SASL towards the cluster."
    )
    max_poll_interval_ms: int = Field(
        default=300_000, description="A handler (retries included) must finish within this."
    )
    session_timeout_ms: int = Field(
        default=10_000, description="Group membership timeout; the embedded broker uses 1000."
    )
    heartbeat_interval_ms: int = Field(default=3_000, description="Consumer heartbeat interval.")
    metadata_max_age_ms: int = Field(
        default=30_000,
        gt=0,
        description="How often the cluster's topics are looked up again: a topic matching a "
        "pattern subscription (a new beamline's bluesky topic) is read within this time of its "
        "creation (aiokafka's default is 5 minutes).",
    )
    rebalance_timeout_ms: int | None = Field(
        default=None, description="How long a rebalance waits for members (None: poll interval)."
    )
    max_partition_fetch_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Most bytes one fetch takes from one partition (aiokafka's default is 1 MiB). "
        "With few busy partitions (a long run's events share its key) a batch waited for the "
        "next fetch every ~1,700 events; 4 MiB ingested such a backlog 30-50% faster. Up to "
        "this much per assigned partition may be held in memory.",
    )
    retry_initial_seconds: float = Field(
        default=0.2, description="First back-off after a transient failure (store down)."
    )
    retry_max_seconds: float = Field(default=30.0, description="Longest back-off between tries.")
    batch_time_budget_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How long a batch handler may work before it hands the rest of its batch "
        "back (`DEFERRED`); default half of `max_poll_interval_ms`, leaving time to finish "
        "what is under way (a consumer that does not poll within that interval leaves its group).",
    )

    @model_validator(mode="after")
    def _budget_within_poll_interval(self) -> Self:
        poll_interval = self.max_poll_interval_ms / 1000
        budget = self.batch_time_budget_seconds
        if budget is not None and budget >= poll_interval:
            raise ValueError(
                f"batch_time_budget_seconds ({budget:g}) must be less than max_poll_interval_ms "
                f"({poll_interval:g} s), leaving time to finish what is under way"
            )
        return self

    def batch_time_budget(self) -> float:
        """Seconds a batch handler may work before deferring the rest of its batch."""
        return self.batch_time_budget_seconds or self.max_poll_interval_ms / 2000


class MongoSettings(BaseModel):
    uri: str = Field(default="mongodb://localhost:27017", description="MongoDB connection URI.")
    database: str = Field(default="scicat", description="The SciCat database.")
    timeout_ms: int = Field(default=5000, description="Server selection timeout.")


class HttpSettings(BaseModel):
    host: str = "0.0.0.0"
    port: int = 8000
    public_url: str = Field(
        default="http://localhost:8000", description="Base URL people and harvesters use."
    )
