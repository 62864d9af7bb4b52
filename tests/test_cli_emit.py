"""`scicat-pipeline emit`: valid events for beamline scripts, clear refusals for bad input."""

from __future__ import annotations

import asyncio
import json
import os

from typer.testing import CliRunner

from scicat_pipeline.cli import app
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.events import ACQUISITION_EVENT, BeamtimeUpdated
from scicat_schemas.topics import ACQUISITION_EVENTS, PROPOSALS_EVENTS

RUN = ["--run-id", "scan_001", "--beamtime-id", "11012345", "--instrument", "P08"]


async def emit(*args: str):
    """The CLI in a worker thread: it runs its own event loop, as it does from a shell."""
    return await asyncio.to_thread(CliRunner().invoke, app, ["emit", *args])


async def test_a_run_from_a_shell_script_arrives_as_three_valid_events(kafka, tmp_path) -> None:
    image = tmp_path / "img_00001.cbf"
    image.write_bytes(b"\0" * 512)
    os.utime(image, (1772359200, 1772359200))
    common = [*RUN, "--kafka", kafka, "--source", "/desy/p08/sardana"]

    started = await emit("run-started", *common, "--time", "1772359100", "--metadata", '{"a": 1}')
    closed = await emit("file-closed", str(image), *common, "--checksum", "sha256:ab12")
    stopped = await emit("run-stopped", *common, "--status", "abort", "--reason", "beam lost")

    assert [r.exit_code for r in (started, closed, stopped)] == [0, 0, 0], closed.output
    records = await read_topic(kafka, ACQUISITION_EVENTS, expected=3)
    events = [ACQUISITION_EVENT.validate_json(r.value) for r in records]
    assert [e.id for e in events] == [r.output.strip() for r in (started, closed, stopped)]
    assert events[0].data.metadata == {"a": 1}
    assert events[0].data.started_at.timestamp() == 1772359100
    assert (events[1].data.path, events[1].data.size) == (str(image), 512)
    assert events[1].data.closed_at.timestamp() == 1772359200
    assert events[1].data.checksum.algorithm == "sha256"
    assert (events[2].data.status, events[2].data.reason) == ("abort", "beam lost")


async def test_the_same_command_twice_sends_the_same_event_id(kafka, tmp_path) -> None:
    image = tmp_path / "a.cbf"
    image.write_bytes(b"x")

    first = await emit("file-closed", str(image), *RUN, "--kafka", kafka)
    again = await emit("file-closed", str(image), *RUN, "--kafka", kafka)

    assert first.exit_code == again.exit_code == 0
    assert first.output == again.output


async def test_door_export_is_sent_to_proposals_events(kafka, tmp_path) -> None:
    export = tmp_path / "beamtime-metadata-11012345.json"
    export.write_text(
        json.dumps(
            {"beamtimeId": "11012345", "proposalId": "2025", "beamline": "p08", "title": "T"}
        )
    )

    result = await emit("beamtime", str(export), "--kafka", kafka)

    assert result.exit_code == 0, result.output
    [record] = await read_topic(kafka, PROPOSALS_EVENTS)
    event = BeamtimeUpdated.model_validate_json(record.value)
    assert (record.key, event.id) == (b"11012345", result.output.strip())
    assert event.data.proposal_id == "2025"


async def test_bad_input_exits_2_naming_the_problem_without_contacting_kafka(tmp_path) -> None:
    unreachable = ["--kafka", "127.0.0.1:1"]
    broken = tmp_path / "beamtime-metadata-1.json"
    broken.write_text('{"beamtimeId": "1"}')

    cases = {
        "no offset": await emit("run-started", *RUN, *unreachable, "--time", "2026-03-01T10:00"),
        "missing file": await emit("file-closed", "/no/such/file", *RUN, *unreachable),
        "bad metadata": await emit("run-started", *RUN, *unreachable, "--metadata", "[1]"),
        "bad checksum": await emit(
            "file-closed",
            "/x",
            *RUN,
            *unreachable,
            "--size",
            "1",
            "--time",
            "0",
            "--checksum",
            "nocolon",
        ),
        "bad status": await emit("run-stopped", *RUN, *unreachable, "--status", "maybe"),
        "incomplete export": await emit("beamtime", str(broken), *unreachable),
    }

    assert {name: r.exit_code for name, r in cases.items()} == dict.fromkeys(cases, 2)
    assert "no UTC offset" in cases["no offset"].output
    assert "give --size and --time" in cases["missing file"].output
    assert "must be a JSON object" in cases["bad metadata"].output
    assert "ALGORITHM:HEX" in cases["bad checksum"].output
    assert "proposalId" in cases["incomplete export"].output


async def test_invalid_event_field_is_named_and_unreachable_kafka_exits_1(kafka) -> None:
    negative = await emit(
        "file-closed", "/x", *RUN, "--kafka", kafka, "--size", "-5", "--time", "0"
    )
    unreachable = await emit("run-started", *RUN, "--kafka", "127.0.0.1:1")

    assert negative.exit_code == 2
    assert "size" in negative.output
    assert unreachable.exit_code == 1
    assert "did not take the event" in unreachable.output
