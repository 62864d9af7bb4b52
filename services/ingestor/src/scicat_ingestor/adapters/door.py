"""DESY DOOR beamtime export (`beamtime-metadata-<id>.json`) → `beamtime.updated`.

The export's camelCase fields map onto the event (`beamtimeId`, `proposalId`, `title`,
`beamline`, `facility`, `pi`, `leader`, `eventStart`, `eventEnd`, `corePath`); every other
top-level field (`applicant`, `users`, `onlineAnalysis`, `beamlineSetup`, `unixId`...) and the
full `pi` / `leader` objects are kept verbatim in `metadata` (SciCat #1178), so nothing DOOR sends
is lost. DOOR writes times with an offset; one without an offset is read in `local_zone`
(Europe/Berlin for DESY).

The event id is the beamtime id plus a digest of the export's content: the same file emitted twice
is recognised as a duplicate, a changed export is a new event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from scicat_ingestor.adapters.common import BrokenMessage, event_id
from scicat_schemas.events import BeamtimeUpdated, BeamtimeUpdatedData, Person

SOURCE = "/desy/door/beamtime-metadata"
MAPPED = frozenset(
    {
        "beamtimeId",
        "proposalId",
        "title",
        "beamline",
        "facility",
        "eventStart",
        "eventEnd",
        "corePath",
    }
)
PERSON_FIELDS = ("email", "firstname", "lastname")


def from_beamtime_metadata(
    export: Mapping[str, Any], *, local_zone: str = "Europe/Berlin"
) -> BeamtimeUpdated:
    """The `beamtime.updated` event of one DOOR export; `BrokenMessage` says what is missing."""
    missing = [key for key in ("beamtimeId", "proposalId", "beamline") if not export.get(key)]
    if missing:
        raise BrokenMessage(
            f"beamtime metadata lacks {', '.join(missing)}; a DOOR export always has "
            "beamtimeId, proposalId and beamline"
        )
    zone = ZoneInfo(local_zone)
    digest = hashlib.sha256(json.dumps(export, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]
    beamtime_id = str(export["beamtimeId"])
    try:
        data = BeamtimeUpdatedData(
            beamtime_id=beamtime_id,
            proposal_id=str(export["proposalId"]),
            beamline=str(export["beamline"]),
            title=export.get("title") or None,
            facility=export.get("facility") or None,
            principal_investigator=_person(export.get("pi")),
            leader=_person(export.get("leader")),
            start=_time(export.get("eventStart"), zone),
            end=_time(export.get("eventEnd"), zone),
            core_path=export.get("corePath") or None,
            metadata={k: v for k, v in export.items() if k not in MAPPED},
        )
    except (ValidationError, ValueError) as error:
        raise BrokenMessage(f"beamtime metadata {beamtime_id!r} is not usable: {error}") from error
    return BeamtimeUpdated(id=event_id("door", beamtime_id, digest), source=SOURCE, data=data)


def _person(value: Any) -> Person | None:
    if not isinstance(value, Mapping):
        return None
    fields = {k: str(value[k]) for k in PERSON_FIELDS if value.get(k)}
    return Person(**fields) if fields else None


def _time(value: Any, zone: ZoneInfo) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)
