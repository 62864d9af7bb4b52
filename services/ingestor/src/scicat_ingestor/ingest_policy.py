"""Facility conventions: how the domain names datasets and whom it gives them to.

Made from the settings (`Settings.policy`); the domain applies it. DESY's defaults are
`{beamtime_id}-dmgt` as owner and the beamtime's and beamline's groups as readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scicat_schemas.events import AcquisitionRef

UpdateStrategy = Literal["patch", "version"]

GROUP_TEMPLATE_FIELDS = frozenset({"beamtime_id", "beamline", "instrument", "facility"})
"""Placeholders a group template may use; `beamline` is the instrument lower-cased."""


@dataclass(frozen=True)
class IngestPolicy:
    """Facility conventions: how pids, locations and access groups are made."""

    pid_prefix: str
    facility: str
    owner_group_template: str
    access_group_templates: tuple[str, ...]
    update_strategy: UpdateStrategy = "patch"
    measurement_key: str | None = None

    def dataset_pid(self, ref: AcquisitionRef, measurement: str | None = None) -> str:
        """`<prefix>/<beamtime>/<run>`, or `<prefix>/<beamtime>/<measurement>` for a grouped run."""
        return f"{self.pid_prefix}/{ref.beamtime_id}/{measurement or ref.run_id}"

    def creation_location(self, ref: AcquisitionRef) -> str:
        return f"/{self.facility}/{ref.instrument}"

    def owner_group(self, ref: AcquisitionRef, beamline: str | None = None) -> str:
        return self.owner_group_template.format(**self._group_fields(ref, beamline))

    def access_groups(self, ref: AcquisitionRef, beamline: str | None = None) -> list[str]:
        fields = self._group_fields(ref, beamline)
        groups = (template.format(**fields) for template in self.access_group_templates)
        return list(dict.fromkeys(groups))

    def _group_fields(self, ref: AcquisitionRef, beamline: str | None) -> dict[str, str]:
        """`beamline` is the beamtime's when known, else the instrument's, lower-cased."""
        return {
            "beamtime_id": ref.beamtime_id,
            "beamline": (beamline or ref.instrument).lower(),
            "instrument": ref.instrument,
            "facility": self.facility,
        }
