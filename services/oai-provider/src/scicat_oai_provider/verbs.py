"""Answers each OAI-PMH verb from the read model: validate → query the store → render.

Every outcome, errors included, is an XML document sent with HTTP 200 (§3.1.2.2); only an
unavailable store escapes as an exception (the app turns it into 503 + Retry-After, which
harvesters retry).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from scicat_oai_provider import responses
from scicat_oai_provider.domain import (
    METADATA_FORMATS,
    ListQuery,
    closed_until,
    oai_identifier,
    to_seconds,
    with_ancestors,
)
from scicat_oai_provider.protocol import (
    ARGUMENT_ERRORS,
    ErrorCode,
    OaiError,
    OaiProtocolError,
    OaiRequest,
    parse_request,
)
from scicat_oai_provider.responses import Envelope, RepositoryIdentity, ResumptionToken
from scicat_oai_provider.sets import SET_DESCRIPTIONS
from scicat_oai_provider.store import OaiRecordStore
from scicat_oai_provider.tokens import HarvestPosition, InvalidToken, TokenCodec


@dataclass(frozen=True)
class Repository:
    identity: RepositoryIdentity
    page_size: int
    tokens: TokenCodec

    @classmethod
    def build(
        cls,
        *,
        name: str,
        base_url: str,
        admin_email: str,
        repository_identifier: str,
        page_size: int,
        tokens: TokenCodec,
    ) -> Repository:
        identity = RepositoryIdentity(
            name=name,
            base_url=base_url,
            admin_email=admin_email,
            repository_identifier=repository_identifier,
            sample_identifier=oai_identifier(repository_identifier, "10.5072/example-dataset"),
        )
        return cls(identity=identity, page_size=page_size, tokens=tokens)


@dataclass(frozen=True)
class Answer:
    """The response body, with the verb and error codes for metrics and logs."""

    document: bytes
    verb: str
    error_codes: tuple[str, ...] = ()


VerbHandler = Callable[[OaiRequest, Repository, OaiRecordStore, Envelope], Awaitable[bytes]]


async def respond(
    items: Iterable[tuple[str, str]],
    *,
    repository: Repository,
    store: OaiRecordStore,
    now: datetime,
) -> Answer:
    """The OAI-PMH response to one request's raw arguments, as of `now`."""
    response_date = to_seconds(now)
    base_url = repository.identity.base_url
    try:
        request = parse_request(items)
    except OaiProtocolError as error:
        return _errors(Envelope(response_date, base_url, None), error.errors, verb="invalid")
    envelope = Envelope(response_date, base_url, request.request_attributes)
    try:
        document = await _HANDLERS[request.verb](request, repository, store, envelope)
    except OaiProtocolError as error:
        if any(e.code in ARGUMENT_ERRORS for e in error.errors):
            envelope = Envelope(response_date, base_url, None)
        return _errors(envelope, error.errors, verb=request.verb)
    return Answer(document, request.verb)


def _errors(envelope: Envelope, errors: tuple[OaiError, ...], *, verb: str) -> Answer:
    return Answer(
        responses.error_document(envelope, errors), verb, tuple(e.code.value for e in errors)
    )


async def _identify(
    request: OaiRequest, repository: Repository, store: OaiRecordStore, envelope: Envelope
) -> bytes:
    # An empty store's earliest datestamp is "now": every record stored later is stamped at
    # or after it, so it is a true lower bound that harvesters can plan windows from.
    earliest = await store.earliest_datestamp() or envelope.response_date
    return responses.identify_document(envelope, repository.identity, earliest_datestamp=earliest)


async def _list_metadata_formats(
    request: OaiRequest, repository: Repository, store: OaiRecordStore, envelope: Envelope
) -> bytes:
    if request.identifier is None:
        return responses.metadata_formats_document(envelope, METADATA_FORMATS.values())
    record = await store.get(request.identifier)
    if record is None:
        raise OaiProtocolError.of(
            ErrorCode.ID_DOES_NOT_EXIST, f"No item has the identifier {request.identifier!r}."
        )
    if not record.formats:
        raise OaiProtocolError.of(
            ErrorCode.NO_METADATA_FORMATS,
            f"{request.identifier} was withdrawn before it was ever disseminated here.",
        )
    return responses.metadata_formats_document(
        envelope, (METADATA_FORMATS[p] for p in record.formats if p in METADATA_FORMATS)
    )


async def _list_sets(
    request: OaiRequest, repository: Repository, store: OaiRecordStore, envelope: Envelope
) -> bytes:
    if request.resumption_token is not None:
        raise OaiProtocolError.of(
            ErrorCode.BAD_RESUMPTION_TOKEN,
            "This repository lists every set in one response and issues no ListSets tokens.",
        )
    entries = await store.set_entries()
    if not entries:
        raise OaiProtocolError.of(
            ErrorCode.NO_SET_HIERARCHY, "No record is in a set yet, so there is no set hierarchy."
        )
    return responses.sets_document(envelope, with_ancestors(entries), descriptions=SET_DESCRIPTIONS)


def _unknown_prefix(prefix: str) -> OaiError:
    return OaiError(
        ErrorCode.CANNOT_DISSEMINATE_FORMAT,
        f"metadataPrefix {prefix!r} is not disseminated here; use one of "
        f"{', '.join(METADATA_FORMATS)}.",
    )


async def _get_record(
    request: OaiRequest, repository: Repository, store: OaiRecordStore, envelope: Envelope
) -> bytes:
    assert request.identifier is not None and request.metadata_prefix is not None
    prefix = request.metadata_prefix
    errors: list[OaiError] = []
    if prefix not in METADATA_FORMATS:
        errors.append(_unknown_prefix(prefix))
    record = await store.get(request.identifier)
    if record is None:
        errors.append(
            OaiError(
                ErrorCode.ID_DOES_NOT_EXIST, f"No item has the identifier {request.identifier!r}."
            )
        )
    elif not errors and prefix not in record.formats:
        errors.append(
            OaiError(
                ErrorCode.CANNOT_DISSEMINATE_FORMAT,
                f"{request.identifier} is not available as {prefix}.",
            )
        )
    if errors or record is None:
        raise OaiProtocolError(*errors)
    return responses.record_document(envelope, record, prefix)


async def _harvest_position(
    request: OaiRequest, repository: Repository, store: OaiRecordStore, envelope: Envelope
) -> HarvestPosition | ListQuery:
    """The continued position for a token, or the new query (with `until` frozen) otherwise."""
    if request.resumption_token is not None:
        try:
            return repository.tokens.read(
                request.resumption_token, verb=request.verb, now=envelope.response_date
            )
        except InvalidToken as error:
            raise OaiProtocolError.of(ErrorCode.BAD_RESUMPTION_TOKEN, str(error)) from error
    assert request.metadata_prefix is not None
    errors: list[OaiError] = []
    if request.metadata_prefix not in METADATA_FORMATS:
        errors.append(_unknown_prefix(request.metadata_prefix))
    if request.set_spec is not None and not await store.has_sets():
        errors.append(
            OaiError(
                ErrorCode.NO_SET_HIERARCHY,
                "No record is in a set yet, so set selection is not possible.",
            )
        )
    if errors:
        raise OaiProtocolError(*errors)
    return ListQuery(
        metadata_prefix=request.metadata_prefix,
        set_spec=request.set_spec,
        from_=request.from_,
        until=closed_until(request.until, envelope.response_date),
    )


async def _list(
    request: OaiRequest, repository: Repository, store: OaiRecordStore, envelope: Envelope
) -> bytes:
    """ListIdentifiers and ListRecords: one keyset page, then a token if more remain."""
    position = await _harvest_position(request, repository, store, envelope)
    if isinstance(position, HarvestPosition):
        query, after, cursor = position.query, position.after, position.cursor
        size, span = position.complete_list_size, position.span_seconds
    else:
        query, after, cursor, size, span = position, None, 0, 0, 0
    found = await store.page(
        query,
        after=after,
        limit=repository.page_size + 1,
        with_metadata=request.verb == "ListRecords",
        span_seconds=span,
    )
    records = found.entries
    if not records:
        rest = "the rest of this list (its records changed meanwhile)" if after else "the request"
        raise OaiProtocolError.of(ErrorCode.NO_RECORDS_MATCH, f"No record matches {rest}.")
    page = records[: repository.page_size]
    token: ResumptionToken | None = None
    if len(records) > repository.page_size:
        # Counted once per harvest; later pages carry it. Records that change during the harvest
        # leave the frozen list, so later pages' figure can be an overestimate, as §3.5 allows.
        size = size or await store.count(query, after=None)
        issued = repository.tokens.issue(
            HarvestPosition(
                request.verb, query, page[-1].key, cursor + len(page), size, found.span_seconds
            ),
            now=envelope.response_date,
        )
        lower_bound = cursor + len(records)
        token = ResumptionToken(issued.value, max(size, lower_bound), cursor, issued.expires)
    elif cursor > 0:
        token = ResumptionToken("", cursor + len(page), cursor)
    return responses.list_document(envelope, verb=request.verb, entries=page, token=token)


_HANDLERS: dict[str, VerbHandler] = {
    "Identify": _identify,
    "ListMetadataFormats": _list_metadata_formats,
    "ListSets": _list_sets,
    "GetRecord": _get_record,
    "ListIdentifiers": _list,
    "ListRecords": _list,
}
