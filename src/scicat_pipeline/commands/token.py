"""`scicat-pipeline token`: a bearer token from the OIDC issuer stand-in, to try the private view.

`scicat-pipeline up` prints the stand-in's issuer URL under `oidc`; pass it as `--issuer` or set
`SCICAT_OIDC_ISSUER`. The token endpoint is found through the issuer's discovery document, so the
command works with any issuer that grants tokens without a secret (the stand-in does; a real
Keycloak wants a client and credentials, use its own tools there).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import httpx
import typer

ISSUER_ENV = "SCICAT_OIDC_ISSUER"


async def fetch_token(
    issuer: str,
    *,
    groups: list[str],
    subject: str,
    audience: str | None = None,
    lifetime_seconds: int | None = None,
    timeout: float = 10.0,
) -> str:
    """An access token for `subject` in `groups`, from the token endpoint `issuer` advertises.

    The demo and end-to-end tests use it to see the datasets of a beamtime before publication.
    """
    async with httpx.AsyncClient(timeout=timeout) as client:
        discovery = await client.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
        discovery.raise_for_status()
        token_endpoint = discovery.json().get("token_endpoint")
        if not isinstance(token_endpoint, str):
            raise ValueError(f"{issuer} advertises no token_endpoint")
        form: dict[str, str | list[str]] = {
            "grant_type": "client_credentials",
            "client_id": subject,
            "sub": subject,
            "groups": groups,
        }
        if audience:
            form["audience"] = audience
        if lifetime_seconds is not None:
            form["expires_in"] = str(lifetime_seconds)
        response = await client.post(token_endpoint, data=form)
        if response.status_code != 200:
            raise ValueError(f"{token_endpoint} refused the request: {response.text}")
        access_token = response.json().get("access_token")
        if not isinstance(access_token, str):
            raise ValueError(f"{token_endpoint} answered without an access_token")
        return access_token


def register(app: typer.Typer) -> None:
    @app.command()
    def token(
        groups: Annotated[
            str, typer.Option("--groups", help="Groups, comma-separated: 11019001-dmgt,p08staff.")
        ] = "",
        issuer: Annotated[
            str | None,
            typer.Option(
                "--issuer",
                envvar=ISSUER_ENV,
                help="Issuer URL: the `oidc` value printed by `scicat-pipeline up`.",
            ),
        ] = None,
        subject: Annotated[str, typer.Option("--sub", help="Subject (user name).")] = "newcomer",
        audience: Annotated[
            str | None, typer.Option("--audience", help="`aud` of the token (issuer default).")
        ] = None,
        expires_in: Annotated[
            int | None, typer.Option("--expires-in", min=1, help="Lifetime in seconds.")
        ] = None,
    ) -> None:
        """Print a bearer token from the OIDC issuer stand-in (use: Authorization: Bearer …)."""
        if not issuer:
            typer.echo(
                f"no issuer: pass --issuer or set {ISSUER_ENV} to the `oidc` URL that "
                "`scicat-pipeline up` printed",
                err=True,
            )
            raise typer.Exit(2)
        names = [group.strip() for group in groups.split(",") if group.strip()]
        try:
            access_token = asyncio.run(
                fetch_token(
                    issuer,
                    groups=names,
                    subject=subject,
                    audience=audience,
                    lifetime_seconds=expires_in,
                )
            )
        except (httpx.HTTPError, ValueError) as error:
            typer.echo(f"cannot get a token from {issuer}: {error}", err=True)
            raise typer.Exit(1) from error
        typer.echo(access_token)
