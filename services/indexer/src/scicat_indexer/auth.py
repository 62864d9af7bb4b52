"""Who is asking: OIDC bearer tokens (Keycloak-style) turned into a `Principal`.

A request without a token is anonymous and sees only published datasets. A request with a token
must prove it: the token's signature is checked against the issuer's JWKS (fetched with httpx,
never blocking the event loop, cached, refreshed when a token names a key id the cache does not
know, as after a key rotation), then `iss`, `exp`/`nbf` and, when configured, `aud`. The groups
claim (Keycloak's group mapper writes `/group` paths when "full group path" is on; the leading
`/` is dropped) decides which private datasets the caller sees through `ownerGroup` and
`accessGroups` (`query.visibility_filter` turns a principal into the filter of every query).

A token that fails any check is a 401 with `WWW-Authenticate: Bearer error="invalid_token"`, never
a silent downgrade to anonymous: a client with a broken token must learn it, not wonder why its
data vanished. When no issuer is configured every request is anonymous, the safe default: nothing
private is ever shown by a service that cannot check who is asking.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

import httpx
import jwt
import structlog
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from scicat_indexer.settings import OidcSettings

log = structlog.get_logger(__name__)

ASYMMETRIC_ALGORITHMS: Final = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
"""Signatures accepted: public-key ones only, so `none` and HMAC (alg confusion) never pass."""


@dataclass(frozen=True)
class Principal:
    """The caller: a subject with groups, or nobody (anonymous)."""

    subject: str | None
    groups: frozenset[str]

    @property
    def authenticated(self) -> bool:
        return self.subject is not None

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(subject=None, groups=frozenset())


class AuthProblem(BaseModel):
    detail: str = Field(description="Why the request was refused, in words a person can act on.")


BEARER_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    401: {
        "model": AuthProblem,
        "description": "The bearer token is invalid, expired or not for this service; "
        "send none to see published datasets only.",
        "headers": {
            "WWW-Authenticate": {
                "description": 'Bearer error="invalid_token" (or "invalid_request") with a '
                "description.",
                "schema": {"type": "string"},
            }
        },
    },
    503: {
        "model": AuthProblem,
        "description": "A dependency is unavailable (the search index, or the issuer's keys "
        "needed to check a token); retry later.",
    },
}
"""Answers `CurrentPrincipal` adds to a route: pass as `responses=` when including a router."""


def document_optional_bearer(app: FastAPI) -> None:
    """State in `app`'s OpenAPI document that the bearer token is optional, as it is.

    FastAPI lists a security scheme as required (`security: [{HTTPBearer: []}]`) even with
    `auto_error=False`; OpenAPI spells "optional" with an empty alternative, `{}`, which
    generated clients and schemathesis understand.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                security = operation.get("security") if isinstance(operation, dict) else None
                if security and {} not in security:
                    security.insert(0, {})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


class InvalidToken(Exception):
    """The bearer token cannot be trusted; the message says why (safe to show the caller)."""


class IssuerUnavailable(Exception):
    """The issuer's keys cannot be fetched and none are cached: tokens cannot be checked now."""


class TokenVerifier:
    """Verifies bearer tokens of one issuer; safe to share between concurrent requests."""

    def __init__(self, settings: OidcSettings) -> None:
        self._settings = settings
        self._keys: dict[str, _SigningKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_failure: IssuerUnavailable | None = None
        self._jwks_url: str | None = settings.jwks_url
        self._lock = asyncio.Lock()
        if settings.issuer is None:
            log.info("oidc.off", detail="no issuer configured: every request is anonymous")
        elif settings.audience is None:
            log.warning(
                "oidc.audience_unchecked",
                issuer=settings.issuer,
                detail="tokens of any client of this issuer are accepted; set OIDC__AUDIENCE",
            )

    @property
    def enabled(self) -> bool:
        return self._settings.issuer is not None

    async def principal(self, token: str) -> Principal:
        """The principal `token` proves, or `InvalidToken` / `IssuerUnavailable`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(f"the token is not a JWT: {error}") from error
        algorithm = header.get("alg")
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise InvalidToken(f"signature algorithm {algorithm!r} is not accepted")
        key = await self._key(header.get("kid"))
        if key.algorithm is not None and key.algorithm != algorithm:
            raise InvalidToken(f"key {key.key_id!r} signs with {key.algorithm}, not {algorithm}")
        claims = self._decode(token, key.jwk, algorithm)
        return Principal(subject=str(claims["sub"]), groups=self._groups(claims))

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        settings = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                issuer=settings.issuer,
                audience=settings.audience,
                leeway=settings.leeway_seconds,
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": settings.audience is not None,
                },
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error) or type(error).__name__) from error
        return claims

    def _groups(self, claims: Mapping[str, Any]) -> frozenset[str]:
        value = _claim(claims, self._settings.groups_claim)
        if value is None:
            return frozenset()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(group, str) for group in value):
            raise InvalidToken(
                f"claim {self._settings.groups_claim!r} must be a list of group names"
            )
        return frozenset(group.lstrip("/") for group in value if group.lstrip("/"))

    async def _key(self, kid: Any) -> _SigningKey:
        """The signing key `kid` names, refreshing the JWKS once when it is unknown or stale."""
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's key id (kid) is not a string")
        key = self._cached(kid)
        if key is not None and not self._stale():
            return key
        async with self._lock:
            key = self._cached(kid)
            if (key is None or self._stale()) and self._may_refresh():
                self._attempted_at = time.monotonic()
                try:
                    await self._refresh()
                except IssuerUnavailable as failure:
                    self._last_failure = failure
                    if not self._keys:
                        raise
                    log.warning("oidc.jwks_refresh_failed_using_cache", reason=str(failure))
                key = self._cached(kid)
        if key is None and not self._keys:
            raise self._last_failure or IssuerUnavailable("the issuer's keys are not known yet")
        if key is None:
            raise InvalidToken(f"no key with id {kid!r} in the issuer's JWKS")
        return key

    def _cached(self, kid: str | None) -> _SigningKey | None:
        if kid is None:
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _stale(self) -> bool:
        return (
            self._fetched_at is None
            or time.monotonic() - self._fetched_at > self._settings.jwks_cache_seconds
        )

    def _may_refresh(self) -> bool:
        """Fetch at most every `jwks_min_refresh_seconds`, failed attempts included.

        So neither forged key ids nor an issuer outage make every request hit the issuer.
        """
        return (
            self._attempted_at is None
            or time.monotonic() - self._attempted_at >= self._settings.jwks_min_refresh_seconds
        )

    async def _refresh(self) -> None:
        settings = self._settings
        try:
            async with httpx.AsyncClient(timeout=settings.timeout_seconds) as client:
                if self._jwks_url is None:
                    self._jwks_url = await self._discover(client)
                response = await client.get(self._jwks_url)
                response.raise_for_status()
                keys = _signing_keys(response.json())
        except (httpx.HTTPError, ValueError) as error:
            raise IssuerUnavailable(
                f"cannot fetch the signing keys of {settings.issuer}: {error}"
            ) from error
        self._keys = {key.key_id: key for key in keys}
        self._fetched_at = time.monotonic()
        log.info("oidc.jwks_fetched", url=self._jwks_url, keys=sorted(self._keys))

    async def _discover(self, client: httpx.AsyncClient) -> str:
        issuer = str(self._settings.issuer)
        response = await client.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
        response.raise_for_status()
        document = response.json()
        if document.get("issuer") != issuer:
            raise ValueError(
                f"the discovery document names issuer {document.get('issuer')!r}, "
                f"not the configured {issuer!r}"
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        return jwks_uri


@dataclass(frozen=True)
class _SigningKey:
    key_id: str
    jwk: jwt.PyJWK
    algorithm: str | None
    """The `alg` the JWKS pins for this key; a token must use exactly it."""


def _signing_keys(jwks: Any) -> list[_SigningKey]:
    """The signature keys of a JWKS document; encryption and unknown key types are skipped."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise ValueError("the JWKS document has no 'keys' list")
    keys: list[_SigningKey] = []
    for position, data in enumerate(jwks["keys"]):
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        try:
            jwk = jwt.PyJWK(data)
        except jwt.PyJWTError:
            continue
        algorithm = data.get("alg")
        keys.append(
            _SigningKey(
                key_id=str(data.get("kid") or f"#{position}"),
                jwk=jwk,
                algorithm=algorithm if isinstance(algorithm, str) else None,
            )
        )
    return keys


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """Claim `name`, or the dotted path `a.b` (Keycloak's `realm_access.roles`) when absent."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


_bearer = HTTPBearer(
    auto_error=False,
    description="An OIDC access token of the configured issuer; without one, only published "
    "datasets are visible.",
)


def _unauthorized(reason: str, error: str = "invalid_token") -> HTTPException:
    # RFC 6750 allows only printable ASCII but `"` and `\\` in error_description, and the reason
    # may quote the token's own header (kid, alg): anything else becomes `?`.
    detail = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in reason)[:300]
    return HTTPException(
        status_code=401,
        detail=f"invalid bearer token: {reason}",
        headers={"WWW-Authenticate": f'Bearer error="{error}", error_description="{detail}"'},
    )


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of this request; FastAPI dependency (use `CurrentPrincipal`)."""
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None or not verifier.enabled:
        return Principal.anonymous()
    if credentials is None:
        if "authorization" in request.headers:
            reason = "the Authorization header must be 'Bearer <token>'"
            raise _unauthorized(reason, "invalid_request")
        return Principal.anonymous()
    try:
        return await verifier.principal(credentials.credentials)
    except InvalidToken as error:
        log.info("oidc.token_refused", reason=str(error))
        raise _unauthorized(str(error)) from error
    except IssuerUnavailable as error:
        log.warning("oidc.issuer_unavailable", reason=str(error))
        raise HTTPException(
            status_code=503, detail=f"cannot check bearer tokens now, try again later: {error}"
        ) from error


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
