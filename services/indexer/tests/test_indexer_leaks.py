"""No private dataset leaks through any endpoint of the search API, counts and facets included.

The proof is differential: for a caller who must not see a dataset, every response of every
endpoint is the same whether that dataset exists or not (then it cannot leak, whatever the response
contains: hits, totals, facet counts, a 403 that would reveal its existence). The routes are taken
from `app.routes`, so an endpoint added later fails this test until it has probes here.

Runs on the embedded stack: real Kafka and OpenSearch, the indexer app in-process, tokens from the
OIDC stand-in over real HTTP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from scicat_indexer.app import create_app
from scicat_indexer.settings import OidcSettings, Settings
from scicat_pipeline.commands.token import fetch_token
from scicat_pipeline.standins.oidc import StandinIssuer, served_issuer
from scicat_pipeline.testing import wait_for
from scicat_pipeline.testing.differential import (
    Caller,
    Probe,
    ServedRoute,
    Snapshot,
    of,
    served_routes,
    snapshot,
)
from scicat_schemas.documents import PROPOSAL_COLLECTION, Dataset
from scicat_schemas.topics import CATALOGUE_DATASETS

AUDIENCE = "scicat-search"

INFRASTRUCTURE = {
    "/healthz": "liveness, no data",
    "/readyz": "dependency status, no data",
    "/metrics": "message counters, no data",
    "/openapi.json": "checked on its own: the schema, which must hold no data",
    "/docs": "Swagger UI page",
    "/docs/oauth2-redirect": "Swagger UI page",
    "/redoc": "ReDoc page",
}
"""Routes that serve no dataset content, and why."""

PUBLIC_PID = "local/11000001/public_run"
ALPHA_PID = "local/11000002/alpha_run"
BRAVO_PID = "local/11000003/bravo_run"
LOOKUP = "/datasets/{pid:path}"


FACETS = ["instrument", "beamtime", "proposal", "pi", "technique", "type", "creationTime"]


def _probes(pids: list[str]) -> dict[str, list[Probe]]:
    """Every request each data endpoint gets; a route without an entry fails the test."""
    queries: list[dict[str, Any]] = [
        {},
        {"text": "run"},
        {"text": "bravo"},
        {"text": "alpha"},
        {"text": "secret"},
        {"limit": 1},
        {"limit": 1, "skip": 1},
        {"facet": FACETS},
        {"facet": FACETS, "text": "film", "histogram_interval": "day"},
        {"instrument": "P08", "facet": ["instrument", "proposal", "pi", "beamtime"]},
        {"proposal": "DOOR-BRAVO", "facet": ["proposal", "pi"]},
        {"text": "bravoson"},
        {"beamtime": "11000003"},
        {"pi": "Bravo Investigator"},
        {"pi": "Bea Bravoson"},
        {"condition": "bravo_energy"},
        {"condition": "bravo_energy>1keV"},
        {"condition": "alpha_energy>1keV"},
        {"instrument": "BRAVO-LINE", "facet": ["instrument"]},
        {"technique": "bravo scattering"},
        {"type": "derived", "facet": ["type", "technique"]},
        {"sort": "datasetName:asc"},
    ]
    bodies: list[dict[str, Any]] = [
        {},
        {"text": "bravo"},
        {"facets": FACETS},
        {"facets": FACETS, "filters": {"proposal": ["DOOR-BRAVO"]}},
        {"conditions": [{"key": "bravo_energy", "relation": "exists"}]},
        {"conditions": [{"key": "bravo_energy", "relation": "gt", "value": 1, "unit": "keV"}]},
        {"conditions": [{"key": "alpha_energy.value", "relation": "gte", "value": 7000}]},
    ]
    return {
        "/datasets": [
            *(Probe(params=query) for query in queries),
            Probe(params={"limit": 1}, follow_next=True),
        ],
        "/datasets/search": [
            *(Probe(method="POST", body=body) for body in bodies),
            Probe(method="POST", body={"limit": 1}, follow_next=True),
        ],
        LOOKUP: [Probe(path={"pid": pid}) for pid in pids],
        **_panosc_probes(pids),
    }


def _panosc_probes(pids: list[str]) -> dict[str, list[Probe]]:
    """PaNOSC shows published datasets only, to everyone: nothing private may change it."""

    def loopback(value: dict[str, Any]) -> dict[str, str]:
        return {"filter": json.dumps(value)}

    relations = ["parameters", "techniques", "instrument", "documents"]
    bravo_energy = {"and": [{"name": "bravo_energy"}, {"value": {"gt": 1}}, {"unit": "keV"}]}
    return {
        "/panosc/Datasets": [
            Probe(),
            Probe(params=loopback({"include": [{"relation": r} for r in relations]})),
            Probe(
                params=loopback(
                    {"include": [{"relation": "parameters", "scope": {"where": bravo_energy}}]}
                )
            ),
            Probe(params=loopback({"where": {"pid": BRAVO_PID}})),
            Probe(params=loopback({"limit": 1, "skip": 1})),
        ],
        "/panosc/Datasets/count": [
            Probe(),
            Probe(params={"where": json.dumps({"pid": BRAVO_PID})}),
            Probe(params={"where": json.dumps({"title": {"ilike": "%bravo%"}})}),
        ],
        "/panosc/Datasets/{pid:path}": [Probe(path={"pid": pid}) for pid in pids],
        "/panosc/Documents": [
            Probe(),
            Probe(params=loopback({"include": [{"relation": "datasets"}]})),
            Probe(params=loopback({"where": {"pid": "DOOR-BRAVO"}})),
        ],
        "/panosc/Instruments": [
            Probe(),
            Probe(params=loopback({"include": [{"relation": "datasets"}]})),
        ],
    }


@pytest.fixture
async def issuer() -> AsyncIterator[StandinIssuer]:
    async with served_issuer(audience=AUDIENCE) as running:
        yield running


@pytest.fixture
async def secured_app(indexer_settings: Settings, issuer: StandinIssuer) -> AsyncIterator[FastAPI]:
    settings = indexer_settings.model_copy(
        update={"oidc": OidcSettings(issuer=issuer.url, audience=AUDIENCE)}
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def _data_routes(app: FastAPI) -> list[ServedRoute]:
    return [route for route in served_routes(app.routes) if route.path not in INFRASTRUCTURE]


async def _snapshot(http: httpx.AsyncClient, callers: list[Caller], app: FastAPI) -> Snapshot:
    probes = _probes([PUBLIC_PID, ALPHA_PID, BRAVO_PID, "local/none/such"])
    return await snapshot(http, callers, _data_routes(app), probes)


def _datasets(make_dataset: Callable[..., Dataset]) -> list[Dataset]:
    common = {"instrumentIds": ["P08"], "creationLocation": "/DESY/P08", "type": "raw"}
    return [
        make_dataset(
            "public_run",
            beamtime="11000001",
            ownerGroup="11000001-dmgt",
            accessGroups=["11000001-part"],
            isPublished=True,
            description="a published film",
            keywords=["film"],
            **common,
        ),
        make_dataset(
            "alpha_run",
            beamtime="11000002",
            hours=1,
            ownerGroup="group-alpha",
            accessGroups=["alpha-collaborators"],
            description="alpha secret sample",
            keywords=["alpha-keyword", "film"],
            principalInvestigators=["Alpha Investigator"],
            scientificMetadata={"alpha_energy": {"value": 7.0, "unit": "keV"}},
            **common,
        ),
        make_dataset(
            "bravo_run",
            beamtime="11000003",
            hours=2,
            ownerGroup="group-bravo",
            accessGroups=["bravo-collaborators"],
            description="bravo secret sample",
            keywords=["bravo-keyword", "film"],
            principalInvestigators=["Bravo Investigator"],
            scientificMetadata={"bravo_energy": {"value": 9.0, "unit": "keV"}},
            techniques=[{"name": "bravo scattering", "pid": "bravo-technique"}],
            type="derived",
            instrumentIds=["P08", "BRAVO-LINE"],
            creationLocation="/DESY/BRAVO-LINE",
        ),
    ]


def _proposals() -> list[dict[str, Any]]:
    """Each beamtime with its DOOR proposal: their titles and PIs are indexed with the dataset."""
    proposals: list[dict[str, Any]] = []
    for beamtime, name, group in (
        ("11000001", "public", "11000001-dmgt"),
        ("11000002", "alpha", "group-alpha"),
        ("11000003", "bravo", "group-bravo"),
    ):
        door = f"DOOR-{name.upper()}"
        common = {
            "ownerGroup": group,
            "pi_firstname": name[0].upper() + "ea",
            "pi_lastname": f"{name.title()}son",
        }
        proposals += [
            {"proposalId": door, "type": "DOOR Proposal", "title": f"{name} proposal", **common},
            {
                "proposalId": beamtime,
                "type": "Beamtime",
                "parentProposalId": door,
                "title": f"{name} beamtime",
                **common,
            },
        ]
    return proposals


async def _store_proposals(settings: Settings) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo.uri)
    try:
        await client[settings.mongo.database][PROPOSAL_COLLECTION].insert_many(_proposals())
    finally:
        await client.close()


async def _produce(bootstrap_servers: str, *values: tuple[str, bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(CATALOGUE_DATASETS, value, key=key.encode())
    finally:
        await producer.stop()


async def test_no_private_dataset_leaks_through_any_endpoint(
    secured_app: FastAPI,
    issuer: StandinIssuer,
    indexer_settings: Settings,
    make_dataset: Callable[..., Dataset],
    stored_event: Callable[..., bytes],
    deleted_event: Callable[..., bytes],
) -> None:
    probes = _probes([])
    unexercised = [r.path for r in _data_routes(secured_app) if r.path not in probes]
    assert not unexercised, (
        f"data endpoints without leak probes, add them to _probes: {unexercised}"
    )

    anonymous = Caller("anonymous", None)
    alpha_owner = Caller(
        "alpha owner", await fetch_token(issuer.url, groups=["/group-alpha"], subject="ann")
    )
    alpha_reader = Caller(
        "alpha reader", await fetch_token(issuer.url, groups=["alpha-collaborators"], subject="abe")
    )
    everyone = Caller(
        "both groups",
        await fetch_token(issuer.url, groups=["group-alpha", "bravo-collaborators"], subject="x"),
    )
    callers = [anonymous, alpha_owner, alpha_reader]
    bootstrap = indexer_settings.kafka.bootstrap_servers
    transport = httpx.ASGITransport(app=secured_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:

        async def visible_to_everyone(total: int) -> bool:
            response = await http.get("/datasets", headers=everyone.headers)
            return response.status_code == 200 and response.json()["total"] == total

        datasets = _datasets(make_dataset)
        await _store_proposals(indexer_settings)
        await _produce(bootstrap, *((d.pid, stored_event(d)) for d in datasets))
        await wait_for(lambda: visible_to_everyone(3), timeout=30, what="3 indexed datasets")
        with_all = await _snapshot(http, [*callers, everyone], secured_app)
        for caller in (anonymous, everyone):
            spec = (await http.get("/openapi.json", headers=caller.headers)).text.lower()
            for marker in ("bravo", "alpha", "public_run", "11000001", "publicson"):
                assert marker not in spec, f"/openapi.json holds dataset content: {marker}"

        await _produce(bootstrap, (BRAVO_PID, deleted_event(BRAVO_PID, 2)))
        await wait_for(lambda: visible_to_everyone(2), timeout=30, what="bravo deleted")
        without_bravo = await _snapshot(http, callers, secured_app)

        await _produce(bootstrap, (ALPHA_PID, deleted_event(ALPHA_PID, 2)))
        await wait_for(lambda: visible_to_everyone(1), timeout=30, what="alpha deleted")
        without_private = await _snapshot(http, callers, secured_app)

    # What each caller sees at all: the differential check below is only meaningful if so.
    assert with_all[("anonymous", "/datasets", repr(probes["/datasets"][0]))][0][1]["total"] == 1
    for caller in (alpha_owner, alpha_reader):
        page = with_all[(caller.name, "/datasets", repr(probes["/datasets"][0]))][0][1]
        assert page["total"] == 2, caller.name
        assert {item["pid"] for item in page["items"]} == {PUBLIC_PID, ALPHA_PID}
    assert with_all[("alpha owner", LOOKUP, repr(Probe(path={"pid": ALPHA_PID})))][0][0] == 200
    assert with_all[("anonymous", LOOKUP, repr(Probe(path={"pid": ALPHA_PID})))][0][0] == 404
    assert with_all[("alpha owner", LOOKUP, repr(Probe(path={"pid": BRAVO_PID})))][0][0] == 404

    # The probes are live: each finds bravo for a caller allowed to see it.
    for query in (
        {"text": "bravoson"},
        {"proposal": "DOOR-BRAVO", "facet": ["proposal", "pi"]},
        {"condition": "bravo_energy>1keV"},
        {"instrument": "BRAVO-LINE", "facet": ["instrument"]},
        {"technique": "bravo scattering"},
    ):
        page = with_all[(everyone.name, "/datasets", repr(Probe(params=query)))][0][1]
        assert [item["pid"] for item in page["items"]] == [BRAVO_PID], query

    # Invisible datasets change nothing, anywhere: not a count, not a facet, not a status.
    for caller in callers:
        assert of(with_all, caller.name) == of(without_bravo, caller.name), caller.name
    assert of(with_all, "anonymous") == of(without_private, "anonymous")
    for caller in (alpha_owner, alpha_reader):
        assert of(without_bravo, caller.name) != of(without_private, caller.name), (
            f"{caller.name} must see alpha"
        )

    # And no word of bravo (alpha, for the anonymous) in any body.
    for (who, path, probe), answers in with_all.items():
        if who == everyone.name:
            continue
        text = json.dumps(answers).lower()
        if path in (LOOKUP, "/panosc/Datasets/{pid:path}"):
            # A 404 names the pid the caller asked for; that tells nothing the caller did not know.
            text = text.replace(ALPHA_PID, "").replace(BRAVO_PID, "")
        assert "bravo" not in text, (who, path, probe)
        if who == "anonymous":
            assert "alpha" not in text, (who, path, probe)
