"""`scicat-pipeline up`: the whole pipeline on one machine, with no Docker.

Starts (or points at) Kafka, MongoDB and OpenSearch, creates the contract topics, runs the local
DataCite stand-in, and starts the four services as separate processes — exactly as they run in
production, configured only through their environment variables. The services are never imported
here; they are started by module name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from scicat_pipeline.embedded import (
    EMBEDDED_KAFKA_TUNING,
    EmbeddedKafka,
    EmbeddedMongo,
    EmbeddedOpenSearch,
    create_topics,
    free_port,
)
from scicat_schemas.topics import ALL_TOPICS, NATIVE_TOPICS

DATACITE_USER = "DEMO.SCICAT"
DATACITE_PASSWORD = "demo-password"
DATACITE_PREFIX = "10.5072"
OIDC_AUDIENCE = "scicat-search"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    env_prefix: str


SERVICES = (
    ServiceSpec("ingestor", "scicat_ingestor", "INGESTOR_"),
    ServiceSpec("indexer", "scicat_indexer", "INDEXER_"),
    ServiceSpec("doi-minter", "scicat_doi_minter", "DOI_MINTER_"),
    ServiceSpec("oai-provider", "scicat_oai_provider", "OAI_PROVIDER_"),
)


@dataclass
class StackOptions:
    kafka: str | None = None
    mongodb: str | None = None
    opensearch: str | None = None
    database: str = "scicat"
    partitions: int = 3
    state_dir: Path | None = None


@dataclass
class Stack:
    """The running pipeline; `endpoints` is what `up` prints."""

    options: StackOptions
    endpoints: dict[str, str] = field(default_factory=dict)
    _embedded: list[Any] = field(default_factory=list)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[Any] = field(default_factory=list)
    _standin: uvicorn.Server | None = None
    _standin_task: asyncio.Task[None] | None = None
    _oidc: uvicorn.Server | None = None
    _oidc_task: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, str]:
        state_dir = self.options.state_dir or Path(tempfile.mkdtemp(prefix="scicat-pipeline-"))
        log_dir = state_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        kafka = self.options.kafka or self._start(EmbeddedKafka()).bootstrap_servers
        mongodb = self.options.mongodb or self._start(EmbeddedMongo()).uri
        opensearch = self.options.opensearch or self._start(EmbeddedOpenSearch()).url
        await create_topics(
            kafka, [*ALL_TOPICS, *NATIVE_TOPICS], partitions=self.options.partitions
        )
        datacite = await self._start_datacite_standin()
        oidc = await self._start_oidc_standin()

        ports = {spec.name: free_port() for spec in SERVICES}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        common = {
            "KAFKA__BOOTSTRAP_SERVERS": kafka,
            "MONGO__URI": mongodb,
            "MONGO__DATABASE": self.options.database,
            "HTTP__HOST": "127.0.0.1",
            "LOG_LEVEL": "INFO",
        }
        if not self.options.kafka:
            common |= {f"KAFKA__{k.upper()}": str(v) for k, v in EMBEDDED_KAFKA_TUNING.items()}
        specific = {
            "indexer": {
                "OPENSEARCH__URL": opensearch,
                "OIDC__ISSUER": oidc,
                "OIDC__AUDIENCE": OIDC_AUDIENCE,
            },
            "doi-minter": {
                "PUBLIC_URL": urls["doi-minter"],
                "DATACITE__URL": datacite,
                "DATACITE__USERNAME": DATACITE_USER,
                "DATACITE__PASSWORD": DATACITE_PASSWORD,
                "DATACITE__PREFIX": DATACITE_PREFIX,
            },
            "oai-provider": {"PUBLIC_URL": urls["oai-provider"]},
        }
        for spec in SERVICES:
            env = dict(os.environ)
            values = common | {"HTTP__PORT": str(ports[spec.name])} | specific.get(spec.name, {})
            env.update({spec.env_prefix + key: value for key, value in values.items()})
            log_file = (log_dir / f"{spec.name}.log").open("ab")
            self._logs.append(log_file)
            self._processes[spec.name] = subprocess.Popen(  # noqa: ASYNC220 - spawn only
                [sys.executable, "-m", spec.module],
                env=env,
                stdout=log_file,
                stderr=log_file,
                stdin=subprocess.DEVNULL,
            )
        await self._wait_ready(urls, log_dir)
        self.endpoints = {
            "kafka": kafka,
            "mongodb": mongodb,
            "opensearch": opensearch,
            "search_api": f"{urls['indexer']}/datasets",
            "oai_pmh": f"{urls['oai-provider']}/oai",
            "datacite": datacite,
            "oidc": oidc,
            "landing": f"{urls['doi-minter']}/doi",
            "ingestor": urls["ingestor"],
            "indexer": urls["indexer"],
            "doi_minter": urls["doi-minter"],
            "oai_provider": urls["oai-provider"],
            "logs": str(log_dir),
        }
        return self.endpoints

    def _start(self, server: Any) -> Any:
        self._embedded.append(server.start())
        return server

    async def _start_datacite_standin(self) -> str:
        from scicat_pipeline.standins.datacite import create_app

        port = free_port()
        app = create_app(username=DATACITE_USER, password=DATACITE_PASSWORD, prefix=DATACITE_PREFIX)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self._standin = uvicorn.Server(config)
        self._standin_task = asyncio.create_task(self._standin.serve())
        while not self._standin.started:
            if self._standin_task.done():
                self._standin_task.result()
            await asyncio.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    async def _start_oidc_standin(self) -> str:
        """The local OIDC issuer: `scicat-pipeline token` gets bearer tokens from it."""
        from scicat_pipeline.standins.oidc import create_app

        port = free_port()
        issuer = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_app(issuer, audience=OIDC_AUDIENCE),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
        self._oidc = uvicorn.Server(config)
        self._oidc_task = asyncio.create_task(self._oidc.serve())
        while not self._oidc.started:
            if self._oidc_task.done():
                self._oidc_task.result()
            await asyncio.sleep(0.02)
        return issuer

    async def _wait_ready(self, urls: dict[str, str], log_dir: Path, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(urls)
        async with httpx.AsyncClient(timeout=2) as client:
            while pending:
                for name, url in list(pending.items()):
                    self.check_alive(log_dir)
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{url}/readyz")).status_code == 200:
                            del pending[name]
                if time.monotonic() > deadline:
                    raise RuntimeError(f"services not ready after {timeout} s: {sorted(pending)}")
                await asyncio.sleep(0.1)

    def check_alive(self, log_dir: Path | None = None) -> None:
        """Raise if a service process died; its log tells why."""
        for name, process in self._processes.items():
            if process.poll() is not None:
                where = f" (see {log_dir / (name + '.log')})" if log_dir else ""
                raise RuntimeError(f"service {name} exited with code {process.returncode}{where}")

    async def stop(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self._processes.values():
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._standin is not None and self._standin_task is not None:
            self._standin.should_exit = True
            await self._standin_task
        if self._oidc is not None and self._oidc_task is not None:
            self._oidc.should_exit = True
            await self._oidc_task
        for server in reversed(self._embedded):
            server.stop()
        for log_file in self._logs:
            log_file.close()
