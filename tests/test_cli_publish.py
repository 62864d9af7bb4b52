"""`scicat-pipeline publish`: publication requests, amendments and withdrawals from a file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from scicat_pipeline.cli import app
from scicat_pipeline.testing.topics import read_topic
from scicat_schemas.events import (
    PUBLICATIONS_TOPIC_EVENT,
    PublicationAmendmentRequested,
    PublicationRequested,
    PublicationWithdrawalRequested,
)
from scicat_schemas.topics import CATALOGUE_PUBLICATIONS

UNREACHABLE = "127.0.0.1:1"
REQUEST_YAML = """\
publication_id: p08-zincblende-2026
dataset_pids: [local/11012345/scan_001, local/11012345/scan_002]
title: Strain in zincblende films
abstract: Two scans at P08.
publication_year: 2026
creators:
  - name: Doe, Jane
    orcid: https://orcid.org/0000-0002-1825-0097
    affiliation: DESY
keywords: [strain, zincblende]
"""


async def publish(*args: str):
    """The CLI in a worker thread: it runs its own event loop, as it does from a shell."""
    return await asyncio.to_thread(
        CliRunner().invoke, app, ["publish", *args], env={"COLUMNS": "250"}
    )


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "publication.yaml"
    path.write_text(REQUEST_YAML)
    return path


async def test_a_yaml_request_arrives_as_a_valid_publication_request_keyed_by_its_id(
    kafka: str, request_file: Path
) -> None:
    first = await publish("request", str(request_file), "--kafka", kafka)
    again = await publish("request", str(request_file), "--kafka", kafka)

    assert (first.exit_code, again.exit_code) == (0, 0), first.output
    assert first.output == again.output, "the same request must carry the same id"
    records = await read_topic(kafka, CATALOGUE_PUBLICATIONS, expected=2)
    event = PUBLICATIONS_TOPIC_EVENT.validate_json(records[0].value)
    assert isinstance(event, PublicationRequested)
    assert event.id == first.output.strip()
    assert records[0].key == b"p08-zincblende-2026"
    assert event.data.dataset_pids == ["local/11012345/scan_001", "local/11012345/scan_002"]
    assert event.data.creators[0].orcid == "0000-0002-1825-0097"
    assert event.data.draft is False


async def test_draft_and_json_files_are_taken_too(kafka: str, tmp_path: Path) -> None:
    path = tmp_path / "publication.json"
    path.write_text(json.dumps(yaml.safe_load(REQUEST_YAML)))
    result = await publish("request", str(path), "--draft", "--kafka", kafka)
    assert result.exit_code == 0, result.output
    [record] = await read_topic(kafka, CATALOGUE_PUBLICATIONS, expected=1)
    event = PUBLICATIONS_TOPIC_EVENT.validate_json(record.value)
    assert isinstance(event, PublicationRequested) and event.data.draft is True


async def test_a_request_missing_fields_exits_2_naming_them_without_contacting_kafka(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("publication_id: x\ndataset_pids: [a]\ncreators: [{name: A, orcid: '12'}]\n")
    result = await publish("request", str(path), "--kafka", UNREACHABLE)
    assert result.exit_code == 2, result.output
    for field in ("title", "abstract", "publication_year", "creators.0.orcid"):
        assert field in result.output


async def test_a_file_that_is_not_a_mapping_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- just\n- a list\n")
    result = await publish("request", str(path), "--kafka", UNREACHABLE)
    assert result.exit_code == 2
    assert "must hold a mapping" in result.output


async def test_an_amendment_carries_only_the_changed_fields(kafka: str, tmp_path: Path) -> None:
    path = tmp_path / "changes.yaml"
    path.write_text("title: Strain in zincblende thin films\nkeywords: [strain]\n")
    result = await publish(
        "amend", "p08-zincblende-2026", str(path), "--reason", "typo", "--kafka", kafka
    )
    assert result.exit_code == 0, result.output
    [record] = await read_topic(kafka, CATALOGUE_PUBLICATIONS, expected=1)
    event = PUBLICATIONS_TOPIC_EVENT.validate_json(record.value)
    assert isinstance(event, PublicationAmendmentRequested)
    assert event.data.changes.model_dump(exclude_unset=True) == {
        "title": "Strain in zincblende thin films",
        "keywords": ["strain"],
    }
    assert event.data.reason == "typo"


async def test_an_amendment_that_changes_nothing_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "changes.yaml"
    path.write_text("{}\n")
    result = await publish("amend", "p1", str(path), "--kafka", UNREACHABLE)
    assert result.exit_code == 2
    assert "changes nothing" in result.output


async def test_a_withdrawal_needs_a_reason_and_arrives_keyed_by_the_publication(
    kafka: str,
) -> None:
    empty = await publish("withdraw", "p1", "--reason", "", "--kafka", UNREACHABLE)
    assert empty.exit_code == 2 and "reason" in empty.output
    result = await publish("withdraw", "p1", "--reason", "wrong sample", "--kafka", kafka)
    assert result.exit_code == 0, result.output
    [record] = await read_topic(kafka, CATALOGUE_PUBLICATIONS, expected=1)
    event = PUBLICATIONS_TOPIC_EVENT.validate_json(record.value)
    assert isinstance(event, PublicationWithdrawalRequested)
    assert (record.key, event.data.reason) == (b"p1", "wrong sample")


async def test_dry_run_prints_the_event_and_sends_nothing(request_file: Path) -> None:
    result = await publish("request", str(request_file), "--dry-run", "--kafka", UNREACHABLE)
    assert result.exit_code == 0, result.output
    event = PUBLICATIONS_TOPIC_EVENT.validate_json(result.output)
    assert isinstance(event, PublicationRequested)
    assert event.data.title == "Strain in zincblende films"


async def test_an_unreachable_kafka_exits_1(request_file: Path) -> None:
    result = await publish("request", str(request_file), "--kafka", UNREACHABLE)
    assert result.exit_code == 1
    assert "did not take the event" in result.output
