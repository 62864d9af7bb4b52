"""`scicat-pipeline demo`: replay a bundled P08 beamtime through a running stack.

The sample is a few runs with several files each. Event ids are deterministic, so replaying the
demo twice against the same stack changes nothing — the idempotency promise, visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from aiokafka import AIOKafkaProducer
from pymongo import AsyncMongoClient

from scicat_pipeline.commands.token import fetch_token
from scicat_pipeline.polling import wait_for
from scicat_pipeline.stack import OIDC_AUDIENCE
from scicat_schemas import events, topics
from scicat_schemas.documents import PUBLISHED_DATA_COLLECTION


def load_sample() -> dict[str, Any]:
    text = resources.files("scicat_pipeline.sample").joinpath("p08_beamtime.json").read_text()
    return dict(json.loads(text))


def acquisition_events(sample: dict[str, Any]) -> list[events.CloudEvent]:
    """run.started, one file.closed per file, run.stopped — for every run of the sample."""
    beamtime = sample["beamtime"]
    source = sample["source"]
    instrument = beamtime["beamline"].upper()
    out: list[events.CloudEvent] = [
        events.BeamtimeUpdated(
            id=f"beamtime/{beamtime['beamtime_id']}",
            source=source,
            subject=beamtime["beamtime_id"],
            data=events.BeamtimeUpdatedData(**beamtime),
        )
    ]
    for run in sample["runs"]:
        ref = {
            "run_id": run["run_id"],
            "beamtime_id": beamtime["beamtime_id"],
            "instrument": instrument,
        }
        folder = f"{beamtime['core_path']}/raw/{run['run_id']}"
        started = datetime.fromisoformat(run["started_at"])
        out.append(
            events.RunStarted(
                id=f"{run['run_id']}/started",
                source=source,
                time=started,
                subject=run["run_id"],
                data=events.RunStartedData(
                    **ref,
                    started_at=started,
                    dataset_name=run["dataset_name"],
                    source_folder=folder,
                    metadata=run["metadata"],
                ),
            )
        )
        for number, file in enumerate(run["files"], start=1):
            closed = started + timedelta(minutes=number)
            out.append(
                events.FileClosed(
                    id=f"{run['run_id']}/file/{number}",
                    source=source,
                    time=closed,
                    subject=f"{folder}/{file['name']}",
                    data=events.FileClosedData(
                        **ref, path=f"{folder}/{file['name']}", size=file["size"], closed_at=closed
                    ),
                )
            )
        stopped = datetime.fromisoformat(run["stopped_at"])
        out.append(
            events.RunStopped(
                id=f"{run['run_id']}/stopped",
                source=source,
                time=stopped,
                subject=run["run_id"],
                data=events.RunStoppedData(
                    **ref, stopped_at=stopped, status=run["status"], reason=run.get("reason")
                ),
            )
        )
    return out


def publication_request(sample: dict[str, Any], pid_prefix: str) -> events.PublicationRequested:
    beamtime_id = sample["beamtime"]["beamtime_id"]
    data = dict(sample["publication"])
    data["dataset_pids"] = [f"{pid_prefix}/{beamtime_id}/{run['run_id']}" for run in sample["runs"]]
    return events.PublicationRequested(
        id=f"publication/{data['publication_id']}",
        source=sample["source"],
        subject=data["publication_id"],
        data=events.PublicationRequestedData(**data),
    )


def _key(event: events.CloudEvent) -> bytes:
    data = event.data  # type: ignore[attr-defined]
    for name in ("run_id", "beamtime_id", "publication_id"):
        if hasattr(data, name):
            return str(getattr(data, name)).encode()
    raise ValueError(f"no key for {event.type}")  # type: ignore[attr-defined]


async def publish(bootstrap: str, topic: str, batch: list[events.CloudEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in batch:
            await producer.send_and_wait(topic, events.encode(event), key=_key(event))
    finally:
        await producer.stop()


@dataclass
class DemoResult:
    search_url: str
    list_records_url: str
    landing_url: str
    doi: str
    datasets: int
    beamtime_id: str


async def run_demo(
    endpoints: dict[str, str], *, database: str = "scicat", pid_prefix: str = "local"
) -> DemoResult:
    """Replay the sample, wait until it is searchable, publish it, wait until it is harvestable."""
    sample = load_sample()
    replay = acquisition_events(sample)
    await publish(
        endpoints["kafka"],
        topics.PROPOSALS_EVENTS,
        [e for e in replay if isinstance(e, events.BeamtimeUpdated)],
    )
    await publish(
        endpoints["kafka"],
        topics.ACQUISITION_EVENTS,
        [e for e in replay if not isinstance(e, events.BeamtimeUpdated)],
    )
    runs = len(sample["runs"])
    beamtime_id = sample["beamtime"]["beamtime_id"]
    # Unpublished datasets are private: the beamtime's data managers see them, anonymous users not.
    token = await fetch_token(
        endpoints["oidc"], groups=[f"{beamtime_id}-dmgt"], subject="demo", audience=OIDC_AUDIENCE
    )
    async with httpx.AsyncClient(timeout=5) as http:
        films = sum("film" in run["dataset_name"].lower() for run in sample["runs"])

        async def films_found(bearer: str | None) -> bool:
            answer = await http.get(
                endpoints["search_api"],
                params={"text": "film"},
                headers={"Authorization": f"Bearer {bearer}"} if bearer else {},
            )
            found = answer.json() if answer.status_code == 200 else {"total": 0}
            return bool(found["total"] >= films)

        await wait_for(lambda: films_found(token), timeout=60, what="the datasets, privately")
        request = publication_request(sample, pid_prefix)
        await publish(endpoints["kafka"], topics.CATALOGUE_PUBLICATIONS, [request])

        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(endpoints["mongodb"])
        try:

            async def registered() -> dict[str, Any] | None:
                return await mongo[database][PUBLISHED_DATA_COLLECTION].find_one(
                    {"publicationId": request.data.publication_id, "status": "registered"}
                )

            published = await wait_for(registered, timeout=60, what="the DOI registration")
        finally:
            await mongo.close()
        await wait_for(lambda: films_found(None), timeout=60, what="the datasets, publicly")
        if published is None:
            raise RuntimeError("the DOI registration was waited for but not returned")
        doi = str(published["doi"])

        async def harvestable() -> bool:
            answer = await http.get(
                endpoints["oai_pmh"],
                params={"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"},
            )
            return doi in answer.text

        await wait_for(harvestable, timeout=60, what="the DOI in OAI-PMH")
    return DemoResult(
        search_url=f"{endpoints['search_api']}?{urlencode({'text': 'film'})}",
        list_records_url=f"{endpoints['oai_pmh']}?verb=ListRecords&metadataPrefix=oai_datacite",
        landing_url=f"{endpoints['landing']}/{quote(doi, safe='/')}",
        doi=doi,
        datasets=runs,
        beamtime_id=beamtime_id,
    )
