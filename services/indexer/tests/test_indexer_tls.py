"""OpenSearch over TLS signed by a facility's own CA: `OPENSEARCH__CA_CERTS` is what is trusted."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError

from scicat_indexer.settings import OpenSearchSettings
from scicat_indexer.store import OpenSearchDatasetIndex
from scicat_pipeline.testing.tls import self_signed_certificate, tls_proxy


async def test_the_index_is_reached_over_tls_trusting_the_configured_ca(
    opensearch_url: str, tmp_path: Path
) -> None:
    cert_file, key_file = self_signed_certificate(tmp_path, "opensearch.test")
    upstream = urlsplit(opensearch_url).port
    assert upstream is not None
    async with tls_proxy(upstream, cert_file, key_file) as port:
        settings = OpenSearchSettings(url=f"https://127.0.0.1:{port}", ca_certs=cert_file)
        async with OpenSearchDatasetIndex(settings).connected() as index:
            aliases = await index.client.indices.get_alias(name=settings.alias)

    assert list(aliases) == [f"{settings.alias}-v1"]


async def test_a_certificate_from_an_unknown_ca_is_refused(
    opensearch_url: str, tmp_path: Path
) -> None:
    cert_file, key_file = self_signed_certificate(tmp_path, "opensearch.test")
    upstream = urlsplit(opensearch_url).port
    assert upstream is not None
    async with tls_proxy(upstream, cert_file, key_file) as port:
        settings = OpenSearchSettings(url=f"https://127.0.0.1:{port}", timeout_seconds=5)
        with pytest.raises(OpenSearchConnectionError):
            async with OpenSearchDatasetIndex(settings).connected():
                pass
