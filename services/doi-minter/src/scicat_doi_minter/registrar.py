"""DataCite's REST API behind the one call the minter needs: make this DOI findable.

The client sorts DataCite's answers into the two outcomes the consumer understands:
- `RegistrationRefused` (400, 403, 404, 422 ...): the metadata or the DOI is wrong and resending
  cannot help; the request is dead-lettered with DataCite's `errors`.
- `DataCiteUnavailable` (429, 5xx, timeouts, connection errors, and 401): DataCite or our account
  is not usable right now; after a few quick retries the message is retried later by the consumer.
  A 401 is a configuration fault, not a fault of the message, so it must not dead-letter requests.

The password is a `SecretStr` handed only to httpx's Basic auth; nothing here logs or formats it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import structlog

from scicat_doi_minter.settings import DataCiteSettings

JSON_API = "application/vnd.api+json"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

log = structlog.get_logger("scicat.doi_minter.datacite")


class RegistrationRefused(Exception):
    """DataCite refused the DOI or its metadata; `reason` quotes DataCite's `errors`."""

    def __init__(self, *, doi: str, status: int, errors: object) -> None:
        self.doi = doi
        self.status = status
        self.errors = errors
        self.reason = (
            f"DataCite refused DOI {doi} (HTTP {status}): "
            f"{json.dumps(errors, ensure_ascii=False)}; "
            "fix the publication request and replay it from doi-minter.dlq"
        )
        super().__init__(self.reason)


class DataCiteUnavailable(Exception):
    """DataCite did not accept the DOI for a reason that may pass; the message is retried later."""


class DoiRegistrar(Protocol):
    async def publish(self, doi: str, attributes: dict[str, Any]) -> None:
        """Create or update `doi` with `attributes` (`event: publish`, or none for a draft)."""

    async def hide(self, doi: str) -> None:
        """Make a findable `doi` registered-only (it resolves, but is not in DataCite search)."""

    async def delete_draft(self, doi: str) -> None:
        """Release a reserved (draft) DOI; one that does not exist is already released."""

    async def state(self, doi: str) -> str | None:
        """`draft`, `registered` or `findable` at DataCite; None when DataCite does not know it."""


class DataCiteClient:
    """`PUT /dois/{doi}` with bounded retries, exponential back-off and full jitter."""

    def __init__(
        self,
        settings: DataCiteSettings,
        *,
        user_agent: str,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.user_agent = user_agent
        self._sleep = sleep
        self._client: httpx.AsyncClient | None = None

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[DataCiteClient]:
        self._client = httpx.AsyncClient(
            base_url=self.settings.url,
            auth=httpx.BasicAuth(self.settings.username, self.settings.password.get_secret_value()),
            headers={"User-Agent": self.user_agent, "Accept": JSON_API},
            timeout=self.settings.timeout_seconds,
        )
        try:
            yield self
        finally:
            client, self._client = self._client, None
            await client.aclose()

    async def publish(self, doi: str, attributes: dict[str, Any]) -> None:
        done = "doi published at DataCite" if attributes.get("event") else "draft doi at DataCite"
        await self._put(doi, attributes, done=done)

    async def hide(self, doi: str) -> None:
        """`event: hide` alone: DataCite keeps the metadata; hiding a hidden DOI changes nothing."""
        await self._put(doi, {"event": "hide"}, done="doi hidden at DataCite")

    async def delete_draft(self, doi: str) -> None:
        """DataCite deletes only drafts (405 otherwise: refused); a 404 means nothing to release."""
        await self._send("DELETE", doi, None, done="draft doi deleted at DataCite", absent_ok=True)

    async def state(self, doi: str) -> str | None:
        response = await self._send("GET", doi, None, done="doi state read", absent_ok=True)
        if response.status_code == 404:
            return None
        try:
            return str(response.json()["data"]["attributes"]["state"])
        except (ValueError, KeyError, TypeError) as error:
            raise DataCiteUnavailable(
                f"DataCite answered GET /dois/{doi} without a state: {response.text[:300]}"
            ) from error

    async def _put(self, doi: str, attributes: dict[str, Any], *, done: str) -> None:
        body = json.dumps({"data": {"type": "dois", "id": doi, "attributes": attributes}})
        await self._send("PUT", doi, body, done=done)

    async def _send(
        self, method: str, doi: str, body: str | None, *, done: str, absent_ok: bool = False
    ) -> httpx.Response:
        if self._client is None:
            raise RuntimeError("DataCiteClient used outside `opened()`")
        path = f"/dois/{quote(doi, safe='/')}"
        problem = ""
        for attempt in range(1, self.settings.max_attempts + 1):
            retry_after: float | None = None
            try:
                response = await self._client.request(
                    method, path, content=body, headers={"Content-Type": JSON_API}
                )
            except httpx.TimeoutException as error:
                problem = (
                    f"timed out after {self.settings.timeout_seconds} s ({type(error).__name__})"
                )
            except httpx.TransportError as error:
                problem = f"connection failed ({type(error).__name__}: {error})"
            else:
                if response.is_success or (absent_ok and response.status_code == 404):
                    log.info(done, doi=doi, status=response.status_code)
                    return response
                if response.status_code == 401:
                    raise DataCiteUnavailable(
                        f"DataCite rejected the credentials of account {self.settings.username!r} "
                        f"at {self.settings.url} (HTTP 401); fix DOI_MINTER_DATACITE__USERNAME/"
                        "PASSWORD — the request is retried, not dropped"
                    )
                if response.status_code not in RETRYABLE_STATUSES:
                    raise RegistrationRefused(
                        doi=doi, status=response.status_code, errors=_errors(response)
                    )
                problem = f"HTTP {response.status_code}: {json.dumps(_errors(response))[:300]}"
                retry_after = _retry_after(response)
            if attempt == self.settings.max_attempts:
                break
            delay = self.backoff(attempt, retry_after)
            log.warning(
                "DataCite not available, retrying",
                doi=doi,
                attempt=attempt,
                problem=problem,
                retry_in_seconds=round(delay, 3),
            )
            await self._sleep(delay)
        raise DataCiteUnavailable(
            f"DataCite did not accept DOI {doi} after {self.settings.max_attempts} attempts; "
            f"last: {problem}"
        )

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential with jitter (spreads replicas apart); honours `Retry-After` up to the cap."""
        ceiling = min(
            self.settings.backoff_max_seconds,
            self.settings.backoff_initial_seconds * 2 ** (attempt - 1),
        )
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.backoff_max_seconds))
        return delay


def _errors(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return response.text[:1000]
    return body.get("errors", body) if isinstance(body, dict) else body


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None
