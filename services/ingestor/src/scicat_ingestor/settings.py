"""The ingestor's one settings class, read from `INGESTOR_*` environment variables.

Nested models use `__`: `INGESTOR_KAFKA__BOOTSTRAP_SERVERS`, `INGESTOR_MONGO__URI`,
`INGESTOR_HTTP__PORT`. Group templates are checked at start-up, so a typo in a placeholder stops
the service instead of dead-lettering every event.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scicat_ingestor.datablock_parts import DATABLOCK_MAX_FILES
from scicat_ingestor.ingest_policy import GROUP_TEMPLATE_FIELDS, IngestPolicy, UpdateStrategy
from scicat_ingestor.native import NativeTopics
from scicat_schemas.runtime.settings import HttpSettings, KafkaSettings, MongoSettings

DEFAULT_PORT = 8001
DEFAULT_MAPPINGS_DIR = Path(__file__).parent / "mappings"
_HTTP_DEFAULTS: dict[str, Any] = {
    "port": DEFAULT_PORT,
    "public_url": f"http://localhost:{DEFAULT_PORT}",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="INGESTOR_", env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    mongo: MongoSettings = Field(default_factory=MongoSettings)
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(**_HTTP_DEFAULTS))
    log_level: str = Field(default="INFO", description="Root log level.")
    pid_prefix: str = Field(
        default="local", description="First segment of every dataset pid (`<prefix>/...`)."
    )
    facility: str = Field(default="DESY", description="Facility in `creationLocation`.")
    source: str = Field(
        default="/scicat-pipeline/ingestor",
        description="CloudEvent `source` of the dataset events this service publishes.",
    )
    owner_group_template: str = Field(
        default="{beamtime_id}-dmgt", description="`ownerGroup` of a new dataset."
    )
    access_group_templates: list[str] = Field(
        default_factory=lambda: [
            "{beamtime_id}-dmgt",
            "{beamtime_id}-clbt",
            "{beamtime_id}-part",
            "{beamline}dmgt",
            "{beamline}staff",
        ],
        description="`accessGroups` of a new dataset; `{beamline}` is the instrument lower-cased.",
    )

    compute_checksums: bool = Field(
        default=True,
        description="Compute a blake2b checksum of a readable file whose producer sent none.",
    )
    metadata_mappings_dir: Path = Field(
        default=DEFAULT_MAPPINGS_DIR,
        description="Directory of NeXus/HDF5 metadata mappings (`*.yaml`); the default holds "
        "the P08 example shipped with the package.",
    )
    run_quiet_period_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="An open run with no event for this long is closed with status `timeout`.",
    )
    update_strategy: UpdateStrategy = Field(
        default="patch",
        description="A changed file or metadata after a run closed: `patch` the dataset, or "
        "create a new `version` with pid `<pid>/<n>` (DESY scingestor's `create`).",
    )
    measurement_key: str | None = Field(
        default=None,
        description="Group runs into measurement datasets: a `run.started` whose metadata has a "
        "string at this key (e.g. `measurement`) joins that measurement (DESY, SciCat #984).",
    )
    run_scan_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often open runs are checked for their quiet period."
    )
    batch_max_records: int = Field(
        default=2000,
        ge=1,
        description="Most `acquisition.events` records applied in one MongoDB transaction. "
        "A batch costs a fixed number of commands and writes each dataset it touches once, so "
        "under a backlog bigger batches cost less per event (2,000 against 500: ~25% more "
        "events/s end to end); a small load makes small batches anyway (`BATCH_TIMEOUT_MS`).",
    )
    deduplication: Literal["identity", "offsets"] = Field(
        default="offsets",
        description="How applied events are recorded so a repeated one changes nothing: "
        "`offsets` (Kafka offsets stored in each batch's transaction recognise redeliveries; "
        "the identities of the events whose copy could undo a newer change are kept in the "
        "documents they changed) or `identity` (a marker per dataset and transaction holding "
        "every event's CloudEvent source + id; about twice the store's work per event). Both "
        "recognise a redelivered and a re-produced event; see the ingestor README.",
    )
    batch_timeout_ms: int = Field(
        default=200,
        ge=0,
        description="How long the consumer waits to fill a batch before applying what it has.",
    )
    datablock_max_files: int = Field(
        default=DATABLOCK_MAX_FILES,
        ge=1,
        le=3000,
        description="Files per stored OrigDatablock: a longer file list is stored as several "
        "(a MongoDB document holds at most 16 MiB); changing it rewrites a dataset's datablocks "
        "at its next change.",
    )
    file_read_concurrency: int = Field(
        default=8,
        ge=1,
        description="Files of a batch read (checksum, NeXus metadata) at the same time.",
    )
    applied_event_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="How long the record of an applied event is kept (TTL index on "
        "`PipelineAppliedEvent.appliedAt`); must exceed how long a record can be delivered "
        "again (topic retention, dead letters one may replay). 0 keeps them for ever.",
    )

    native_topics: NativeTopics = Field(
        default_factory=NativeTopics,
        description="Producers' native topics read besides the CloudEvent topics; an empty "
        "value disables one (`INGESTOR_NATIVE_TOPICS__ASAPO=`).",
    )

    @field_validator("http", mode="before")
    @classmethod
    def _keep_our_port(cls, value: Any) -> Any:
        """`INGESTOR_HTTP__HOST` alone must not reset the port to the shared model's 8000."""
        if isinstance(value, dict):
            return {**_HTTP_DEFAULTS, **value}
        return value

    @field_validator("owner_group_template")
    @classmethod
    def _check_owner_template(cls, template: str) -> str:
        return _checked_template(template)

    @field_validator("access_group_templates")
    @classmethod
    def _check_access_templates(cls, templates: list[str]) -> list[str]:
        return [_checked_template(t) for t in templates]

    def marker_retention(self) -> timedelta:
        return timedelta(days=self.applied_event_retention_days)

    def fence_window(self) -> int | None:
        """How many offsets below a partition's fence keep their refusals (`delivery_fences`):
        a redelivery goes back at most one batch; `None` with identities."""
        return self.batch_max_records if self.deduplication == "offsets" else None

    def policy(self) -> IngestPolicy:
        """The part of the settings the domain needs."""
        return IngestPolicy(
            pid_prefix=self.pid_prefix,
            facility=self.facility,
            owner_group_template=self.owner_group_template,
            access_group_templates=tuple(self.access_group_templates),
            update_strategy=self.update_strategy,
            measurement_key=self.measurement_key,
        )


def _checked_template(template: str) -> str:
    try:
        template.format(**{name: "x" for name in GROUP_TEMPLATE_FIELDS})
    except (KeyError, IndexError, ValueError) as error:
        raise ValueError(
            f"group template {template!r} is not usable ({error!r}); "
            f"placeholders available: {', '.join(sorted(GROUP_TEMPLATE_FIELDS))}"
        ) from None
    return template
