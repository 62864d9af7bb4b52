"""Payloads of `acquisition.events` and `proposals.events`: what beamlines and DOOR send.

Outside producers rely on these shapes, so they change only by adding optional fields. Sizes are
bounded where no real value comes near the bound (a path by `PATH_MAX`, a digest by 256 hex
digits), so that a stored file record stays small: the ingestor's datablocks rely on it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field

from scicat_schemas.payload_base import Payload

# --- acquisition.events -------------------------------------------------------------------------


PATH_MAX = 4096
"""Linux's limit on a path, in bytes: no longer path names a file."""


def _within_path_max(path: str) -> str:
    length = len(path.encode())
    if length > PATH_MAX:
        raise ValueError(f"a path is at most {PATH_MAX} bytes (PATH_MAX); this one has {length}")
    return path


FilePath = Annotated[str, AfterValidator(_within_path_max)]


class Checksum(Payload):
    algorithm: str = Field(
        min_length=1, max_length=32, description="Checksum algorithm, e.g. `blake2b`, `sha256`."
    )
    value: str = Field(min_length=1, max_length=256, description="Hex digest.")


ScientificMetadata = dict[str, Any]
"""Any JSON object; a leaf is either a plain value or `{"value": ..., "unit": ...}`."""


class AcquisitionRef(Payload):
    """What every acquisition event names: the run, the beamtime it belongs to, the instrument."""

    run_id: str = Field(min_length=1, description="Run (scan) identifier, unique in its beamtime.")
    beamtime_id: str = Field(min_length=1, description="Beamtime (DESY) or proposal/visit id.")
    instrument: str = Field(min_length=1, description="Instrument or beamline, e.g. `P08`.")


class RunStartedData(AcquisitionRef):
    started_at: AwareDatetime = Field(description="When the run started (timezone-aware).")
    dataset_name: str | None = Field(
        default=None, description="Human-readable dataset name; defaults to the run id."
    )
    source_folder: str | None = Field(
        default=None,
        description="Folder holding the run's files; defaults to the common folder of its files.",
    )
    description: str | None = Field(default=None, description="Free-text description of the run.")
    metadata: ScientificMetadata = Field(
        default_factory=dict, description="Scientific metadata known at run start."
    )


class FileClosedData(AcquisitionRef):
    path: FilePath = Field(
        min_length=1,
        max_length=PATH_MAX,
        description="Absolute path of the file that was closed (at most 4,096 bytes).",
    )
    size: int = Field(ge=0, description="File size in bytes.")
    closed_at: AwareDatetime = Field(description="When the writer closed the file.")
    checksum: Checksum | None = Field(
        default=None, description="Checksum, when the writer knows it."
    )
    metadata: ScientificMetadata = Field(
        default_factory=dict,
        description='Scientific metadata: any JSON object; a value is plain or {"value", "unit"}.',
    )


class RunStoppedData(AcquisitionRef):
    stopped_at: AwareDatetime = Field(description="When the run stopped.")
    status: Literal["success", "abort", "fail"] = Field(
        default="success", description="How the run ended (bluesky `exit_status` vocabulary)."
    )
    reason: str | None = Field(default=None, description="Why it ended that way, if not success.")
    metadata: ScientificMetadata = Field(
        default_factory=dict, description="Scientific metadata known at run end."
    )


# --- proposals.events ---------------------------------------------------------------------------


class Person(Payload):
    email: str | None = Field(default=None, description="E-mail address.")
    firstname: str | None = Field(default=None, description="Given name.")
    lastname: str | None = Field(default=None, description="Family name.")


class BeamtimeUpdatedData(Payload):
    beamtime_id: str = Field(min_length=1, description="Beamtime id (DOOR `beamtimeId`).")
    proposal_id: str = Field(min_length=1, description="Parent proposal id (DOOR `proposalId`).")
    title: str | None = Field(default=None, description="Beamtime / proposal title.")
    beamline: str = Field(min_length=1, description="Beamline, e.g. `p08`.")
    facility: str | None = Field(default=None, description="Facility, e.g. `PETRA III`.")
    principal_investigator: Person | None = Field(default=None, description="The PI.")
    leader: Person | None = Field(default=None, description="Beamtime leader.")
    start: AwareDatetime | None = Field(default=None, description="Beamtime start.")
    end: AwareDatetime | None = Field(default=None, description="Beamtime end.")
    core_path: str | None = Field(default=None, description="Data folder of the beamtime.")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Everything else the proposal system sent, kept verbatim (SciCat #1178).",
    )
