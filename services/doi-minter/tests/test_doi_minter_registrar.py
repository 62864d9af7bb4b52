"""The DataCite client against the stand-in over real HTTP: retries, refusals, credentials."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from scicat_doi_minter.registrar import DataCiteClient, DataCiteUnavailable, RegistrationRefused
from scicat_doi_minter.settings import DataCiteSettings
from scicat_pipeline.testing import wait_for

DOI = "10.5072/thin-films-0123456789"
METADATA: dict[str, Any] = {
    "doi": DOI,
    "event": "publish",
    "creators": [{"name": "Doe, Jane"}],
    "titles": [{"title": "Thin films"}],
    "publisher": {"name": "DESY"},
    "publicationYear": 2025,
    "types": {"resourceTypeGeneral": "Dataset"},
    "url": f"https://doi.example.org/doi/{DOI}",
}


async def publish(settings: DataCiteSettings, attributes: dict[str, Any] = METADATA) -> None:
    client = DataCiteClient(settings, user_agent="scicat-pipeline/test (mailto:test@example.org)")
    async with client.opened():
        await client.publish(DOI, attributes)


async def test_throttling_server_errors_and_timeouts_are_retried(
    standin: Any, datacite_settings: DataCiteSettings
) -> None:
    settings = datacite_settings.model_copy(update={"max_attempts": 4, "timeout_seconds": 0.2})
    await standin.add_faults({"status": 429}, {"status": 502}, {"delay_seconds": 0.4})

    await publish(settings)

    assert standin.state.dois[DOI].state == "findable"

    async def all_four() -> list[int]:
        statuses = sorted(r["status"] for r in await standin.received())
        return statuses if len(statuses) == 4 else []

    # the timed-out request is logged once its delay is over, after the retry that succeeded
    assert await wait_for(all_four, timeout=5, what="four requests") == [200, 201, 429, 502]


async def test_gives_up_after_max_attempts_with_a_transient_error(
    standin: Any, datacite_settings: DataCiteSettings
) -> None:
    await standin.add_faults(*[{"status": 500}] * 3)
    with pytest.raises(DataCiteUnavailable, match="after 3 attempts; last: HTTP 500"):
        await publish(datacite_settings)
    assert len(await standin.received()) == 3
    assert DOI not in standin.state.dois


async def test_validation_errors_are_refused_at_once_with_datacite_errors(
    standin: Any, datacite_settings: DataCiteSettings
) -> None:
    with pytest.raises(RegistrationRefused) as refused:
        await publish(datacite_settings, {**METADATA, "url": "not a url"})
    assert refused.value.status == 422
    assert refused.value.errors == [{"source": "url", "title": "Is invalid", "uid": DOI}]
    assert "Is invalid" in refused.value.reason
    assert len(await standin.received()) == 1


async def test_bad_credentials_are_transient_and_name_the_account_not_the_password(
    standin: Any, datacite_settings: DataCiteSettings
) -> None:
    settings = datacite_settings.model_copy(update={"password": SecretStr("wrong-password")})
    with pytest.raises(DataCiteUnavailable) as unavailable:
        await publish(settings)
    assert "DESY.SCICAT" in str(unavailable.value)
    assert "wrong-password" not in str(unavailable.value)
    assert len(await standin.received()) == 1


async def test_connection_refused_is_transient(datacite_settings: DataCiteSettings) -> None:
    # the stand-in fixture is not requested: nothing listens on its port
    with pytest.raises(DataCiteUnavailable, match="after 3 attempts; last: connection failed"):
        await publish(datacite_settings)


async def test_requests_carry_json_api_type_user_agent_and_basic_auth(
    datacite_settings: DataCiteSettings,
) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"data": {"id": DOI}})

    client = DataCiteClient(datacite_settings, user_agent="scicat-pipeline/test")
    async with client.opened():
        assert client._client is not None
        client._client._transport = httpx.MockTransport(answer)
        await client.publish(DOI, METADATA)

    [request] = seen
    assert request.method == "PUT"
    assert request.url.path == f"/dois/{DOI}"
    assert request.headers["content-type"] == "application/vnd.api+json"
    assert request.headers["user-agent"] == "scicat-pipeline/test"
    assert request.headers["authorization"].startswith("Basic ")


async def test_hide_keeps_the_metadata_and_deleting_a_draft_tolerates_its_absence(
    standin: Any, datacite_settings: DataCiteSettings
) -> None:
    client = DataCiteClient(datacite_settings, user_agent="test")
    async with client.opened():
        await client.delete_draft("10.5072/never-reserved")  # 404: nothing to release
        await client.publish(DOI, METADATA)
        await client.hide(DOI)
        with pytest.raises(RegistrationRefused, match=r"HTTP 405"):
            await client.delete_draft(DOI)  # a registered DOI is permanent

    assert standin.state.dois[DOI].state == "registered"
    assert standin.state.dois[DOI].attributes["titles"] == METADATA["titles"]
