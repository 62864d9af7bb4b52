"""Argument validation (OAI-PMH §3.1, §4): every badVerb and badArgument case, and valid input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scicat_oai_provider.protocol import ErrorCode, OaiProtocolError, parse_request


def codes_of(items: list[tuple[str, str]]) -> list[ErrorCode]:
    with pytest.raises(OaiProtocolError) as raised:
        parse_request(items)
    return [e.code for e in raised.value.errors]


@pytest.mark.parametrize(
    "items",
    [
        [],
        [("metadataPrefix", "oai_dc")],
        [("verb", "ListAll")],
        [("verb", "")],
        [("verb", "identify")],
        [("verb", "Identify"), ("verb", "Identify")],
        [("verb", "Identify"), ("verb", "ListSets")],
    ],
    ids=["no-arguments", "no-verb", "unknown", "empty", "wrong-case", "repeated", "two-verbs"],
)
def test_missing_unknown_or_repeated_verb_is_bad_verb(items: list[tuple[str, str]]) -> None:
    assert codes_of(items) == [ErrorCode.BAD_VERB]


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([("verb", "GetRecord"), ("identifier", "oai:x.org:1")], 1),
        ([("verb", "GetRecord")], 2),
        ([("verb", "ListRecords")], 1),
        ([("verb", "ListIdentifiers"), ("from", "2024-01-01")], 1),
    ],
    ids=["GetRecord-without-prefix", "GetRecord-without-both", "ListRecords", "only-from"],
)
def test_missing_required_argument_is_bad_argument(
    items: list[tuple[str, str]], expected: int
) -> None:
    assert codes_of(items) == [ErrorCode.BAD_ARGUMENT] * expected


@pytest.mark.parametrize(
    "items",
    [
        [("verb", "Identify"), ("metadataPrefix", "oai_dc")],
        [("verb", "ListSets"), ("set", "a")],
        [("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("identifier", "oai:x.org:1")],
        [("verb", "GetRecord"), ("identifier", "i"), ("metadataPrefix", "oai_dc"), ("x", "1")],
    ],
    ids=["Identify-with-prefix", "ListSets-with-set", "list-with-identifier", "unknown-name"],
)
def test_illegal_or_extra_argument_is_bad_argument(items: list[tuple[str, str]]) -> None:
    assert codes_of(items) == [ErrorCode.BAD_ARGUMENT]


def test_repeated_argument_is_bad_argument_even_with_equal_values() -> None:
    items = [("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("metadataPrefix", "oai_dc")]
    with pytest.raises(OaiProtocolError) as raised:
        parse_request(items)
    [error] = raised.value.errors
    assert error.code is ErrorCode.BAD_ARGUMENT
    assert "repeated" in error.message


@pytest.mark.parametrize(
    "value",
    [
        "2024-13-01",
        "2024-02-30",
        "2024-1-1",
        "24-01-01",
        "2024-01-01T10:00Z",
        "2024-01-01T10:00:00",
        "2024-01-01T10:00:00.5Z",
        "2024-01-01T10:00:00+01:00",
        "2024-01-01 10:00:00Z",
        "yesterday",
    ],
)
def test_malformed_or_too_fine_datestamp_is_bad_argument(value: str) -> None:
    assert codes_of(
        [("verb", "ListIdentifiers"), ("metadataPrefix", "oai_dc"), ("from", value)]
    ) == [ErrorCode.BAD_ARGUMENT]


def test_mixed_granularities_are_bad_argument() -> None:
    items = [
        ("verb", "ListRecords"),
        ("metadataPrefix", "oai_dc"),
        ("from", "2024-01-01"),
        ("until", "2024-02-01T00:00:00Z"),
    ]
    assert codes_of(items) == [ErrorCode.BAD_ARGUMENT]


@pytest.mark.parametrize(
    ("from_", "until"),
    [("2024-01-02", "2024-01-01"), ("2024-01-01T10:00:01Z", "2024-01-01T10:00:00Z")],
)
def test_from_later_than_until_is_bad_argument(from_: str, until: str) -> None:
    items = [
        ("verb", "ListRecords"),
        ("metadataPrefix", "oai_dc"),
        ("from", from_),
        ("until", until),
    ]
    assert codes_of(items) == [ErrorCode.BAD_ARGUMENT]


@pytest.mark.parametrize("verb", ["ListRecords", "ListIdentifiers", "ListSets"])
def test_resumption_token_with_other_arguments_is_bad_argument(verb: str) -> None:
    items = [("verb", verb), ("resumptionToken", "abc"), ("from", "2024-01-01")]
    if verb != "ListSets":
        items.append(("metadataPrefix", "oai_dc"))
    assert ErrorCode.BAD_ARGUMENT in codes_of(items)
    assert set(codes_of(items)) == {ErrorCode.BAD_ARGUMENT}


@pytest.mark.parametrize(
    "items",
    [
        [("verb", "ListRecords"), ("metadataPrefix", "")],
        [("verb", "ListRecords"), ("metadataPrefix", "oai dc")],
        [("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("set", "facility desy")],
        [("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("set", "facility:")],
        [("verb", "ListSets"), ("resumptionToken", "")],
    ],
    ids=["empty-prefix", "prefix-with-space", "set-with-space", "set-empty-segment", "empty-token"],
)
def test_empty_or_illegal_values_are_bad_argument(items: list[tuple[str, str]]) -> None:
    assert set(codes_of(items)) == {ErrorCode.BAD_ARGUMENT}


def test_every_argument_error_is_reported_at_once() -> None:
    items = [("verb", "ListRecords"), ("from", "bad"), ("until", "worse"), ("foo", "1")]
    assert codes_of(items) == [ErrorCode.BAD_ARGUMENT] * 4


def test_day_until_covers_the_whole_day_and_from_equal_until_is_valid() -> None:
    request = parse_request(
        [
            ("verb", "ListIdentifiers"),
            ("metadataPrefix", "oai_dc"),
            ("from", "2024-01-01"),
            ("until", "2024-01-01"),
        ]
    )
    assert request.from_ == datetime(2024, 1, 1, tzinfo=UTC)
    assert request.until == datetime(2024, 1, 1, 23, 59, 59, tzinfo=UTC)


def test_seconds_bounds_are_kept_exactly_and_request_attributes_echo_the_arguments() -> None:
    request = parse_request(
        [
            ("verb", "ListRecords"),
            ("metadataPrefix", "oai_datacite"),
            ("set", "facility:desy"),
            ("until", "2024-01-01T10:00:00Z"),
        ]
    )
    assert request.until == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert request.from_ is None
    assert request.set_spec == "facility:desy"
    assert request.request_attributes == {
        "verb": "ListRecords",
        "metadataPrefix": "oai_datacite",
        "set": "facility:desy",
        "until": "2024-01-01T10:00:00Z",
    }


def test_resumption_token_alone_is_valid_without_metadata_prefix() -> None:
    request = parse_request([("verb", "ListRecords"), ("resumptionToken", "abc.def")])
    assert request.resumption_token == "abc.def"
    assert request.metadata_prefix is None
