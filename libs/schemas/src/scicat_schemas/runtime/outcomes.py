"""What a handler says of a record: done (`None`), `Rejected` (dead-lettered), or `DEFERRED`."""

from __future__ import annotations

from pydantic import ValidationError


class Rejected(Exception):
    """Input that can never succeed; it is dead-lettered with this reason.

    `error_type` is the machine-readable kind in the `dlq-error-type` header.
    """

    def __init__(self, reason: str, *, error_type: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


def rejected_from_validation(error: ValidationError, *, what: str) -> Rejected:
    """A readable reason from a pydantic error: which field, what was wrong."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()[:10]
    )
    types = {e["type"] for e in error.errors()}
    if "json_invalid" in types:
        kind = "invalid-json"
    elif types == {"union_tag_invalid"}:
        kind = "unknown-type"
    else:
        kind = "invalid-event"
    return Rejected(f"{what} is not valid: {problems}", error_type=kind)


class Deferred:
    """Not handled in this call: the record, and every later one of its partition in the batch,
    is delivered again. A batch handler defers the rest of a batch it cannot finish within its
    time budget, since a consumer that does not poll within `max_poll_interval_ms` is put out of
    its group and could then never commit that batch."""

    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED = Deferred()
