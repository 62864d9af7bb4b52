"""Full OAI-PMH harvests of a large read model over real HTTP: records per second.

Loads `--records` pre-rendered records into the oai-provider's read model on the embedded MongoDB
(bulk insert through the service's own store code), starts the service as its own process
(`python -m scicat_oai_provider`, uvicorn, configured by environment variables like in
production), then harvests everything through resumption tokens with an httpx client that, like a
real harvester, parses every page. Prints one table; nothing is asserted.

    uv run --frozen python bench/oai_harvest_benchmark.py               # 100k records
    uv run --frozen python bench/oai_harvest_benchmark.py --records 10000 --page-sizes 500
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from lxml import etree
from rich.console import Console
from rich.table import Table

from scicat_oai_provider.domain import OaiRecord, apply_content, oai_identifier, registered_content
from scicat_oai_provider.store import MongoOaiRecordStore
from scicat_pipeline.embedded import EmbeddedKafka, EmbeddedMongo, create_topics, free_port
from scicat_schemas.documents import DatasetSummary, PublicationRecord, PublishedData
from scicat_schemas.runtime.settings import MongoSettings
from scicat_schemas.topics import ALL_TOPICS

REPOSITORY_IDENTIFIER = "bench.scicat.example.org"
OAI = "{http://www.openarchives.org/OAI/2.0/}"
TEMPLATES = 50
START = datetime(2025, 1, 1, tzinfo=UTC)
console = Console(width=120)


def publication(n: int) -> PublicationRecord:
    """A realistic publication of two datasets; `n` varies instrument, proposal and title."""
    instrument, proposal = f"P{n % 11 + 1:02d}", f"110{n % 7:05d}"
    beamtime = f"1101{n:04d}"
    datasets = [
        DatasetSummary(
            pid=f"20.500.12269/{beamtime}/scan-{k}",
            datasetName=f"scan-{k}",
            size=1_234_567 * k,
            numberOfFiles=3 * k,
            creationTime=START,
            instrumentIds=[instrument],
            proposalIds=[proposal, beamtime],
            creationLocation=f"/DESY/{instrument}",
            keywords=["XRD", "battery"],
        )
        for k in (1, 2)
    ]
    doi = f"10.5072/desy.bench-template-{n}"
    return PublicationRecord(
        publication=PublishedData(
            doi=doi,
            publicationId=f"template-{n}",
            title=f"Operando diffraction of cathode series {n}",
            abstract="Diffraction during cycling of NMC811 cathodes at 25 keV, 200 Hz frames.",
            datasetPids=[d.pid for d in datasets],
            status="registered",
            registeredTime=START,
            landingPage=f"https://data.example.org/publications/template-{n}",
            metadata={
                "creators": [
                    {"name": "Müller, Anna", "givenName": "Anna", "familyName": "Müller"},
                    {"name": "Chen, Wei", "givenName": "Wei", "familyName": "Chen"},
                ],
                "publisher": "DESY",
                "publicationYear": 2025,
                "resourceType": {"resourceTypeGeneral": "Dataset"},
                "keywords": ["operando", "XRD"],
                "license": "https://creativecommons.org/licenses/by/4.0/",
            },
        ),
        datasets=datasets,
    )


def templates() -> list[OaiRecord]:
    """A few records rendered through the real mapping; the rest are clones of them."""
    rendered = []
    for n in range(TEMPLATES):
        record = publication(n)
        content = registered_content(
            record,
            repository_identifier=REPOSITORY_IDENTIFIER,
            datacentre_symbol="DESY.SCICAT",
            facility="DESY",
            proposal_parents={record.datasets[0].proposalIds[1]: record.datasets[0].proposalIds[0]},
        )
        stored = apply_content(None, content, event=f"bench\x1f{n}", now=START)
        assert stored is not None
        rendered.append(stored)
    return rendered


def records(count: int) -> Iterator[OaiRecord]:
    """`count` distinct records, three per second of datestamp (so keys tie on datestamp)."""
    bases = templates()
    for i in range(count):
        base = bases[i % len(bases)]
        doi = f"10.5072/desy.bench-{i:07d}"
        yield replace(
            base,
            identifier=oai_identifier(REPOSITORY_IDENTIFIER, doi),
            doi=doi,
            publication_id=f"bench-{i}",
            datestamp=START + timedelta(seconds=i // 3),
            metadata={k: v.replace(base.doi, doi) for k, v in base.metadata.items()},
            applied=(),
        )


async def load(mongo: MongoSettings, count: int) -> float:
    store = MongoOaiRecordStore(mongo)
    await store.open()
    started = time.perf_counter()
    try:
        chunk: list[OaiRecord] = []
        for record in records(count):
            chunk.append(record)
            if len(chunk) == 2_000:
                await store.insert_many(chunk)
                chunk = []
        await store.insert_many(chunk)
        return time.perf_counter() - started
    finally:
        await store.close()


async def query_plan(mongo: MongoSettings) -> str:
    """How the server runs one page's query (a window of the `listKey` range), if it says."""
    store = MongoOaiRecordStore(mongo)
    await store.open()
    try:
        window = {"$gt": "oai_dc 2025-01-01T00:10:00Z", "$lt": "oai_dc 2025-01-01T00:11:00Z"}
        explained = (
            await store.entries.find({"listKey": window}).sort("listKey", 1).limit(101).explain()
        )
        plan = explained.get("queryPlanner", {}).get("winningPlan", explained)
        stages = []
        while isinstance(plan, dict):
            stages.append(
                f"{plan.get('stage')}" + (f"({plan['indexName']})" if plan.get("indexName") else "")
            )
            plan = plan.get("inputStage")
        return " ← ".join(stages)
    except Exception as error:  # a server without explain only loses this line
        return f"explain not available: {error!r}"[:300]
    finally:
        await store.close()


@dataclass
class Harvest:
    what: str
    records: int
    pages: int
    seconds: float
    megabytes: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


def harvest(base_url: str, verb: str, prefix: str, set_spec: str | None = None) -> Harvest:
    """Follow resumption tokens to the end, parsing every page like a harvester does."""
    element = "record" if verb == "ListRecords" else "header"
    count = pages = size = 0
    params: dict[str, str] = {"verb": verb, "metadataPrefix": prefix}
    if set_spec:
        params["set"] = set_spec
    started = time.perf_counter()
    with httpx.Client(timeout=60, headers={"Accept-Encoding": "gzip"}) as client:
        while True:
            response = client.get(base_url, params=params)
            response.raise_for_status()
            size += int(response.headers.get("content-length", len(response.content)))
            root = etree.fromstring(response.content)
            listing = root.find(f"{OAI}{verb}")
            if listing is None:
                raise RuntimeError(response.text[:500])
            count += sum(1 for _ in listing.iterchildren(f"{OAI}{element}"))
            pages += 1
            token = listing.findtext(f"{OAI}resumptionToken")
            if not token:
                break
            params = {"verb": verb, "resumptionToken": token}
    what = f"{verb} {prefix}" + (f" set={set_spec}" if set_spec else "")
    return Harvest(what, count, pages, time.perf_counter() - started, size / 1e6)


ONE_PAGE_VERBS = ("Identify", "ListSets")
"""Answered in one response; timed once, as the first request of a freshly started service."""


def single_request(base_url: str, verb: str) -> float:
    started = time.perf_counter()
    httpx.get(base_url, params={"verb": verb}, timeout=300).raise_for_status()
    return time.perf_counter() - started


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the oai-provider exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the oai-provider did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="records to load")
    parser.add_argument(
        "--page-sizes", default="100,500", help="OAI_PROVIDER_PAGE_SIZE values to measure"
    )
    parser.add_argument(
        "--formats", default="oai_datacite,oai_dc", help="ListRecords formats to harvest"
    )
    parser.add_argument(
        "--sets",
        default="openaire_data,facility:desy",
        help="sets to harvest with ListRecords oai_datacite (comma-separated; empty: none); "
        "both defaults hold every record, `facility:desy` through the (setPaths, listKey) index",
    )
    arguments = parser.parse_args()
    formats = arguments.formats.split(",")

    mongo_server = EmbeddedMongo().start()
    kafka = EmbeddedKafka().start()
    service: Any = None
    try:
        asyncio.run(create_topics(kafka.bootstrap_servers, list(ALL_TOPICS)))
        mongo = MongoSettings(uri=mongo_server.uri, database="oai_bench")
        console.print(f"loading {arguments.records:,} records…")
        load_seconds = asyncio.run(load(mongo, arguments.records))
        plan = asyncio.run(query_plan(mongo))
        runs: list[tuple[int, dict[str, float], list[Harvest]]] = []
        for page_size in [int(size) for size in arguments.page_sizes.split(",")]:
            service, url = start_service(kafka.bootstrap_servers, mongo, page_size)
            first_requests = {verb: single_request(f"{url}/oai", verb) for verb in ONE_PAGE_VERBS}
            harvests = [harvest(f"{url}/oai", "ListRecords", p) for p in formats]
            harvests += [
                harvest(f"{url}/oai", "ListRecords", "oai_datacite", set_spec)
                for set_spec in filter(None, arguments.sets.split(","))
            ]
            harvests.append(harvest(f"{url}/oai", "ListIdentifiers", "oai_dc"))
            runs.append((page_size, first_requests, harvests))
            stop_service(service)
            service = None
    finally:
        if service is not None:
            stop_service(service)
        kafka.stop()
        mongo_server.stop()

    table = Table(
        title=f"OAI-PMH full harvests of {arguments.records:,} records over HTTP "
        f"(bulk load: {arguments.records / load_seconds:,.0f} records/s)"
    )
    for column in ("page size", "harvest", "records", "pages", "seconds", "records/s", "MB gzip"):
        table.add_column(column, justify="left" if column == "harvest" else "right")
    for page_size, first_requests, harvests in runs:
        for verb, seconds in first_requests.items():
            table.add_row(str(page_size), f"{verb} (first request)", "", "1",
                          f"{seconds:.2f}", "", "")  # fmt: skip
        for run in harvests:
            table.add_row(
                str(page_size),
                run.what,
                f"{run.records:,}",
                f"{run.pages:,}",
                f"{run.seconds:.1f}",
                f"{run.per_second:,.0f}",
                f"{run.megabytes:.1f}",
            )
    console.print(table)
    console.print(f"query plan of one page window (as explained by the server): {plan}")


def start_service(
    bootstrap_servers: str, mongo: MongoSettings, page_size: int
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m scicat_oai_provider` configured by environment variables, and its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "OAI_PROVIDER_KAFKA__BOOTSTRAP_SERVERS": bootstrap_servers,
        "OAI_PROVIDER_MONGO__URI": mongo.uri,
        "OAI_PROVIDER_MONGO__DATABASE": mongo.database,
        "OAI_PROVIDER_HTTP__HOST": "127.0.0.1",
        "OAI_PROVIDER_HTTP__PORT": str(port),
        "OAI_PROVIDER_PUBLIC_URL": url,
        "OAI_PROVIDER_REPOSITORY_IDENTIFIER": REPOSITORY_IDENTIFIER,
        "OAI_PROVIDER_PAGE_SIZE": str(page_size),
        "OAI_PROVIDER_TOKEN_SECRET": "bench-secret",
        "OAI_PROVIDER_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "scicat_oai_provider"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(url, process)
    return process, url


def stop_service(process: Any) -> None:
    process.terminate()
    process.wait(10)


if __name__ == "__main__":
    main()
