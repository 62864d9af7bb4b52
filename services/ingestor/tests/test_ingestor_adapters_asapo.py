"""ASAP::O records: MessageMeta exactly as ASAP::O serialises it, with its source credentials.

No ASAP::O Python package is available, so `message_meta` builds the JSON `MessageMeta` writes
(`_id`, `size`, `name`, `timestamp` in ns, `source`, `buf_id`, `dataset_substream`, `meta`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from scicat_ingestor.adapters import BrokenMessage, NotThisKind
from scicat_ingestor.adapters.asapo import FINISH_STREAM, from_asapo

CORE = "/asap3/petra3/gpfs/p08/2026/data/11012345"


def message_meta(**overrides) -> dict:
    return {
        "_id": 1,
        "size": 1048576,
        "name": "raw/scan_001/img_00001.cbf",
        "timestamp": 1772359200123456789,
        "source": "10.0.0.1:20001",
        "buf_id": 0,
        "dataset_substream": 0,
        "meta": {"energy": {"value": 12.4, "unit": "keV"}},
    } | overrides


def record(message: dict | None = None, **overrides) -> bytes:
    fields = {
        "beamtime": "11012345",
        "beamline": "p08",
        "data_source": "detector",
        "stream": "scan_001",
        "core_path": CORE,
        "message": message or message_meta(),
    } | overrides
    return json.dumps(fields).encode()


def test_message_becomes_file_closed_in_the_stream_run() -> None:
    event = from_asapo(record())

    data = event.data
    assert event.type == "file.closed"
    assert (data.run_id, data.beamtime_id, data.instrument) == ("scan_001", "11012345", "p08")
    assert (data.path, data.size) == (f"{CORE}/raw/scan_001/img_00001.cbf", 1048576)
    assert data.closed_at == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert data.metadata == {"energy": {"value": 12.4, "unit": "keV"}}
    assert (event.source, event.id) == ("/asapo/p08/detector", "asapo:11012345/detector/scan_001/1")


def test_absolute_names_need_no_core_path() -> None:
    event = from_asapo(record(message_meta(name="/gpfs/x/img.cbf"), core_path=None))

    assert event.data.path == "/gpfs/x/img.cbf"


def test_stream_finished_flag_becomes_run_stopped() -> None:
    finish = message_meta(_id=11, name=FINISH_STREAM, size=0, meta={"next_stream": "scan_002"})

    event = from_asapo(record(finish))

    assert event.type == "run.stopped"
    assert (event.data.run_id, event.data.status) == ("scan_001", "success")


def test_same_message_id_in_another_stream_is_another_event() -> None:
    assert from_asapo(record()).id != from_asapo(record(stream="scan_002")).id


def test_relative_name_without_core_path_is_broken() -> None:
    with pytest.raises(BrokenMessage, match="core_path"):
        from_asapo(record(core_path=None))


@pytest.mark.parametrize(
    ("message", "field"),
    [(message_meta(timestamp=None), "timestamp"), (message_meta(_id=-1), "_id")],
)
def test_invalid_message_meta_is_broken_naming_the_field(message, field) -> None:
    with pytest.raises(BrokenMessage, match=field):
        from_asapo(record(message))


@pytest.mark.parametrize("value", [b"\x00\x01", b"[1, 2]", b'{"path": "/x"}', None])
def test_other_records_are_not_this_kind(value) -> None:
    with pytest.raises(NotThisKind):
        from_asapo(value)
