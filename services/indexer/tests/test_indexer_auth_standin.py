"""The OIDC issuer stand-in and `scicat-pipeline token`: tokens the indexer's verifier accepts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from typer.testing import CliRunner

from scicat_indexer.auth import InvalidToken, TokenVerifier
from scicat_indexer.settings import OidcSettings
from scicat_pipeline.cli import app as cli
from scicat_pipeline.standins.oidc import StandinIssuer, create_app, served_issuer

AUDIENCE = "scicat-search"


@pytest.fixture(scope="module")
async def issuer() -> AsyncIterator[StandinIssuer]:
    async with served_issuer(audience=AUDIENCE) as running:
        yield running


@pytest.fixture
def verifier(issuer: StandinIssuer) -> TokenVerifier:
    return TokenVerifier(OidcSettings(issuer=issuer.url, audience=AUDIENCE))


async def test_discovery_advertises_keycloak_paths(issuer: StandinIssuer) -> None:
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{issuer.url}/.well-known/openid-configuration")).json()
        jwks = (await http.get(document["jwks_uri"])).json()
    assert document["issuer"] == issuer.url
    assert document["jwks_uri"] == f"{issuer.url}/protocol/openid-connect/certs"
    assert document["token_endpoint"] == f"{issuer.url}/protocol/openid-connect/token"
    [key] = jwks["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["kid"] == issuer.signing_key.kid
    assert "d" not in key, "the private exponent must never be published"


async def test_form_token_request_chooses_subject_and_groups(
    issuer: StandinIssuer, verifier: TokenVerifier
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{issuer.url}/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "username": "alice",
                "groups": ["11012345-dmgt", "p08staff,/desy"],
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    principal = await verifier.principal(body["access_token"])
    assert principal.subject == "alice"
    assert principal.groups == {"11012345-dmgt", "p08staff", "desy"}


async def test_json_token_request_on_the_short_path(
    issuer: StandinIssuer, verifier: TokenVerifier
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{issuer.url}/token", json={"sub": "bob", "groups": ["g1"], "expires_in": 60}
        )
    assert response.json()["expires_in"] == 60
    assert (await verifier.principal(response.json()["access_token"])).groups == {"g1"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        ({"expires_in": "0"}, "invalid_request"),
        ({"expires_in": "soon"}, "invalid_request"),
    ],
)
async def test_bad_token_requests_are_400_with_an_oauth_error(
    issuer: StandinIssuer, body: dict[str, str], error: str
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{issuer.url}/token", data=body)
    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_token_for_another_audience_is_refused(
    issuer: StandinIssuer, verifier: TokenVerifier
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{issuer.url}/token", data={"audience": "other-client"})
    with pytest.raises(InvalidToken, match=r"(?i)audience"):
        await verifier.principal(response.json()["access_token"])


async def test_token_command_prints_a_token_for_the_groups(
    issuer: StandinIssuer, verifier: TokenVerifier
) -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["token", "--groups", "11012345-dmgt, p08staff", "--sub", "carol"],
        env={"SCICAT_OIDC_ISSUER": issuer.url},
    )
    assert result.exit_code == 0, result.output
    principal = await verifier.principal(result.stdout.strip())
    assert principal.subject == "carol"
    assert principal.groups == {"11012345-dmgt", "p08staff"}


async def test_token_command_option_overrides_the_environment(
    issuer: StandinIssuer, verifier: TokenVerifier
) -> None:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["token", "--groups", "g", "--issuer", issuer.url],
        env={"SCICAT_OIDC_ISSUER": "http://127.0.0.1:9/nowhere"},
    )
    assert result.exit_code == 0, result.output
    assert (await verifier.principal(result.stdout.strip())).groups == {"g"}


def test_token_command_without_an_issuer_says_where_to_find_it() -> None:
    result = CliRunner().invoke(cli, ["token", "--groups", "g"], env={"SCICAT_OIDC_ISSUER": ""})
    assert result.exit_code == 2
    assert "scicat-pipeline up" in result.output
    assert "SCICAT_OIDC_ISSUER" in result.output


async def test_rotation_hook_publishes_a_new_key_and_keeps_the_old_one() -> None:
    async with served_issuer() as issuer, httpx.AsyncClient(base_url=issuer.url) as http:
        old_kid = issuer.signing_key.kid
        rotated = (await http.post("/_standin/rotate")).json()["kid"]
        kids = [key["kid"] for key in (await http.get("/jwks")).json()["keys"]]
        dropped = (await http.post("/_standin/rotate", params={"drop_old": "true"})).json()["kid"]
        after_drop = [key["kid"] for key in (await http.get("/jwks")).json()["keys"]]
    assert kids == [old_kid, rotated]
    assert after_drop == [dropped]
    assert issuer.signing_key.kid == dropped


async def test_issuer_url_may_be_known_only_once_served() -> None:
    """A factory lets the app exist before its port is chosen; it is asked on first use."""
    ports: list[int] = []
    app = create_app(lambda: f"http://127.0.0.1:{ports[0]}/realms/desy/")
    ports.append(8443)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        document = (await http.get("/.well-known/openid-configuration")).json()
        token = (await http.post("/token", data={"groups": "g"})).json()["access_token"]
    assert document["issuer"] == "http://127.0.0.1:8443/realms/desy"
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == document["issuer"]
