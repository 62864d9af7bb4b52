"""An OIDC issuer stand-in (Keycloak-shaped): discovery, JWKS and a token endpoint, in memory.

For development and tests only: it hands a token with any `sub` and `groups` to anyone who asks,
so a newcomer can try the private view of the search API without a Keycloak. Its paths are
Keycloak's (`/protocol/openid-connect/certs`, `/protocol/openid-connect/token`) with short aliases
(`/jwks`, `/token`), and it signs RS256 JWTs with an RSA key generated at start-up.

`POST /token` (form-encoded, as OAuth 2 clients send it, or JSON) takes `grant_type`
(`client_credentials` or `password`), `sub` (or `username`, or `client_id`), `groups`
(comma-separated or repeated), `audience` and `expires_in`.

Test hooks, outside OIDC: `app.state.issuer` (`StandinIssuer`) signs arbitrary claims with the
current key, and `POST /_standin/rotate` replaces the signing key with a new one under a new
`kid` (the old key stays in the JWKS unless `?drop_old=true`), as Keycloak's key rotation does.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from scicat_pipeline.embedded import free_port

DEFAULT_AUDIENCE: Final = "scicat-search"
DEFAULT_SUBJECT: Final = "newcomer"
DEFAULT_LIFETIME_SECONDS: Final = 3600
MAX_LIFETIME_SECONDS: Final = 7 * 24 * 3600
JWKS_PATH: Final = "/protocol/openid-connect/certs"
TOKEN_PATH: Final = "/protocol/openid-connect/token"
GRANT_TYPES: Final = ("client_credentials", "password")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(
            kid=secrets.token_hex(8),
            private_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        )

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(
            self.private_key.public_key(), as_dict=True
        )
        return jwk | {"kid": self.kid, "use": "sig", "alg": "RS256"}


@dataclass
class StandinIssuer:
    """The issuer's state: its URL, its keys (newest signs), and how it builds tokens."""

    url: str
    audience: str = DEFAULT_AUDIENCE
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.generate()])
    jwks_requests: int = 0
    """How often the JWKS was fetched: tests check that verifiers cache it."""

    @property
    def signing_key(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    def rotate(self, *, drop_old: bool = False) -> SigningKey:
        key = SigningKey.generate()
        self.keys = [key] if drop_old else [*self.keys, key]
        return key

    def sign(self, claims: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None) -> str:
        """`claims` signed as they are (tests use this for expired or foreign tokens)."""
        return jwt.encode(
            dict(claims),
            self.signing_key.private_key,
            algorithm="RS256",
            headers={"kid": self.signing_key.kid, **(headers or {})},
        )

    def issue(
        self,
        *,
        subject: str,
        groups: list[str],
        audience: str | None = None,
        lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
    ) -> str:
        now = int(time.time())
        return self.sign(
            {
                "iss": self.url,
                "sub": subject,
                "aud": audience or self.audience,
                "iat": now,
                "nbf": now,
                "exp": now + lifetime_seconds,
                "jti": secrets.token_hex(8),
                "typ": "Bearer",
                "preferred_username": subject,
                "groups": groups,
            }
        )


class TokenRequestError(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _token_request(values: Mapping[str, Any]) -> tuple[str, list[str], str | None, int]:
    """(subject, groups, audience, lifetime) from a token request, or `TokenRequestError`."""
    grant_type = values.get("grant_type", "client_credentials")
    if grant_type not in GRANT_TYPES:
        raise TokenRequestError(
            "unsupported_grant_type", f"grant_type must be one of {', '.join(GRANT_TYPES)}"
        )
    subject = values.get("sub") or values.get("username") or values.get("client_id")
    raw_groups = values.get("groups") or []
    if isinstance(raw_groups, str):
        raw_groups = [raw_groups]
    if not isinstance(raw_groups, list) or not all(isinstance(g, str) for g in raw_groups):
        raise TokenRequestError("invalid_request", "groups must be a string or a list of strings")
    groups = [group.strip() for item in raw_groups for group in item.split(",") if group.strip()]
    try:
        lifetime = int(values.get("expires_in", DEFAULT_LIFETIME_SECONDS))
    except (TypeError, ValueError) as error:
        raise TokenRequestError("invalid_request", "expires_in must be an integer") from error
    if not 1 <= lifetime <= MAX_LIFETIME_SECONDS:
        raise TokenRequestError(
            "invalid_request", f"expires_in must be between 1 and {MAX_LIFETIME_SECONDS} seconds"
        )
    audience = values.get("audience")
    return str(subject or DEFAULT_SUBJECT), groups, audience, lifetime


async def _request_values(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError as error:
            raise TokenRequestError("invalid_request", f"the body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise TokenRequestError("invalid_request", "the JSON body must be an object")
        return body
    form = await request.form()
    values: dict[str, Any] = {key: form.get(key) for key in form}
    values["groups"] = [str(group) for group in form.getlist("groups")]
    return values


def create_app(issuer_url: str | Callable[[], str], *, audience: str = DEFAULT_AUDIENCE) -> FastAPI:
    """The stand-in of one realm whose issuer URL is `issuer_url` (or what the callable returns).

    A callable lets a caller create the app before it knows the port it will be served on.
    """
    url = issuer_url if isinstance(issuer_url, str) else None
    issuer = StandinIssuer(url=url or "", audience=audience)
    app = FastAPI(title="OIDC issuer stand-in", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.issuer = issuer

    def current() -> StandinIssuer:
        if not issuer.url and callable(issuer_url):
            issuer.url = issuer_url().rstrip("/")
        return issuer

    @app.get("/.well-known/openid-configuration")
    async def discovery() -> dict[str, Any]:
        base = current().url
        return {
            "issuer": base,
            "jwks_uri": base + JWKS_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "grant_types_supported": list(GRANT_TYPES),
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],
            "claims_supported": ["sub", "iss", "aud", "exp", "groups", "preferred_username"],
        }

    @app.get(JWKS_PATH)
    @app.get("/jwks")
    async def jwks() -> dict[str, Any]:
        issuer = current()
        issuer.jwks_requests += 1
        return issuer.jwks()

    @app.post(TOKEN_PATH)
    @app.post("/token")
    async def token(request: Request) -> JSONResponse:
        try:
            subject, groups, token_audience, lifetime = _token_request(
                await _request_values(request)
            )
        except TokenRequestError as error:
            return JSONResponse(
                status_code=400,
                content={"error": error.error, "error_description": error.description},
            )
        access_token = current().issue(
            subject=subject, groups=groups, audience=token_audience, lifetime_seconds=lifetime
        )
        return JSONResponse(
            {"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime},
            headers={"Cache-Control": "no-store"},
        )

    @app.post("/_standin/rotate")
    async def rotate(drop_old: bool = False) -> dict[str, str]:
        return {"kid": current().rotate(drop_old=drop_old).kid}

    return app


@contextlib.asynccontextmanager
async def served_issuer(*, audience: str = DEFAULT_AUDIENCE) -> AsyncIterator[StandinIssuer]:
    """The stand-in served by uvicorn on a free loopback port for the duration of the block."""
    port = free_port()
    app = create_app(f"http://127.0.0.1:{port}", audience=audience)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the OIDC stand-in stopped before it started")
            await asyncio.sleep(0.01)
        issuer: StandinIssuer = app.state.issuer
        yield issuer
    finally:
        server.should_exit = True
        await task
