"""Landing pages in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

The page is served over HTTP by uvicorn from a publication the handler registered at the DataCite
stand-in, then loaded the way a reader or a crawler loads it: the JSON-LD is read from the
rendered DOM, console errors and any request leaving the machine fail the test, and a screenshot
is kept under the test's tmp dir for a person to look at. Chromium is a system package: absent, the
test skips locally and fails in CI (`CI` set), where `.ci/run` installs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import uvicorn
from fastapi import FastAPI

from scicat_doi_minter import domain
from scicat_doi_minter.landing import landing_router
from scicat_doi_minter.settings import Settings
from scicat_doi_minter.store import MongoPublicationStore
from scicat_pipeline.embedded import free_port
from scicat_pipeline.testing import wait_for
from scicat_schemas.documents import Dataset
from scicat_schemas.events import (
    PublicationRequested,
    PublicationWithdrawalRequested,
    PublicationWithdrawalRequestedData,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PIDS = ("desy/p08/11012345/run-7", "desy/p08/11012345/run-8")

Seed = Callable[..., Awaitable[list[Dataset]]]
MakeRequest = Callable[..., PublicationRequested]
Minter = Any  # conftest's `Minter`


def chromium_or_skip() -> str:
    path = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if path is None:
        reason = (
            "headless Chromium not installed (Debian package `chromium`: "
            "apt-get install -y chromium); the landing-page browser check needs it"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must install it (.ci/run does)")
        pytest.skip(reason)
    return path


@pytest.fixture
async def landing_server(minter_settings: Settings) -> AsyncIterator[str]:
    """The landing pages served over HTTP on a loopback port, as a browser reaches them."""
    store = MongoPublicationStore(minter_settings.mongo)
    port = free_port()
    async with store.opened():
        app = FastAPI()
        app.include_router(landing_router(store=store, settings=minter_settings))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        try:
            await wait_for(lambda: _value(server.started), what="the landing-page server")
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


async def test_landing_page_reads_well_in_chromium_with_json_ld_and_tombstone(
    minter: Minter,
    seed_datasets: Seed,
    make_request: MakeRequest,
    landing_server: str,
    tmp_path: Path,
) -> None:
    executable = chromium_or_skip()
    from playwright.async_api import async_playwright

    await seed_datasets(*PIDS)
    await minter.deliver(make_request("pub-browser", *PIDS))
    await minter.deliver(make_request("pub-withdrawn", PIDS[0]))
    await minter.deliver(
        PublicationWithdrawalRequested(
            source="/test",
            data=PublicationWithdrawalRequestedData(
                publication_id="pub-withdrawn", reason="duplicate of another publication"
            ),
        )
    )
    doi = domain.doi_for("10.5072", "pub-browser")
    withdrawn_doi = domain.doi_for("10.5072", "pub-withdrawn")

    problems: list[str] = []
    outside: list[str] = []
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=executable,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1100, "height": 900},
        )
        try:

            async def local_only(route: Any) -> None:
                if urlsplit(route.request.url).hostname == "127.0.0.1":
                    await route.continue_()
                else:
                    outside.append(route.request.url)
                    await route.abort()

            await context.route("**/*", local_only)
            page = await context.new_page()
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
                ),
            )
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

            response = await page.goto(f"{landing_server}/doi/{doi}", wait_until="load")
            assert response is not None and response.status == 200
            await page.screenshot(path=str(tmp_path / "landing.png"), full_page=True)
            json_ld = json.loads(
                await page.locator('script[type="application/ld+json"]').text_content() or ""
            )
            heading = await page.locator("h1").inner_text()
            orcid = await page.locator("a.orcid").first.get_attribute("href")
            rows = await page.locator("table.datasets tbody tr").count()
            await page.locator("details summary").click()
            apa = await page.locator("dd.citation-apa").inner_text()
            await page.locator("section.cite").screenshot(path=str(tmp_path / "citations.png"))
            landing_problems = list(problems)
            problems.clear()

            tombstone = await page.goto(f"{landing_server}/doi/{withdrawn_doi}")
            assert tombstone is not None
            tombstone_status = tombstone.status
            await page.screenshot(path=str(tmp_path / "tombstone.png"), full_page=True)
            tombstone_text = await page.locator("main").inner_text()
        finally:
            await context.close()

    assert json_ld["@type"] == "Dataset"
    assert json_ld["@id"] == f"https://doi.org/{doi}"
    assert json_ld["name"] == heading == "Strain relaxation in <Ni> & Fe thin films"
    assert json_ld["creator"][0]["@id"] == orcid == "https://orcid.org/0000-0002-1825-0097"
    assert [d["identifier"] for d in json_ld["distribution"]] == list(PIDS)
    assert rows == 2
    assert apa.startswith("Doe, J., & Roe, R. (2025). Strain relaxation in <Ni> & Fe thin films")
    assert tombstone_status == 410
    assert "duplicate of another publication" in tombstone_text
    assert landing_problems == []
    # Chromium itself reports a document answered with 410; anything else is the page's fault
    assert [p for p in problems if "status of 410 (Gone)" not in p] == []
    assert outside == []
    assert (tmp_path / "landing.png").stat().st_size > 10_000


async def _value(value: Any) -> Any:
    return value


@pytest.mark.parametrize(("ci", "outcome"), [(None, "skipped"), ("true", "failed")])
def test_missing_chromium_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str | None, outcome: str
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    monkeypatch.setitem(globals(), "CHROMIUM", "/nonexistent/chromium")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    expected = pytest.skip.Exception if outcome == "skipped" else pytest.fail.Exception
    with pytest.raises(expected, match="apt-get install -y chromium"):
        chromium_or_skip()
