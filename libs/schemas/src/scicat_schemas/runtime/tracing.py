"""OpenTelemetry traces across the pipeline: one trace from a beamline's event to the DOI.

Off unless an OTLP endpoint is configured with OpenTelemetry's own variables
(`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, sampling with
`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`), so a service nobody traces pays nothing per
message. When on, for a service:
- FastStream's Kafka middleware continues the producer's trace from a record's `traceparent`
  header and writes the trace into every event the service publishes (dead letters copy the
  original headers, so a dead letter keeps its trace too);
- FastAPI requests (not the probes), MongoDB commands and outgoing httpx calls (DataCite, OIDC
  discovery) are spans of the same trace;
- every JSON log line written inside a span carries `trace_id` and `span_id`
  (`logging.configure_logging`), so logs and traces join up.

`create_broker` and `create_service_app` look the provider up by service name, so services
need no code of their own; tests enable tracing with an in-memory exporter first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

from opentelemetry import trace
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_NAMESPACE, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
UNTRACED_PATHS = "healthz,readyz,metrics"
"""Probes and scrapes: frequent, uninteresting, and they would drown the real traces."""

MAX_BATCH_LINKS = 128
"""OpenTelemetry's default limit of links per span; a bigger batch links its first 128 traces."""

_providers: dict[str, TracerProvider] = {}
_propagator = TraceContextTextMapPropagator()


def enable_tracing(service: str, exporter: SpanExporter) -> TracerProvider:
    """Trace `service` into `exporter`, synchronously (tests: an in-memory exporter)."""
    provider = _new_provider(service)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _providers[service] = provider
    _instrument_libraries(provider)
    return provider


def disable_tracing(service: str) -> None:
    """Forget `service`'s provider (tests), flushing what it holds."""
    provider = _providers.pop(service, None)
    if provider is None:
        return
    provider.shutdown()
    for instrumentor in _instrumentors():
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    if _providers:
        _instrument_libraries(next(iter(_providers.values())))


def tracer_provider(service: str) -> TracerProvider | None:
    """`service`'s provider: the one enabled, one exporting over OTLP when configured, or None."""
    if service in _providers:
        return _providers[service]
    if not any(os.environ.get(name) for name in OTLP_ENDPOINT_VARIABLES):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = _new_provider(service)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    _providers[service] = provider
    _instrument_libraries(provider)
    return provider


@contextmanager
def batch_span(
    service: str, name: str, headers: Iterable[Iterable[tuple[str, bytes]]]
) -> Iterator[None]:
    """A span around handling one batch, linked to the trace of every record in it.

    A batch has many parents, so OpenTelemetry links them rather than choosing one. FastStream's
    middleware links only records it published itself (it keys them by its `correlation_id`
    header); this links any record carrying a W3C `traceparent`, as a beamline's producer sends.
    """
    provider = tracer_provider(service)
    if provider is None:
        yield
        return
    links: dict[int, Link] = {}
    for record_headers in headers:
        carrier = {key: value.decode(errors="replace") for key, value in record_headers}
        context = trace.get_current_span(_propagator.extract(carrier)).get_span_context()
        if context.is_valid and len(links) < MAX_BATCH_LINKS:
            links.setdefault(context.trace_id, Link(context))
    tracer = provider.get_tracer("scicat_schemas.runtime")
    with tracer.start_as_current_span(name, kind=SpanKind.CONSUMER, links=list(links.values())):
        yield


def _new_provider(service: str) -> TracerProvider:
    try:
        release = version("scicat-schemas")
    except PackageNotFoundError:
        release = "unknown"
    return TracerProvider(
        resource=Resource.create(
            {
                SERVICE_NAME: f"scicat-{service}",
                SERVICE_NAMESPACE: "scicat-pipeline",
                SERVICE_VERSION: release,
            }
        )
    )


def _instrument_libraries(provider: TracerProvider) -> None:
    """PyMongo's command monitoring and httpx's transports are process-wide: instrument once."""
    for instrumentor in _instrumentors():
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
        instrumentor.instrument(tracer_provider=provider)


def _instrumentors() -> tuple[PymongoInstrumentor, HTTPXClientInstrumentor]:
    """Singletons (the instrumentation library makes them so), hence their shared state."""
    return PymongoInstrumentor(), HTTPXClientInstrumentor()
