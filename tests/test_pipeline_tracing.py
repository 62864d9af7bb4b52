"""Traces cross the pipeline's processes: beamline → ingestor → Kafka → indexer.

Both consume in batches, and a batch has many parents, so each links the traces of its records
(OpenTelemetry's rule for batches) instead of continuing one of them."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from pipeline_support import RunningStack, cloud_event

from scicat_pipeline.polling import wait_for
from scicat_pipeline.testing.otlp import OtlpReceiver, ReceivedSpan

pytestmark = pytest.mark.e2e

INGESTOR_BATCH = "acquisition.events handle batch"
INDEXER_BATCH = "catalogue.datasets handle batch"


async def test_the_ingestor_links_the_beamline_trace_and_the_indexer_links_the_ingestors(
    stack: RunningStack, producer: AIOKafkaProducer, traces: OtlpReceiver
) -> None:
    trace_id = uuid.uuid4().hex
    run_id = f"traced_{uuid.uuid4().hex[:6]}"
    beamtime = "11030001"
    await producer.send_and_wait(
        "acquisition.events",
        cloud_event(
            "file.closed",
            f"{run_id}-1",
            {
                "path": f"/asap3/petra3/gpfs/p08/2026/data/{beamtime}/raw/{run_id}/img_1.cbf",
                "size": 512,
                "closed_at": "2026-03-01T10:00:00Z",
                "instrument": "P08",
                "beamtime_id": beamtime,
                "run_id": run_id,
            },
        ),
        key=run_id.encode(),
        headers=[("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01".encode())],
    )

    def chain() -> tuple[ReceivedSpan, ReceivedSpan] | None:
        """The ingestor's batch span linked to the beamline's trace, and the indexer's batch
        span linked to the trace the ingestor published `dataset.stored` in."""
        spans = traces.spans()
        ingested = next(
            (s for s in spans if s.name == INGESTOR_BATCH and trace_id in s.linked_trace_ids),
            None,
        )
        if ingested is None:
            return None
        indexed = next(
            (
                s
                for s in spans
                if s.name == INDEXER_BATCH and ingested.trace_id in s.linked_trace_ids
            ),
            None,
        )
        return None if indexed is None else (ingested, indexed)

    ingested, indexed = await wait_for(
        lambda: _async(chain()), timeout=45, what="the trace linked from ingestor to indexer"
    )
    assert (ingested.service, indexed.service) == ("scicat-ingestor", "scicat-indexer")
    published = [
        s for s in traces.spans() if s.trace_id == ingested.trace_id and s.name.endswith("publish")
    ]
    assert any(s.name == "catalogue.datasets publish" for s in published)


async def _async(value: object) -> object:
    return value
