"""OAI-PMH 2.0 request validation (§3.1, §4): verbs, arguments, datestamps, error codes. Pure.

Arguments arrive as the raw multi-dict (`request.query_params.multi_items()` or the form's), because
a repeated argument is an error the spec wants reported, and a plain dict would hide it. All
argument errors of a request are reported together (several `<error>` elements are allowed).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum


class ErrorCode(StrEnum):
    """The eight codes `OAI-PMHerrorcodeType` allows."""

    BAD_ARGUMENT = "badArgument"
    BAD_RESUMPTION_TOKEN = "badResumptionToken"
    BAD_VERB = "badVerb"
    CANNOT_DISSEMINATE_FORMAT = "cannotDisseminateFormat"
    ID_DOES_NOT_EXIST = "idDoesNotExist"
    NO_RECORDS_MATCH = "noRecordsMatch"
    NO_METADATA_FORMATS = "noMetadataFormats"
    NO_SET_HIERARCHY = "noSetHierarchy"


ARGUMENT_ERRORS = frozenset({ErrorCode.BAD_VERB, ErrorCode.BAD_ARGUMENT})
"""Errors after which the `request` element carries no attributes (§3.2)."""


@dataclass(frozen=True)
class OaiError:
    code: ErrorCode
    message: str


class OaiProtocolError(Exception):
    """One or more OAI-PMH errors; the response is an error document sent with HTTP 200."""

    def __init__(self, *errors: OaiError) -> None:
        super().__init__("; ".join(f"{e.code}: {e.message}" for e in errors))
        self.errors = errors

    @classmethod
    def of(cls, code: ErrorCode, message: str) -> OaiProtocolError:
        return cls(OaiError(code, message))


class Granularity(StrEnum):
    DAY = "YYYY-MM-DD"
    SECONDS = "YYYY-MM-DDThh:mm:ssZ"


@dataclass(frozen=True)
class VerbArguments:
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    exclusive: str | None = None

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional | ({self.exclusive} if self.exclusive else set())


_LIST = VerbArguments(
    required=frozenset({"metadataPrefix"}),
    optional=frozenset({"from", "until", "set"}),
    exclusive="resumptionToken",
)

VERBS: dict[str, VerbArguments] = {
    "Identify": VerbArguments(),
    "ListMetadataFormats": VerbArguments(optional=frozenset({"identifier"})),
    "ListSets": VerbArguments(exclusive="resumptionToken"),
    "GetRecord": VerbArguments(required=frozenset({"identifier", "metadataPrefix"})),
    "ListIdentifiers": _LIST,
    "ListRecords": _LIST,
}

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_METADATA_PREFIX = re.compile(r"[A-Za-z0-9\-_.!~*'()]+")
_SET_SPEC = re.compile(r"[A-Za-z0-9\-_.!~*'()]+(:[A-Za-z0-9\-_.!~*'()]+)*")


@dataclass(frozen=True)
class OaiRequest:
    """A request whose arguments are all valid for its verb."""

    verb: str
    arguments: dict[str, str] = field(default_factory=dict)
    identifier: str | None = None
    metadata_prefix: str | None = None
    set_spec: str | None = None
    from_: datetime | None = None
    until: datetime | None = None
    resumption_token: str | None = None

    @property
    def request_attributes(self) -> dict[str, str]:
        """Attributes of the `request` element: the verb and every argument as received."""
        return {"verb": self.verb, **self.arguments}


def format_datestamp(moment: datetime) -> str:
    """`YYYY-MM-DDThh:mm:ssZ` in UTC, the only form this repository emits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datestamp(value: str) -> tuple[datetime, Granularity]:
    """A `from`/`until` value in either granularity; anything else raises ValueError.

    The XSD would accept fractions and offsets; the protocol does not (§3.3.1), so they are
    refused here.
    """
    if _SECONDS.fullmatch(value):
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return moment, Granularity.SECONDS
    if _DAY.fullmatch(value):
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC), Granularity.DAY
    raise ValueError(value)


def parse_request(items: Iterable[tuple[str, str]]) -> OaiRequest:
    """Validate a request's raw arguments; raises `OaiProtocolError` with every problem found."""
    items = list(items)
    verbs = [value for key, value in items if key == "verb"]
    if not verbs:
        raise OaiProtocolError.of(
            ErrorCode.BAD_VERB, f"The request has no verb; use one of {', '.join(VERBS)}."
        )
    if len(verbs) > 1:
        raise OaiProtocolError.of(
            ErrorCode.BAD_VERB, f"The verb argument is repeated ({', '.join(verbs)}); send one."
        )
    verb = verbs[0]
    if verb not in VERBS:
        raise OaiProtocolError.of(
            ErrorCode.BAD_VERB,
            f"{verb!r} is not an OAI-PMH verb; use one of {', '.join(VERBS)}.",
        )
    spec = VERBS[verb]
    errors: list[OaiError] = []

    def bad(message: str) -> None:
        errors.append(OaiError(ErrorCode.BAD_ARGUMENT, message))

    pairs = [(key, value) for key, value in items if key != "verb"]
    counts = Counter(key for key, _ in pairs)
    for key, count in counts.items():
        if count > 1:
            bad(f"Argument {key!r} is repeated {count} times; send it once.")
    arguments = dict(reversed(pairs))
    for key in sorted(arguments.keys() - spec.allowed):
        bad(f"{key!r} is not an argument of {verb}.")
    if spec.exclusive and spec.exclusive in arguments:
        others = sorted(arguments.keys() - {spec.exclusive})
        if others:
            bad(f"{spec.exclusive} is exclusive; it cannot be combined with {', '.join(others)}.")
    else:
        for key in sorted(spec.required - arguments.keys()):
            bad(f"{verb} requires the argument {key!r}.")
    for key, value in arguments.items():
        if key in spec.allowed and value == "":
            bad(f"Argument {key!r} is empty.")

    prefix = arguments.get("metadataPrefix") or None
    if prefix is not None and not _METADATA_PREFIX.fullmatch(prefix):
        bad(f"metadataPrefix {prefix!r} contains characters a metadataPrefix cannot have.")
    set_spec = arguments.get("set") or None
    if set_spec is not None and not _SET_SPEC.fullmatch(set_spec):
        bad(f"set {set_spec!r} is not a setSpec (colon-separated unreserved characters).")
    from_, until = _time_window(arguments, bad)

    if errors:
        raise OaiProtocolError(*errors)
    return OaiRequest(
        verb=verb,
        arguments=arguments,
        identifier=arguments.get("identifier"),
        metadata_prefix=prefix,
        set_spec=set_spec,
        from_=from_,
        until=until,
        resumption_token=arguments.get("resumptionToken"),
    )


def _time_window(
    arguments: dict[str, str], bad: Callable[[str], None]
) -> tuple[datetime | None, datetime | None]:
    """Inclusive bounds; a day `until` covers the whole day (up to 23:59:59)."""
    parsed: dict[str, tuple[datetime, Granularity]] = {}
    for key in ("from", "until"):
        value = arguments.get(key)
        if not value:
            continue
        try:
            parsed[key] = parse_datestamp(value)
        except ValueError:
            bad(
                f"{key}={value!r} is not a UTC datestamp in a supported granularity "
                "(YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ, no fractions or offsets)."
            )
    from_ = parsed["from"][0] if "from" in parsed else None
    until = None
    if "until" in parsed:
        until, granularity = parsed["until"]
        if granularity is Granularity.DAY:
            until += timedelta(days=1, seconds=-1)
    if "from" in parsed and "until" in parsed:
        if parsed["from"][1] is not parsed["until"][1]:
            bad("from and until use different granularities; use the same for both.")
        elif from_ is not None and until is not None and from_ > until:
            bad(f"from ({arguments['from']}) is later than until ({arguments['until']}).")
    return from_, until
