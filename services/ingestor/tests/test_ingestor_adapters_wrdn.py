"""ESS file-writer `wrdn` messages, encoded with ess-streaming-data-types, become file events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from streaming_data_types import serialise_answ, serialise_wrdn
from streaming_data_types.action_response_answ import ActionOutcome, ActionType

from scicat_ingestor.adapters import BrokenMessage, NotThisKind
from scicat_ingestor.adapters.wrdn import WriteFailed, from_wrdn

RECEIVED = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
FILE = "/ess/data/coda/2026/999999/raw/coda_00042.hdf"


def wrdn(**overrides) -> bytes:
    fields = {
        "service_id": "filewriter-1",
        "job_id": "4f1e0b1c-job",
        "error_encountered": False,
        "file_name": FILE,
        "metadata": json.dumps(
            {"proposal_id": "999999", "instrument_name": "CODA", "title": "Powder"}
        ),
    } | overrides
    return serialise_wrdn(**fields)


def test_finished_file_becomes_file_closed_and_the_end_of_its_job_run() -> None:
    event, stopped = from_wrdn(wrdn(), received_at=RECEIVED)

    assert (event.type, stopped.type) == ("file.closed", "run.stopped")
    assert (stopped.data.run_id, stopped.data.status) == ("4f1e0b1c-job", "success")
    data = event.data
    assert (data.run_id, data.beamtime_id, data.instrument) == ("4f1e0b1c-job", "999999", "CODA")
    assert (data.path, data.size, data.closed_at) == (FILE, 0, RECEIVED)
    assert data.metadata == {"title": "Powder"}
    assert event.source == "/ess/file-writer/filewriter-1"


def test_same_message_twice_has_the_same_event_id_and_another_file_another() -> None:
    [first, _] = from_wrdn(wrdn(), received_at=RECEIVED)
    [again, _] = from_wrdn(wrdn(), received_at=datetime(2026, 3, 2, tzinfo=UTC))
    [other, _] = from_wrdn(wrdn(file_name=FILE + ".2"), received_at=RECEIVED)

    assert (first.source, first.id) == (again.source, again.id)
    assert first.id != other.id


def test_error_encountered_is_recorded_as_a_failed_write_not_a_file() -> None:
    outcome = from_wrdn(wrdn(error_encountered=True, message="disk full"), received_at=RECEIVED)

    assert outcome == WriteFailed("filewriter-1", "4f1e0b1c-job", FILE, "disk full")


def test_other_flatbuffers_on_the_status_topic_are_not_this_kind() -> None:
    answ = serialise_answ(
        "filewriter-1", "job", "cmd", ActionType.StartJob, ActionOutcome.Success, "ok", 0, RECEIVED
    )

    with pytest.raises(NotThisKind, match="answ"):
        from_wrdn(answ, received_at=RECEIVED)
    with pytest.raises(NotThisKind):
        from_wrdn(b"\x00\x01", received_at=RECEIVED)


@pytest.mark.parametrize(
    ("metadata", "complaint"),
    [
        (None, "no metadata JSON"),
        ("{not json", "not JSON"),
        ("[1]", "not a JSON object"),
        (json.dumps({"instrument_name": "CODA"}), "names no proposal id"),
        (json.dumps({"proposal_id": "999999"}), "names no instrument"),
    ],
)
def test_wrdn_without_a_usable_proposal_is_broken_with_the_reason(metadata, complaint) -> None:
    with pytest.raises(BrokenMessage, match=complaint):
        from_wrdn(wrdn(metadata=metadata), received_at=RECEIVED)


def test_garbage_with_the_wrdn_identifier_is_broken() -> None:
    with pytest.raises(BrokenMessage, match="cannot be decoded"):
        from_wrdn(b"\xff\xff\xff\xffwrdn" + b"\xff" * 16, received_at=RECEIVED)
