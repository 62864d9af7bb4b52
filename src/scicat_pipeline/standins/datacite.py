"""A DataCite REST API stand-in: the DOI endpoints a minter uses, in memory, with fault injection.

It answers like `api.datacite.org` (JSON:API bodies, `application/vnd.api+json`, HTTP Basic auth,
DataCite's status codes and `errors` lists), enforces the rules in `datacite_rules`, and validates
DataCite XML against the kernel-4 XSD offline, so a client that passes here is wrong in production
only where DataCite's repository settings (allowed domains) differ.

Test hooks, outside DataCite's API:
- `POST /_standin/faults` takes a JSON list such as `[{"status": 429}, {"delay_seconds": 2}]`;
  each subsequent `/dois` request consumes one entry: it waits `delay_seconds`, then answers with
  `status` (and `errors`/`headers` when given) instead of handling the request.
- `POST /_standin/outage` takes `{"seconds": 2, "status": 503}`: for that long every `/dois` request
  is refused with `status` (DataCite down or rate-limiting everyone); 0 seconds ends it.
- `GET /_standin/requests` lists what was received (method, path, event, resulting state, status).

A 429 carries `Retry-After` (seconds), as from DataCite's rate limiter, unless the fault sets one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from lxml import etree
from pydantic import BaseModel, Field

from scicat_pipeline.standins.datacite_rules import (
    NOT_FOUND,
    DoiError,
    DoiRecord,
    State,
    check_doi,
    fill_from_xml,
    findable_errors,
    merge_attributes,
    next_state,
)

JSON_API = "application/vnd.api+json"
BAD_CREDENTIALS = [{"status": "401", "title": "Bad credentials."}]


class Outage(BaseModel):
    """DataCite refusing every request for a while."""

    seconds: float = Field(ge=0, le=600)
    status: int = Field(default=503, ge=400, le=599)


RETRY_AFTER_SECONDS = "1"


class Fault(BaseModel):
    """One injected answer: wait, then (if `status` is set) answer with it instead of the API."""

    status: int | None = Field(default=None, ge=100, le=599)
    delay_seconds: float = Field(default=0, ge=0, le=60)
    errors: list[dict[str, Any]] | None = None
    headers: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    event: str | None
    state: str | None
    status: int


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any] | None
    doi: str | None


def kernel_schema(schemas_dir: Path | None = None) -> etree.XMLSchema:
    """The kernel-4 XSD, loaded without network access (its only import is a relative path)."""
    if schemas_dir is None:
        from scicat_pipeline.testing.xsd import shared_schemas_dir

        schemas_dir = shared_schemas_dir()
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    path = schemas_dir / "datacite" / "kernel-4" / "metadata.xsd"
    return etree.XMLSchema(etree.parse(str(path), parser))


class DataCiteStandin:
    """The in-memory repository account: its DOIs, pending faults and the request log."""

    def __init__(self, *, username: str, password: str, prefix: str, schema: etree.XMLSchema):
        self.username = username
        self.password = password
        self.prefix = prefix
        self.schema = schema
        self.dois: dict[str, DoiRecord] = {}
        self.faults: deque[Fault] = deque()
        self.outage: tuple[float, int] | None = None  # (monotonic end, status)
        self.requests: list[ReceivedRequest] = []

    def start_outage(self, outage: Outage) -> None:
        loop_time = asyncio.get_running_loop().time()
        self.outage = (loop_time + outage.seconds, outage.status) if outage.seconds else None

    def _outage_fault(self) -> Fault | None:
        if self.outage is None:
            return None
        until, status = self.outage
        if asyncio.get_running_loop().time() >= until:
            self.outage = None
            return None
        return Fault(status=status)

    async def serve(
        self,
        request: Request,
        action: Callable[[dict[str, Any] | None], Outcome],
        *,
        doi: str = "",
    ) -> Response:
        """Faults first (a rate limiter sits in front of auth), then auth, then the action.

        The request log names the state of the DOI afterwards (`doi`: the one in the path).
        """
        fault = self._outage_fault() or (self.faults.popleft() if self.faults else None)
        raw = await request.body()
        event = _event_of(raw)
        if fault is not None and fault.delay_seconds:
            await asyncio.sleep(fault.delay_seconds)
        headers: dict[str, str] = {}
        if fault is not None and fault.status is not None:
            outcome = Outcome(
                fault.status, {"errors": fault.errors or _default_errors(fault)}, None
            )
            headers = dict(fault.headers)
            if fault.status == 429:
                headers.setdefault("Retry-After", RETRY_AFTER_SECONDS)
        elif not self._authorised(request):
            outcome = Outcome(401, {"errors": BAD_CREDENTIALS}, None)
        else:
            try:
                outcome = action(_json_body(raw) if raw else None)
            except DoiError as error:
                outcome = Outcome(error.status, {"errors": error.errors}, None)
        record = self.dois.get(outcome.doi or doi.lower())
        self.requests.append(
            ReceivedRequest(
                method=request.method,
                path=request.url.path,
                event=event,
                state=record.state.value if record else None,
                status=outcome.status,
            )
        )
        if outcome.body is None:
            return Response(status_code=outcome.status, headers=headers)
        return Response(
            json.dumps(outcome.body), outcome.status, headers=headers, media_type=JSON_API
        )

    def _authorised(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(username, self.username) and secrets.compare_digest(
            password, self.password
        )

    def upsert(self, doi: str, body: dict[str, Any] | None, *, create_only: bool) -> Outcome:
        """PUT (upsert, 201 new / 200 existing) and POST (create only) share the rules."""
        attributes = _attributes(body)
        doi = doi or str(attributes.get("doi") or "")
        if not doi and attributes.get("prefix"):
            doi = f"{attributes['prefix']}/{secrets.token_hex(4)}"
        doi = check_doi(doi, prefix=self.prefix)
        existing = self.dois.get(doi)
        if existing is not None and create_only:
            raise DoiError(
                422, [{"source": "doi", "title": "This DOI has already been taken", "uid": doi}]
            )
        current = existing or DoiRecord(doi=doi)
        state = next_state(current.state, attributes.get("event"), doi=doi)
        merged = merge_attributes(current.attributes, attributes)
        xml = self._supplied_xml(attributes, doi)
        if state is not State.DRAFT:
            resource = etree.fromstring(xml) if xml else None
            errors = findable_errors(
                fill_from_xml(merged, resource) if resource is not None else merged, doi=doi
            )
            if errors:
                raise DoiError(422, errors)
            xml = xml or self._generated_xml(merged, doi)
        now = datetime.now(UTC)
        self.dois[doi] = DoiRecord(
            doi=doi,
            state=state,
            attributes=merged,
            xml=xml or current.xml,
            created=current.created,
            updated=now,
            registered=current.registered or (now if state is not State.DRAFT else None),
        )
        return Outcome(201 if existing is None else 200, {"data": self.resource(doi)}, doi)

    def _supplied_xml(self, attributes: dict[str, Any], doi: str) -> bytes | None:
        encoded = attributes.get("xml")
        if not encoded:
            return None
        try:
            xml = base64.b64decode(encoded, validate=True)
            element = etree.fromstring(
                xml, etree.XMLParser(no_network=True, resolve_entities=False)
            )
        except (binascii.Error, ValueError, etree.XMLSyntaxError) as error:
            raise DoiError(
                422, [{"source": "xml", "title": f"Is invalid: {error}", "uid": doi}]
            ) from error
        self._validate(element, doi)
        return xml

    def _generated_xml(self, attributes: dict[str, Any], doi: str) -> bytes:
        """DataCite serialises JSON metadata to XML and validates that too; so do we."""
        from scicat_schemas.datacite import datacite_element, to_bytes

        try:
            element = datacite_element({**attributes, "doi": doi})
        except (KeyError, TypeError, ValueError) as error:
            problem = f"Could not be serialised to DataCite XML: missing or malformed {error}"
            raise DoiError(422, [{"source": "metadata", "title": problem, "uid": doi}]) from error
        self._validate(element, doi)
        xml: bytes = to_bytes(element)
        return xml

    def _validate(self, element: etree._Element, doi: str) -> None:
        if not self.schema.validate(element):
            raise DoiError(
                422,
                [
                    {
                        "source": "xml",
                        "title": f"{e.message} at line {e.line}, column {e.column}",
                        "uid": doi,
                    }
                    for e in self.schema.error_log
                ],
            )

    def get(self, doi: str) -> Outcome:
        if doi.lower() not in self.dois:
            raise DoiError(404, NOT_FOUND)
        return Outcome(200, {"data": self.resource(doi.lower())}, doi.lower())

    def delete(self, doi: str) -> Outcome:
        record = self.dois.get(doi.lower())
        if record is None:
            raise DoiError(404, NOT_FOUND)
        if record.state is not State.DRAFT:
            raise DoiError(405, [{"status": "405", "title": "Method not allowed"}])
        del self.dois[record.doi]
        return Outcome(204, None, None)

    def listing(self, state: str | None) -> Outcome:
        data = [self.resource(d) for d, r in self.dois.items() if state in (None, r.state.value)]
        return Outcome(200, {"data": data, "meta": {"total": len(data)}}, None)

    def resource(self, doi: str) -> dict[str, Any]:
        """A DOI as DataCite returns it: metadata plus state, base64 XML and timestamps."""
        record = self.dois[doi]
        prefix, _, suffix = doi.partition("/")
        attributes = {
            **record.attributes,
            "doi": doi,
            "prefix": prefix,
            "suffix": suffix,
            "state": record.state.value,
            "xml": base64.b64encode(record.xml).decode() if record.xml else None,
            "created": _iso(record.created),
            "updated": _iso(record.updated),
            "registered": _iso(record.registered) if record.registered else None,
        }
        return {"id": doi, "type": "dois", "attributes": attributes, "relationships": {}}


def create_app(
    *, username: str, password: str, prefix: str, schemas_dir: Path | None = None
) -> FastAPI:
    """The stand-in for one DataCite repository account owning `prefix`."""
    standin = DataCiteStandin(
        username=username, password=password, prefix=prefix, schema=kernel_schema(schemas_dir)
    )
    app = FastAPI(title="DataCite REST API stand-in", docs_url=None, redoc_url=None)
    app.state.standin = standin

    @app.get("/heartbeat")
    async def heartbeat() -> Response:
        return Response("OK", media_type="text/plain")

    @app.post("/dois")
    async def create_doi(request: Request) -> Response:
        return await standin.serve(request, lambda body: standin.upsert("", body, create_only=True))

    @app.get("/dois")
    async def list_dois(request: Request, state: str | None = None) -> Response:
        return await standin.serve(request, lambda _: standin.listing(state))

    @app.put("/dois/{doi:path}")
    async def put_doi(doi: str, request: Request) -> Response:
        return await standin.serve(
            request, lambda body: standin.upsert(doi, body, create_only=False), doi=doi
        )

    @app.get("/dois/{doi:path}")
    async def get_doi(doi: str, request: Request) -> Response:
        return await standin.serve(request, lambda _: standin.get(doi), doi=doi)

    @app.delete("/dois/{doi:path}")
    async def delete_doi(doi: str, request: Request) -> Response:
        return await standin.serve(request, lambda _: standin.delete(doi), doi=doi)

    @app.post("/_standin/faults", status_code=204)
    async def add_faults(faults: list[Fault]) -> None:
        standin.faults.extend(faults)

    @app.post("/_standin/outage", status_code=204)
    async def start_outage(outage: Outage) -> None:
        standin.start_outage(outage)

    @app.get("/_standin/requests")
    async def received() -> list[dict[str, Any]]:
        return [asdict(r) for r in standin.requests]

    return app


def _attributes(body: dict[str, Any] | None) -> dict[str, Any]:
    data = (body or {}).get("data")
    if not isinstance(data, dict) or not isinstance(data.get("attributes", {}), dict):
        raise DoiError(400, [{"status": "400", "title": "The request body needs a data object."}])
    return dict(data.get("attributes") or {})


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as error:
        raise DoiError(400, [{"status": "400", "title": f"Invalid JSON: {error}"}]) from error
    if not isinstance(body, dict):
        raise DoiError(400, [{"status": "400", "title": "The request body must be a JSON object."}])
    return body


def _event_of(raw: bytes) -> str | None:
    try:
        event = json.loads(raw)["data"]["attributes"]["event"]
    except (ValueError, KeyError, TypeError):
        return None
    return event if isinstance(event, str) else None


def _default_errors(fault: Fault) -> list[dict[str, Any]]:
    titles = {429: "Too many requests.", 503: "Service unavailable."}
    title = titles.get(fault.status or 0, "Injected failure.")
    return [{"status": str(fault.status), "title": title}]


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
