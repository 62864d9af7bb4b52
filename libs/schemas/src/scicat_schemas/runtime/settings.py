"""Setting models every service nests inside its one pydantic-settings class."""

from __future__ import annotations

from pydantic import BaseModel, Field


class KafkaSettings(BaseModel):
    bootstrap_servers: str = Field(default="localhost:9092", description="host:port[,host:port]")
    max_poll_interval_ms: int = Field(
        default=300_000, description="A handler (retries included) must finish within this."
    )
    session_timeout_ms: int = Field(
        default=10_000, description="Group membership timeout; the embedded broker uses 1000."
    )
    heartbeat_interval_ms: int = Field(default=3_000, description="Consumer heartbeat interval.")
    rebalance_timeout_ms: int | None = Field(
        default=None, description="How long a rebalance waits for members (None: poll interval)."
    )
    retry_initial_seconds: float = Field(
        default=0.2, description="First back-off after a transient failure (store down)."
    )
    retry_max_seconds: float = Field(default=30.0, description="Longest back-off between tries.")


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
