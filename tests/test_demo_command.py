"""`make demo` runs `scicat-pipeline demo`: it publishes the sample and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from scicat_pipeline.testing.xsd import assert_valid

pytestmark = pytest.mark.e2e


def test_demo_publishes_the_sample_beamtime_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "scicat_pipeline.cli", "demo", "--state-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoints = json.loads(process.stdout.readline() or "{}")  # type: ignore[union-attr]
        assert {
            "kafka",
            "mongodb",
            "opensearch",
            "search_api",
            "oai_pmh",
            "datacite",
            "landing",
        } <= set(endpoints), endpoints
        result = json.loads(process.stdout.readline() or "{}")  # type: ignore[union-attr]
        assert result, "the demo printed no URLs"

        search = httpx.get(result["search"], timeout=10).json()
        assert search["total"] >= 2
        assert all(item["pid"].startswith("local/11019001/") for item in search["items"])
        landing = httpx.get(result["landing_page"], timeout=10)
        assert landing.status_code == 200
        assert "LaB6" in landing.text
        records = httpx.get(result["oai_pmh_list_records"], timeout=10)
        assert_valid(records.content)
        assert result["doi"] in records.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        stderr = process.stderr.read()  # type: ignore[union-attr]
    assert code == 0, stderr[-3000:]
    for name in ("ingestor", "indexer", "doi_minter", "oai_provider", "datacite", "opensearch"):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{endpoints[name]}/", timeout=2)
    host, port = endpoints["kafka"].split(":")
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=2).close()
