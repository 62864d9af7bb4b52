"""The dead-letter contract: the original bytes, and why, and where they came from, in headers.

A dead-lettered message is the consumed record's value, unchanged, with its key and original
headers, plus the headers below. `scicat-pipeline dlq replay` relies on these names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

REASON: Final = "dlq-reason"
"""What was wrong, in words a person can act on."""
ERROR_TYPE: Final = "dlq-error-type"
"""Machine-readable kind: `invalid-json`, `invalid-event`, `unknown-type`, `rejected`..."""
SERVICE: Final = "dlq-service"
ORIGINAL_TOPIC: Final = "dlq-original-topic"
ORIGINAL_PARTITION: Final = "dlq-original-partition"
ORIGINAL_OFFSET: Final = "dlq-original-offset"
FAILED_AT: Final = "dlq-failed-at"

MAX_REASON_BYTES: Final = 4000


def dead_letter_headers(
    *,
    reason: str,
    error_type: str,
    service: str,
    topic: str,
    partition: int,
    offset: int,
    failed_at: datetime | None = None,
) -> dict[str, str]:
    """Headers added to a dead letter; the reason is truncated to keep the record small."""
    when = failed_at or datetime.now(UTC)
    return {
        REASON: reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore"),
        ERROR_TYPE: error_type,
        SERVICE: service,
        ORIGINAL_TOPIC: topic,
        ORIGINAL_PARTITION: str(partition),
        ORIGINAL_OFFSET: str(offset),
        FAILED_AT: when.isoformat(),
    }
