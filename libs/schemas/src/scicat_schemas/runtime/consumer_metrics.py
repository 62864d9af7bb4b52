"""The Prometheus metrics of `ReliableConsumer`, one set per service."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass
class ConsumerMetrics:
    registry: CollectorRegistry
    processed: Counter = field(init=False)
    dead_letters: Counter = field(init=False)
    transient_failures: Counter = field(init=False)
    deferred: Counter = field(init=False)
    duration: Histogram = field(init=False)
    lag: Gauge = field(init=False)

    def __post_init__(self) -> None:
        self.processed = Counter(
            "scicat_messages_processed_total",
            "Messages that reached an outcome.",
            ["topic", "outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "scicat_dead_letters_total",
            "Messages sent to the dead-letter topic.",
            ["topic", "error_type"],
            registry=self.registry,
        )
        self.transient_failures = Counter(
            "scicat_transient_failures_total",
            "Handler failures that will be retried (outage of a store or outside service).",
            ["topic"],
            registry=self.registry,
        )
        self.deferred = Counter(
            "scicat_messages_deferred_total",
            "Records a batch handler handed back undone, out of its time budget; they are "
            "delivered again (a steady rise: batches too large for how slow the work is).",
            ["topic"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "scicat_message_duration_seconds",
            "Handler time per message, retries excluded.",
            ["topic"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "scicat_consumer_lag_messages",
            "Records on a partition after the last one handled (its high watermark when last "
            "fetched, minus the next offset): how far behind the service is.",
            ["topic", "partition"],
            registry=self.registry,
        )
