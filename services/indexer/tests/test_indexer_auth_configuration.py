"""How the token verifier is configured: settings from the environment, what start-up says about
a weak configuration, and the OpenAPI spec's statement that the bearer token is optional."""

from __future__ import annotations

import httpx
import pytest
import structlog.testing

from scicat_indexer.app import create_app
from scicat_indexer.auth import TokenVerifier
from scicat_indexer.settings import OidcSettings, Settings


def test_oidc_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXER_OIDC__ISSUER", "https://keycloak.example.org/realms/desy")
    monkeypatch.setenv("INDEXER_OIDC__AUDIENCE", "scicat")
    monkeypatch.setenv("INDEXER_OIDC__GROUPS_CLAIM", "realm_access.roles")
    oidc = Settings().oidc
    assert oidc.issuer == "https://keycloak.example.org/realms/desy"
    assert oidc.audience == "scicat"
    assert oidc.groups_claim == "realm_access.roles"
    assert oidc.jwks_url is None


@pytest.mark.parametrize(
    ("settings", "event", "level"),
    [
        (OidcSettings(), "oidc.off", "info"),
        (
            OidcSettings(issuer="https://kc.example.org/realms/x"),
            "oidc.audience_unchecked",
            "warning",
        ),
    ],
    ids=["no-issuer", "no-audience"],
)
def test_start_up_says_how_weak_the_configuration_is(
    settings: OidcSettings, event: str, level: str
) -> None:
    with structlog.testing.capture_logs() as logs:
        TokenVerifier(settings)
    assert [(log["event"], log["log_level"]) for log in logs] == [(event, level)]


async def test_openapi_states_the_bearer_token_is_optional() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        spec = (await client.get("/openapi.json")).json()
    secured = {
        f"{method.upper()} {path}": operation["security"]
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "security" in operation
    }
    assert "GET /datasets" in secured
    assert all(security == [{}, {"HTTPBearer": []}] for security in secured.values()), secured
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
