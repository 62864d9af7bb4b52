"""Bearer tokens: what the verifier accepts and refuses, against a JWKS served over real HTTP."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI

from scicat_indexer.auth import (
    CurrentPrincipal,
    InvalidToken,
    IssuerUnavailable,
    Principal,
    TokenVerifier,
    current_principal,
)
from scicat_indexer.settings import OidcSettings
from scicat_pipeline.standins.oidc import StandinIssuer, served_issuer

AUDIENCE = "scicat-search"


@pytest.fixture(scope="module")
async def issuer() -> AsyncIterator[StandinIssuer]:
    """One issuer for the module (tests that count its requests count differences)."""
    async with served_issuer(audience=AUDIENCE) as running:
        yield running


@pytest.fixture
def oidc_settings(issuer: StandinIssuer) -> OidcSettings:
    return OidcSettings(issuer=issuer.url, audience=AUDIENCE, jwks_min_refresh_seconds=0)


@pytest.fixture
def claims(issuer: StandinIssuer) -> Callable[..., dict[str, Any]]:
    """Valid claims of `issuer`, with `changes` applied (None removes a claim)."""

    def build(**changes: Any) -> dict[str, Any]:
        now = int(time.time())
        values = {
            "iss": issuer.url,
            "sub": "alice",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            "groups": ["11012345-dmgt"],
        } | changes
        return {key: value for key, value in values.items() if value is not None}

    return build


def _app(verifier: TokenVerifier) -> FastAPI:
    """A one-route app showing the principal the dependency resolves."""
    app = FastAPI()
    app.state.token_verifier = verifier

    @app.get("/whoami")
    async def whoami(principal: CurrentPrincipal) -> dict[str, Any]:
        return {"subject": principal.subject, "groups": sorted(principal.groups)}

    return app


@pytest.fixture
async def http(oidc_settings: OidcSettings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(TokenVerifier(oidc_settings)))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _segment(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


async def test_valid_token_yields_subject_and_groups(
    issuer: StandinIssuer, http: httpx.AsyncClient
) -> None:
    token = issuer.issue(subject="alice", groups=["11012345-dmgt", "p08staff"])
    response = await http.get("/whoami", headers=_bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {"subject": "alice", "groups": ["11012345-dmgt", "p08staff"]}


async def test_keycloak_full_group_paths_lose_their_leading_slash(
    issuer: StandinIssuer, oidc_settings: OidcSettings, claims: Callable[..., dict[str, Any]]
) -> None:
    token = issuer.sign(claims(groups=["/11012345-dmgt", "/desy/p08staff", "/"]))
    principal = await TokenVerifier(oidc_settings).principal(token)
    assert principal.groups == {"11012345-dmgt", "desy/p08staff"}


async def test_groups_claim_name_is_configurable_and_may_be_a_dotted_path(
    issuer: StandinIssuer, oidc_settings: OidcSettings, claims: Callable[..., dict[str, Any]]
) -> None:
    settings = oidc_settings.model_copy(update={"groups_claim": "realm_access.roles"})
    token = issuer.sign(claims(groups=["ignored"], realm_access={"roles": ["p08staff"]}))
    principal = await TokenVerifier(settings).principal(token)
    assert principal == Principal(subject="alice", groups=frozenset({"p08staff"}))


async def test_token_without_groups_is_authenticated_with_no_groups(
    issuer: StandinIssuer, oidc_settings: OidcSettings, claims: Callable[..., dict[str, Any]]
) -> None:
    principal = await TokenVerifier(oidc_settings).principal(issuer.sign(claims(groups=None)))
    assert principal.authenticated
    assert principal.groups == frozenset()


async def test_no_token_is_anonymous(http: httpx.AsyncClient) -> None:
    response = await http.get("/whoami")
    assert response.json() == {"subject": None, "groups": []}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
        ({"iss": "https://keycloak.example.org/realms/other"}, "issuer"),
        ({"aud": "another-client"}, "audience"),
        ({"aud": None}, "aud"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"groups": "p08staff,other"}, None),
        ({"groups": [{"name": "p08staff"}]}, "list of group names"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "no-audience",
        "no-expiry",
        "no-subject",
        "groups-as-string-is-one-group",
        "groups-not-strings",
    ],
)
async def test_claims_are_checked(
    issuer: StandinIssuer,
    oidc_settings: OidcSettings,
    claims: Callable[..., dict[str, Any]],
    changes: dict[str, Any],
    reason: str | None,
) -> None:
    token = issuer.sign(claims(**changes))
    verifier = TokenVerifier(oidc_settings)
    if reason is None:
        assert (await verifier.principal(token)).groups == {"p08staff,other"}
        return
    with pytest.raises(InvalidToken, match=f"(?i){reason}"):
        await verifier.principal(token)


async def test_invalid_token_is_401_with_bearer_challenge(
    issuer: StandinIssuer, http: httpx.AsyncClient, claims: Callable[..., dict[str, Any]]
) -> None:
    token = issuer.sign(claims(exp=int(time.time()) - 3600))
    response = await http.get("/whoami", headers=_bearer(token))
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"')
    assert "expired" in response.json()["detail"]


async def test_token_signed_by_another_key_with_the_same_kid_is_401(
    issuer: StandinIssuer, http: httpx.AsyncClient, claims: Callable[..., dict[str, Any]]
) -> None:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(
        claims(), foreign, algorithm="RS256", headers={"kid": issuer.signing_key.kid}
    )
    response = await http.get("/whoami", headers=_bearer(token))
    assert response.status_code == 401
    assert "signature" in response.json()["detail"].lower()


async def test_unsigned_token_is_401(
    issuer: StandinIssuer, http: httpx.AsyncClient, claims: Callable[..., dict[str, Any]]
) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": issuer.signing_key.kid}
    token = f"{_segment(header)}.{_segment(claims())}."
    response = await http.get("/whoami", headers=_bearer(token))
    assert response.status_code == 401
    assert "'none' is not accepted" in response.json()["detail"]


async def test_hmac_token_keyed_with_the_public_key_is_401(
    issuer: StandinIssuer, http: httpx.AsyncClient, claims: Callable[..., dict[str, Any]]
) -> None:
    """The classic algorithm confusion: HS256 with the issuer's public key as the secret."""
    public_pem = (
        issuer.signing_key.private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.signing_key.kid}
    signing_input = f"{_segment(header)}.{_segment(claims())}"
    signature = jwt.algorithms.HMACAlgorithm(jwt.algorithms.HMACAlgorithm.SHA256).sign(
        signing_input.encode(), public_pem.encode()
    )
    token = f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    response = await http.get("/whoami", headers=_bearer(token))
    assert response.status_code == 401
    assert "HS256" in response.json()["detail"]


async def test_tampered_payload_is_401(
    issuer: StandinIssuer, http: httpx.AsyncClient, claims: Callable[..., dict[str, Any]]
) -> None:
    header, _, signature = issuer.sign(claims(groups=["p08staff"])).split(".")
    forged = f"{header}.{_segment(claims(groups=['p08staff', '11099999-dmgt']))}.{signature}"
    response = await http.get("/whoami", headers=_bearer(forged))
    assert response.status_code == 401


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", ""])
async def test_garbage_token_is_401(http: httpx.AsyncClient, token: str) -> None:
    response = await http.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "header",
    [{"kid": '€\n"\\'}, {"alg": "RS256€"}],
    ids=["odd-kid", "odd-alg"],
)
async def test_refusal_header_stays_printable_ascii_whatever_the_token_says(
    issuer: StandinIssuer,
    http: httpx.AsyncClient,
    claims: Callable[..., dict[str, Any]],
    header: dict[str, str],
) -> None:
    segments = issuer.sign(claims()).split(".")
    forged = ".".join([_segment({"alg": "RS256", "typ": "JWT"} | header), *segments[1:]])
    response = await http.get("/whoami", headers=_bearer(forged))
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    description = challenge.split('error_description="', 1)[1].removesuffix('"')
    assert all(" " <= c <= "~" and c not in '"\\' for c in description), challenge


async def test_non_bearer_authorization_is_401_invalid_request(http: httpx.AsyncClient) -> None:
    response = await http.get("/whoami", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_request"')


async def test_rotated_key_is_fetched_once_when_a_token_names_it(
    issuer: StandinIssuer, oidc_settings: OidcSettings
) -> None:
    verifier = TokenVerifier(oidc_settings)
    before = issuer.jwks_requests
    await verifier.principal(issuer.issue(subject="alice", groups=[]))
    await verifier.principal(issuer.issue(subject="alice", groups=[]))
    assert issuer.jwks_requests - before == 1

    issuer.rotate(drop_old=True)
    principal = await verifier.principal(issuer.issue(subject="bob", groups=["p08staff"]))
    assert principal.subject == "bob"
    assert issuer.jwks_requests - before == 2


async def test_unknown_kids_cannot_make_the_verifier_hammer_the_issuer(
    issuer: StandinIssuer, oidc_settings: OidcSettings, claims: Callable[..., dict[str, Any]]
) -> None:
    verifier = TokenVerifier(oidc_settings.model_copy(update={"jwks_min_refresh_seconds": 60}))
    before = issuer.jwks_requests
    await verifier.principal(issuer.issue(subject="alice", groups=[]))
    for kid in ("forged-1", "forged-2", "forged-3"):
        with pytest.raises(InvalidToken, match="no key with id"):
            await verifier.principal(issuer.sign(claims(), headers={"kid": kid}))
    assert issuer.jwks_requests - before == 1


async def test_explicit_jwks_url_skips_discovery(
    issuer: StandinIssuer, oidc_settings: OidcSettings
) -> None:
    settings = oidc_settings.model_copy(update={"jwks_url": f"{issuer.url}/jwks"})
    principal = await TokenVerifier(settings).principal(issuer.issue(subject="a", groups=["g"]))
    assert principal.groups == {"g"}


async def test_unreachable_issuer_is_503_not_401(claims: Callable[..., dict[str, Any]]) -> None:
    async with served_issuer(audience=AUDIENCE) as gone:
        token = gone.issue(subject="alice", groups=[])
        settings = OidcSettings(issuer=gone.url, audience=AUDIENCE)
    verifier = TokenVerifier(settings)
    with pytest.raises(IssuerUnavailable):
        await verifier.principal(token)
    transport = httpx.ASGITransport(app=_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/whoami", headers=_bearer(token))
    assert response.status_code == 503
    assert "try again later" in response.json()["detail"]


async def test_cached_keys_outlive_an_issuer_outage() -> None:
    async with served_issuer(audience=AUDIENCE) as gone:
        settings = OidcSettings(
            issuer=gone.url,
            audience=AUDIENCE,
            jwks_cache_seconds=0.001,
            jwks_min_refresh_seconds=0,
        )
        verifier = TokenVerifier(settings)
        await verifier.principal(gone.issue(subject="alice", groups=[]))
    principal = await verifier.principal(gone.issue(subject="bob", groups=["g"]))
    assert principal.subject == "bob"


async def test_discovery_naming_another_issuer_is_refused(issuer: StandinIssuer) -> None:
    settings = OidcSettings(issuer=f"{issuer.url}/", audience=AUDIENCE)
    with pytest.raises(IssuerUnavailable, match="names issuer"):
        await TokenVerifier(settings).principal(issuer.issue(subject="a", groups=[]))


async def test_without_an_issuer_every_request_is_anonymous(issuer: StandinIssuer) -> None:
    """The safe default: tokens cannot be checked, so nothing private can be shown."""
    transport = httpx.ASGITransport(app=_app(TokenVerifier(OidcSettings())))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        token = issuer.issue(subject="alice", groups=["p08staff"])
        response = await client.get("/whoami", headers=_bearer(token))
    assert response.json() == {"subject": None, "groups": []}


async def test_dependency_without_a_verifier_on_the_app_is_anonymous() -> None:
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(
        principal: Annotated[Principal, Depends(current_principal)],
    ) -> dict[str, Any]:
        return {"authenticated": principal.authenticated}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/whoami", headers=_bearer("anything"))
    assert response.json() == {"authenticated": False}
