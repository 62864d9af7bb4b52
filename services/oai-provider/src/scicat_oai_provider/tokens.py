"""Stateless, signed resumption tokens (OAI-PMH §3.5) for keyset paging.

A token carries the whole harvest: verb, metadataPrefix, set, `from`, the `until` frozen at the
first request, the key `(datestamp, identifier)` of the last record delivered and how many were
delivered. Nothing is kept on the server, so any replica answers any token, and a token can be
re-issued (the latest and every earlier one keep working until they expire).

Why nothing that existed when the harvest began is lost or repeated:
- the list is ordered by `(datestamp, identifier)`, a unique key, and each page continues strictly
  after the last key delivered, so an unchanged record (its key never moves) is delivered exactly
  once, whatever is inserted, updated or deleted elsewhere meanwhile (unlike offset paging);
- `until` is frozen at the first request to the last fully passed second, so a record changed
  during the harvest gets a datestamp later than the frozen `until`: it leaves the list. If it
  was already delivered it is not repeated; if not, it is not in this list but is in the next
  incremental harvest, which starts `from` this harvest's first `responseDate` (inclusive), where
  the record now sits. OAI-PMH §3.5.1 allows exactly this: a record whose datestamp changed during
  the harvest "may or may not be included".
Signing (itsdangerous) makes tampering detectable; the expiry is inside the signed payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadData, URLSafeSerializer

from scicat_oai_provider.domain import ListQuery, RecordKey, to_seconds

_SALT = "scicat-oai-provider.resumption-token.v1"


class InvalidToken(ValueError):
    """A token this repository cannot continue; the message tells the harvester what to do."""


@dataclass(frozen=True)
class HarvestPosition:
    """Where a list continues: the frozen query, the last key delivered, how many delivered.

    `complete_list_size` is counted once, at the first request, and carried along: counting the
    rest of the list on every page would make a full harvest quadratic.
    """

    verb: str
    query: ListQuery
    after: RecordKey
    cursor: int
    complete_list_size: int
    span_seconds: int = 0
    """How much time the last page spanned; sizes the next page's query window (see store)."""


@dataclass(frozen=True)
class IssuedToken:
    value: str
    expires: datetime


class TokenCodec:
    def __init__(self, secret: str, *, ttl: timedelta) -> None:
        self._serializer = URLSafeSerializer(secret, salt=_SALT)
        self._ttl = ttl

    def issue(self, position: HarvestPosition, *, now: datetime) -> IssuedToken:
        expires = to_seconds(now) + self._ttl
        query = position.query
        payload = {
            "verb": position.verb,
            "prefix": query.metadata_prefix,
            "set": query.set_spec,
            "from": _timestamp(query.from_),
            "until": _timestamp(query.until),
            "after": [_timestamp(position.after.datestamp), position.after.identifier],
            "cursor": position.cursor,
            "size": position.complete_list_size,
            "span": position.span_seconds,
            "expires": _timestamp(expires),
        }
        return IssuedToken(str(self._serializer.dumps(payload)), expires)

    def read(self, token: str, *, verb: str, now: datetime) -> HarvestPosition:
        """The position a token continues from; `InvalidToken` when it cannot be honoured."""
        try:
            payload: Any = self._serializer.loads(token)
        except BadData as error:
            raise InvalidToken(
                "The resumptionToken was not issued by this repository or has been altered; "
                "restart the list without a token."
            ) from error
        try:
            expires = _moment(payload["expires"])
            position = HarvestPosition(
                verb=str(payload["verb"]),
                query=ListQuery(
                    metadata_prefix=str(payload["prefix"]),
                    set_spec=payload["set"],
                    from_=_moment(payload["from"]) if payload["from"] is not None else None,
                    until=_moment(payload["until"]),
                ),
                after=RecordKey(_moment(payload["after"][0]), str(payload["after"][1])),
                cursor=int(payload["cursor"]),
                complete_list_size=int(payload["size"]),
                span_seconds=int(payload["span"]),
            )
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise InvalidToken(
                "The resumptionToken has an unknown layout (issued by another version?); "
                "restart the list without a token."
            ) from error
        if now > expires:
            raise InvalidToken(
                f"The resumptionToken expired at {expires:%Y-%m-%dT%H:%M:%SZ}; "
                "restart the list without a token."
            )
        if position.verb != verb:
            raise InvalidToken(
                f"The resumptionToken continues a {position.verb} list, not {verb}; "
                f"use it with verb={position.verb}."
            )
        return position


def _timestamp(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def _moment(value: Any) -> datetime:
    if not isinstance(value, int):
        raise TypeError(f"expected epoch seconds, got {value!r}")
    return datetime.fromtimestamp(value, UTC)
