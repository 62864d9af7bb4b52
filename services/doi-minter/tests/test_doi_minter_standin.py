"""The DataCite stand-in refuses what DataCite refuses, so the minter meets the real rules."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from lxml import etree

from scicat_pipeline.standins.datacite import create_app
from scicat_pipeline.standins.datacite_rules import (
    DoiError,
    State,
    check_doi,
    findable_errors,
    merge_attributes,
    next_state,
)
from scicat_pipeline.testing.xsd import assert_valid
from scicat_schemas.datacite import datacite_xml

USER, PASSWORD, PREFIX = "DESY.TEST", "pw", "10.5072"

COMPLETE: dict[str, Any] = {
    "creators": [{"name": "Doe, Jane"}],
    "titles": [{"title": "Thin films"}],
    "publisher": {"name": "DESY"},
    "publicationYear": 2025,
    "types": {"resourceTypeGeneral": "Dataset"},
    "url": "https://doi.example.org/doi/10.5072/a",
}


# --- rules --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [
        (State.DRAFT, "publish", State.FINDABLE),
        (State.DRAFT, "register", State.REGISTERED),
        (State.REGISTERED, "publish", State.FINDABLE),
        (State.REGISTERED, "show", State.FINDABLE),
        (State.FINDABLE, "hide", State.REGISTERED),
        (State.FINDABLE, "publish", State.FINDABLE),
        (State.FINDABLE, "register", State.FINDABLE),
        (State.DRAFT, "hide", State.DRAFT),
        (State.REGISTERED, "register", State.REGISTERED),
        (State.FINDABLE, None, State.FINDABLE),
    ],
)
def test_events_move_states_and_inapplicable_ones_are_ignored(
    state: State, event: str | None, after: State
) -> None:
    assert next_state(state, event, doi="10.5072/a") is after


def test_unknown_event_is_a_validation_error() -> None:
    with pytest.raises(DoiError) as refused:
        next_state(State.DRAFT, "destroy", doi="10.5072/a")
    assert refused.value.status == 422


@pytest.mark.parametrize(
    ("doi", "status"), [("10.5072/ok", 0), ("10.50/x", 422), ("10.9999/x", 403)]
)
def test_doi_syntax_and_prefix_are_checked(doi: str, status: int) -> None:
    if status == 0:
        assert check_doi("10.5072/OK", prefix=PREFIX) == "10.5072/ok"
        return
    with pytest.raises(DoiError) as refused:
        check_doi(doi, prefix=PREFIX)
    assert refused.value.status == status


def test_update_changes_only_what_it_sends_and_replaces_arrays() -> None:
    stored = {"titles": [{"title": "a"}, {"title": "b"}], "publicationYear": 2024}
    merged = merge_attributes(stored, {"titles": [{"title": "c"}], "event": "publish"})
    assert merged == {"titles": [{"title": "c"}], "publicationYear": 2024}


@pytest.mark.parametrize(
    ("change", "source"),
    [
        ({"creators": []}, "creators"),
        ({"titles": [{"title": " "}]}, "titles"),
        ({"publisher": None}, "publisher"),
        ({"publicationYear": 25}, "publicationYear"),
        ({"types": {"resourceType": "Scan"}}, "types"),
        ({"url": None}, "url"),
        ({"url": "doi.example.org/a"}, "url"),
    ],
)
def test_findable_doi_needs_every_mandatory_field(change: dict[str, Any], source: str) -> None:
    errors = findable_errors(COMPLETE | change, doi="10.5072/a")
    assert [e["source"] for e in errors] == [source]
    assert errors[0]["uid"] == "10.5072/a"


def test_complete_metadata_is_findable() -> None:
    assert findable_errors(COMPLETE, doi="10.5072/a") == []


# --- the HTTP API -------------------------------------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(username=USER, password=PASSWORD, prefix=PREFIX)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", auth=(USER, PASSWORD)
    ) as c:
        yield c


def body(**attributes: Any) -> dict[str, Any]:
    return {"data": {"type": "dois", "attributes": attributes}}


def xml_of(doi: str, **overrides: Any) -> str:
    attributes = {"doi": doi, **COMPLETE, "publisher": {"name": "DESY"}, **overrides}
    return base64.b64encode(datacite_xml(attributes)).decode()


async def test_wrong_credentials_get_datacite_401(api: httpx.AsyncClient) -> None:
    response = await api.put("/dois/10.5072/a", json=body(**COMPLETE), auth=(USER, "wrong"))
    assert response.status_code == 401
    assert response.json() == {"errors": [{"status": "401", "title": "Bad credentials."}]}
    assert response.headers["content-type"].startswith("application/vnd.api+json")


async def test_put_creates_then_updates(api: httpx.AsyncClient) -> None:
    created = await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))
    updated = await api.put("/dois/10.5072/a", json=body(titles=[{"title": "New"}]))
    assert (created.status_code, updated.status_code) == (201, 200)
    attributes = updated.json()["data"]["attributes"]
    assert attributes["state"] == "findable"
    assert attributes["titles"] == [{"title": "New"}]
    assert attributes["creators"] == COMPLETE["creators"]


async def test_findable_doi_without_url_is_refused_with_datacite_errors(
    api: httpx.AsyncClient,
) -> None:
    response = await api.put(
        "/dois/10.5072/a", json=body(**{**COMPLETE, "url": None}, event="publish")
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"source": "url", "title": "Can't be blank", "uid": "10.5072/a"}
    ]
    assert (await api.get("/dois/10.5072/a")).status_code == 404


async def test_draft_needs_nothing_but_the_doi_and_can_be_deleted(api: httpx.AsyncClient) -> None:
    assert (await api.put("/dois/10.5072/draft", json=body())).status_code == 201
    assert (await api.delete("/dois/10.5072/draft")).status_code == 204
    assert (await api.get("/dois/10.5072/draft")).status_code == 404


async def test_findable_doi_cannot_be_deleted(api: httpx.AsyncClient) -> None:
    await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))
    assert (await api.delete("/dois/10.5072/a")).status_code == 405


async def test_foreign_prefix_is_forbidden(api: httpx.AsyncClient) -> None:
    response = await api.put("/dois/10.1234/a", json=body(**COMPLETE, event="publish"))
    assert response.status_code == 403


async def test_post_refuses_a_taken_doi(api: httpx.AsyncClient) -> None:
    first = await api.post("/dois", json=body(doi="10.5072/a", **COMPLETE, event="publish"))
    again = await api.post("/dois", json=body(doi="10.5072/a", **COMPLETE, event="publish"))
    assert (first.status_code, again.status_code) == (201, 422)
    assert again.json()["errors"][0]["title"] == "This DOI has already been taken"


async def test_invalid_xml_is_refused_with_the_xsd_messages(api: httpx.AsyncClient) -> None:
    xml = xml_of("10.5072/a", types={"resourceTypeGeneral": "Data"})
    response = await api.put("/dois/10.5072/a", json=body(**COMPLETE, xml=xml, event="publish"))
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["source"] == "xml"
    assert "resourceTypeGeneral" in error["title"] and "'Data'" in error["title"]


async def test_xml_alone_supplies_the_mandatory_metadata_and_is_returned(
    api: httpx.AsyncClient,
) -> None:
    xml = xml_of("10.5072/a")
    response = await api.put(
        "/dois/10.5072/a", json=body(xml=xml, url=COMPLETE["url"], event="publish")
    )
    assert response.status_code == 201
    fetched = (await api.get("/dois/10.5072/a")).json()["data"]["attributes"]
    assert fetched["state"] == "findable"
    assert base64.b64decode(fetched["xml"]) == base64.b64decode(xml)


async def test_json_metadata_is_served_as_valid_xml_too(api: httpx.AsyncClient) -> None:
    await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))
    fetched = (await api.get("/dois/10.5072/a")).json()["data"]["attributes"]
    resource = assert_valid(base64.b64decode(fetched["xml"]))
    assert etree.QName(resource).localname == "resource"


async def test_listing_filters_by_state(api: httpx.AsyncClient) -> None:
    await api.put("/dois/10.5072/draft", json=body())
    await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))
    listing = (await api.get("/dois", params={"state": "findable"})).json()
    assert [d["id"] for d in listing["data"]] == ["10.5072/a"]


async def test_faults_are_consumed_one_per_request_and_requests_are_logged(
    api: httpx.AsyncClient,
) -> None:
    await api.post(
        "/_standin/faults", json=[{"status": 429, "headers": {"Retry-After": "1"}}, {"status": 503}]
    )
    throttled = await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))
    unavailable = await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))
    accepted = await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))

    assert [throttled.status_code, unavailable.status_code, accepted.status_code] == [429, 503, 201]
    assert throttled.headers["retry-after"] == "1"
    log = (await api.get("/_standin/requests")).json()
    assert [(r["method"], r["event"], r["status"], r["state"]) for r in log] == [
        ("PUT", "publish", 429, None),
        ("PUT", "publish", 503, None),
        ("PUT", "publish", 201, "findable"),
    ]


async def test_refused_update_leaves_a_findable_doi_as_it_was(api: httpx.AsyncClient) -> None:
    await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))
    refused = await api.put("/dois/10.5072/a", json=body(url="not a url", titles=[{"title": "B"}]))

    assert refused.status_code == 422
    kept = (await api.get("/dois/10.5072/a")).json()["data"]["attributes"]
    assert (kept["url"], kept["titles"]) == (COMPLETE["url"], COMPLETE["titles"])
    log = (await api.get("/_standin/requests")).json()
    assert (log[1]["status"], log[1]["state"]) == (422, "findable")


async def test_throttling_says_when_to_come_back(api: httpx.AsyncClient) -> None:
    await api.post("/_standin/faults", json=[{"status": 429}])
    throttled = await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))
    assert throttled.status_code == 429
    assert float(throttled.headers["retry-after"]) > 0
    assert throttled.json()["errors"][0]["title"] == "Too many requests."


async def test_outage_refuses_every_request_until_it_ends(api: httpx.AsyncClient) -> None:
    await api.post("/_standin/outage", json={"seconds": 60, "status": 503})
    during = [await api.put("/dois/10.5072/a", json=body(**COMPLETE)) for _ in range(3)]
    await api.post("/_standin/outage", json={"seconds": 0})
    after = await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))

    assert [r.status_code for r in during] == [503, 503, 503]
    assert after.status_code == 201


async def test_hide_moves_findable_to_registered_and_is_ignored_on_a_draft(
    api: httpx.AsyncClient,
) -> None:
    await api.put("/dois/10.5072/draft", json=body())
    await api.put("/dois/10.5072/a", json=body(**COMPLETE, event="publish"))

    hidden_draft = await api.put("/dois/10.5072/draft", json=body(event="hide"))
    hidden = await api.put("/dois/10.5072/a", json=body(event="hide"))
    hidden_again = await api.put("/dois/10.5072/a", json=body(event="hide"))
    deleted = await api.delete("/dois/10.5072/a")

    assert hidden_draft.json()["data"]["attributes"]["state"] == "draft"
    assert hidden.json()["data"]["attributes"]["state"] == "registered"
    assert hidden_again.json()["data"]["attributes"]["state"] == "registered"
    assert hidden.json()["data"]["attributes"]["titles"] == COMPLETE["titles"]  # metadata kept
    assert deleted.status_code == 405  # a registered DOI is permanent
