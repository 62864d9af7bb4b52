"""The whole pipeline as a newcomer starts it: `scicat-pipeline up`, one process, real protocols."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaProducer
from pipeline_support import RunningStack

from scicat_pipeline.testing.otlp import OtlpReceiver


@pytest.fixture(scope="session")
def traces() -> Iterator[OtlpReceiver]:
    """Where the session's stack sends its traces (a collector's OTLP/HTTP face, in memory)."""
    receiver = OtlpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, traces: OtlpReceiver) -> Iterator[RunningStack]:
    """`scicat-pipeline up` in a subprocess; its first stdout line is the endpoints JSON.

    Tracing is on, exporting to `traces`, so every end-to-end test also runs traced services.
    """
    state = tmp_path_factory.mktemp("stack")
    process = subprocess.Popen(
        [sys.executable, "-m", "scicat_pipeline.cli", "up", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": traces.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        },
    )
    stderr_lines: list[str] = []
    threading.Thread(
        target=lambda: stderr_lines.extend(iter(process.stderr.readline, "")),  # type: ignore[union-attr]
        daemon=True,
    ).start()
    line = process.stdout.readline()  # type: ignore[union-attr]
    if not line:
        process.wait(10)
        logs = "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in (state / "logs").glob("*.log")
        )
        pytest.fail(f"`up` exited ({process.returncode}): {''.join(stderr_lines)}\n{logs}")
    running = RunningStack(process, json.loads(line), stderr_lines)
    try:
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
async def producer(stack: RunningStack) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=stack.endpoints["kafka"], acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()
