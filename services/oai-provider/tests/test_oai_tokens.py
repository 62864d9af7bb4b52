"""Signed, stateless resumption tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scicat_oai_provider.domain import ListQuery, RecordKey
from scicat_oai_provider.tokens import HarvestPosition, InvalidToken, TokenCodec

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
POSITION = HarvestPosition(
    verb="ListRecords",
    query=ListQuery("oai_dc", "facility:desy", datetime(2024, 1, 1, tzinfo=UTC), NOW),
    after=RecordKey(datetime(2024, 3, 1, 12, tzinfo=UTC), "oai:x.org:10.5072/a"),
    cursor=100,
    complete_list_size=2_500,
)


def codec(secret: str = "s3cret") -> TokenCodec:
    return TokenCodec(secret, ttl=timedelta(hours=24))


def test_token_carries_the_frozen_query_and_position() -> None:
    issued = codec().issue(POSITION, now=NOW)
    assert issued.expires == NOW + timedelta(hours=24)
    assert codec().read(issued.value, verb="ListRecords", now=NOW) == POSITION


def test_token_is_replayable_until_it_expires() -> None:
    token = codec().issue(POSITION, now=NOW).value
    later = NOW + timedelta(hours=23)
    assert codec().read(token, verb="ListRecords", now=later) == codec().read(
        token, verb="ListRecords", now=later
    )


def test_expired_token_is_refused() -> None:
    token = codec().issue(POSITION, now=NOW).value
    with pytest.raises(InvalidToken, match="expired"):
        codec().read(token, verb="ListRecords", now=NOW + timedelta(hours=24, seconds=1))


@pytest.mark.parametrize(
    "mutate", [lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"), lambda t: "x" + t]
)
def test_tampered_token_is_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    token = codec().issue(POSITION, now=NOW).value
    with pytest.raises(InvalidToken, match="altered"):
        codec().read(mutate(token), verb="ListRecords", now=NOW)


def test_token_signed_with_another_secret_is_refused() -> None:
    token = codec("other").issue(POSITION, now=NOW).value
    with pytest.raises(InvalidToken):
        codec().read(token, verb="ListRecords", now=NOW)


def test_token_of_another_verb_is_refused() -> None:
    token = codec().issue(POSITION, now=NOW).value
    with pytest.raises(InvalidToken, match="ListRecords list"):
        codec().read(token, verb="ListIdentifiers", now=NOW)
