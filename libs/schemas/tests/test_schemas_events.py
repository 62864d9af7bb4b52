"""The event contract: what producers may send and what consumers can rely on."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from scicat_schemas import events


def _file_closed(**data: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "path": "/gpfs/current/raw/scan_001/img_0001.h5",
        "size": 1024,
        "closed_at": "2026-03-01T10:00:00Z",
        "instrument": "P08",
        "beamtime_id": "11012345",
        "run_id": "scan_001",
    }
    payload.update(data)
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/desy/p08/detector",
        "type": "file.closed",
        "time": "2026-03-01T10:00:00Z",
        "data": payload,
    }


def test_minimal_file_closed_parses_with_defaults() -> None:
    event = events.ACQUISITION_EVENT.validate_json(json.dumps(_file_closed()))
    assert isinstance(event, events.FileClosed)
    assert event.data.metadata == {}
    assert event.data.checksum is None
    assert event.identity == "/desy/p08/detector\x1fevt-1"


def test_type_selects_the_payload_model() -> None:
    raw = _file_closed()
    raw["type"] = "run.stopped"
    with pytest.raises(ValidationError) as error:
        events.ACQUISITION_EVENT.validate_json(json.dumps(raw))
    assert "stopped_at" in str(error.value)


def test_unknown_type_is_refused() -> None:
    raw = _file_closed()
    raw["type"] = "file.opened"
    with pytest.raises(ValidationError):
        events.ACQUISITION_EVENT.validate_json(json.dumps(raw))


@pytest.mark.parametrize(
    ("field", "value"),
    [("size", -1), ("closed_at", "2026-03-01T10:00:00"), ("path", ""), ("unexpected", 1)],
)
def test_bad_payloads_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as error:
        events.ACQUISITION_EVENT.validate_json(json.dumps(_file_closed(**{field: value})))
    assert field in str(error.value)


def test_a_path_is_at_most_path_max_bytes_and_a_digest_at_most_256_characters() -> None:
    """A stored file record stays small: the ingestor's datablocks rely on it."""
    longest = "/" + "é" * 2047 + "x"  # 4,096 bytes in UTF-8, 2,049 characters
    assert events.ACQUISITION_EVENT.validate_json(json.dumps(_file_closed(path=longest)))
    for too_long in ("/" + "é" * 2048, "/" + "d" * 4096):
        with pytest.raises(ValidationError, match="path"):
            events.ACQUISITION_EVENT.validate_json(json.dumps(_file_closed(path=too_long)))
    with pytest.raises(ValidationError, match=r"checksum\.value"):
        events.ACQUISITION_EVENT.validate_json(
            json.dumps(_file_closed(checksum={"algorithm": "sha256", "value": "0" * 257}))
        )


def test_naive_event_time_is_refused() -> None:
    raw = _file_closed()
    raw["time"] = "2026-03-01T10:00:00"
    with pytest.raises(ValidationError):
        events.ACQUISITION_EVENT.validate_json(json.dumps(raw))


def test_cloudevent_extension_attributes_are_kept() -> None:
    raw = _file_closed()
    raw["traceparent"] = "00-abc-def-01"
    event = events.ACQUISITION_EVENT.validate_json(json.dumps(raw))
    assert json.loads(events.encode(event))["traceparent"] == "00-abc-def-01"


def test_encode_round_trips() -> None:
    event = events.ACQUISITION_EVENT.validate_json(
        json.dumps(_file_closed(metadata={"energy": {"value": 12.4, "unit": "keV"}}))
    )
    again = events.ACQUISITION_EVENT.validate_json(events.encode(event))
    assert again == event


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("0000-0002-1825-0097", "0000-0002-1825-0097"),
        ("https://orcid.org/0000-0002-1825-009X", "0000-0002-1825-009X"),
    ],
)
def test_orcid_is_normalised(given: str, stored: str) -> None:
    assert events.Creator(name="Doe, Jane", orcid=given).orcid == stored


def test_malformed_orcid_is_refused_with_the_value() -> None:
    with pytest.raises(ValidationError) as error:
        events.Creator(name="Doe, Jane", orcid="1234")
    assert "1234" in str(error.value)


def test_publication_needs_datasets_and_creators() -> None:
    with pytest.raises(ValidationError) as error:
        events.PublicationRequestedData(
            publication_id="pub-1",
            dataset_pids=[],
            title="t",
            abstract="a",
            creators=[],
            publication_year=2026,
        )
    assert "creators" in str(error.value)
    with pytest.raises(ValidationError) as error:
        events.PublicationRequestedData(
            publication_id="pub-1",
            dataset_pids=[],
            title="t",
            abstract="a",
            creators=[events.Creator(name="Doe, Jane")],
            publication_year=2026,
        )
    assert "dataset_pids" in str(error.value)
    assert "proposal_id" in str(error.value)


def test_every_event_type_is_registered_once() -> None:
    assert sorted(events.EVENT_TYPES) == sorted(
        [
            "run.started",
            "file.closed",
            "run.stopped",
            "beamtime.updated",
            "dataset.stored",
            "dataset.deleted",
            "publication.requested",
            "publication.amendment-requested",
            "publication.withdrawal-requested",
            "publication.registered",
            "publication.withdrawn",
        ]
    )


def test_validation_errors_become_dead_letter_kinds() -> None:
    from scicat_schemas.runtime.consumer import rejected_from_validation

    def kind(raw: bytes) -> str:
        with pytest.raises(ValidationError) as error:
            events.ACQUISITION_EVENT.validate_json(raw)
        return rejected_from_validation(error.value, what="event").error_type

    unknown = _file_closed()
    unknown["type"] = "file.opened"
    assert kind(b"{not json") == "invalid-json"
    assert kind(json.dumps(unknown).encode()) == "unknown-type"
    assert kind(json.dumps(_file_closed(size=-1)).encode()) == "invalid-event"
