"""An operator's publication lifecycle on the embedded stack, through `scicat-pipeline publish`:
request → registered DOI and landing page, amend → new title at DataCite and on the page,
withdraw → hidden DOI, tombstone page, dataset no longer published."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pipeline_support import RunningStack, cloud_event
from pymongo import AsyncMongoClient
from typer.testing import CliRunner

from scicat_pipeline.cli import app
from scicat_pipeline.polling import wait_for
from scicat_pipeline.stack import DATACITE_PASSWORD, DATACITE_USER

pytestmark = pytest.mark.e2e


async def _publish(stack: RunningStack, *args: str) -> str:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["publish", *args, "--kafka", stack.endpoints["kafka"]],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    return result.output.strip()


async def _find_one(stack: RunningStack, collection: str, query: dict[str, Any]) -> Any:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.endpoints["mongodb"])
    try:
        return await client["scicat"][collection].find_one(query)
    finally:
        await client.close()


async def test_request_amend_and_withdraw_a_publication_from_the_command_line(
    stack: RunningStack, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    beamtime = f"1102{uuid.uuid4().int % 10_000:04d}"
    run_id = f"lifecycle_{uuid.uuid4().hex[:6]}"
    pid = f"local/{beamtime}/{run_id}"
    await producer.send_and_wait(
        "acquisition.events",
        cloud_event(
            "file.closed",
            f"{run_id}-1",
            {
                "path": f"/asap3/petra3/gpfs/p08/2026/data/{beamtime}/raw/{run_id}/img_1.cbf",
                "size": 1024,
                "closed_at": "2026-03-01T10:00:00Z",
                "instrument": "P08",
                "beamtime_id": beamtime,
                "run_id": run_id,
            },
        ),
        key=run_id.encode(),
    )
    await wait_for(lambda: _find_one(stack, "Dataset", {"pid": pid}), timeout=30, what="dataset")

    publication_id = f"cli-{uuid.uuid4().hex[:8]}"
    request = tmp_path / "publication.yaml"
    request.write_text(
        f"publication_id: {publication_id}\ndataset_pids: [{pid}]\n"
        "title: Lifecycle from the command line\nabstract: One image.\n"
        "publication_year: 2026\ncreators: [{name: 'Doe, Jane'}]\n"
    )
    await _publish(stack, "request", str(request))
    published = await wait_for(
        lambda: _find_one(stack, "PublishedData", {"publicationId": publication_id}),
        timeout=45,
        what="the publication",
    )
    doi = published["_id"]

    async with httpx.AsyncClient(timeout=10) as http:

        async def at_datacite() -> dict[str, Any]:
            answer = await http.get(
                f"{stack.endpoints['datacite']}/dois/{doi}",
                auth=(DATACITE_USER, DATACITE_PASSWORD),
            )
            attributes: dict[str, Any] = answer.json()["data"]["attributes"]
            return attributes

        async def state_is(state: str) -> bool:
            return (await at_datacite()).get("state") == state

        await wait_for(lambda: state_is("findable"), timeout=45, what="a findable DOI")
        landing_url = (await at_datacite())["url"]

        changes = tmp_path / "changes.yaml"
        changes.write_text("title: Lifecycle from the command line, amended\n")
        await _publish(stack, "amend", publication_id, str(changes), "--reason", "title")

        async def amended_title() -> bool:
            titles = [t["title"] for t in (await at_datacite()).get("titles", [])]
            page = await http.get(landing_url)
            return "Lifecycle from the command line, amended" in titles and (
                "Lifecycle from the command line, amended" in page.text
            )

        await wait_for(amended_title, timeout=45, what="the amended title")

        await _publish(stack, "withdraw", publication_id, "--reason", "wrong sample")
        await wait_for(lambda: state_is("registered"), timeout=45, what="the DOI hidden")

        async def tombstone() -> bool:
            return (await http.get(landing_url)).status_code == 410

        await wait_for(tombstone, timeout=30, what="the tombstone page")
        dataset = await _find_one(stack, "Dataset", {"pid": pid})
        assert dataset["isPublished"] is False
