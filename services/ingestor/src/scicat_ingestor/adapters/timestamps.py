"""Epoch timestamps in seconds, milliseconds or nanoseconds → timezone-aware UTC datetimes.

Producers disagree on the unit (bluesky: float s; ESS run control and Kafka record times: int ms;
ASAP::O and ESS event data: int ns), so each adapter names the unit it knows. `infer_epoch_unit`
exists for people typing numbers (`scicat-pipeline emit --time`): by magnitude, below 1e11 is
seconds (up to year 5138), below 1e14 milliseconds (1973 onwards), otherwise nanoseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

EpochUnit = Literal["s", "ms", "ns"]

_PER_SECOND: dict[str, int] = {"s": 1, "ms": 1_000, "ns": 1_000_000_000}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECONDS_BELOW = 1e11
_MILLISECONDS_BELOW = 1e14


def infer_epoch_unit(value: float) -> EpochUnit:
    """The unit a human most likely meant for this epoch number (see the module docstring)."""
    magnitude = abs(value)
    if magnitude < _SECONDS_BELOW:
        return "s"
    if magnitude < _MILLISECONDS_BELOW:
        return "ms"
    return "ns"


def from_epoch(value: float, unit: EpochUnit) -> datetime:
    """`value` units since 1970-01-01 UTC as an aware datetime (microsecond precision).

    Integers are divided exactly (a ns timestamp keeps its microseconds); booleans, NaN,
    infinities and values outside datetime's range raise `ValueError` naming the input.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"timestamp {value!r} is not a number of {unit} since the epoch")
    per_second = _PER_SECOND[unit]
    try:
        if isinstance(value, int):
            micros = value * 1_000_000 // per_second
        else:
            micros = round(value * 1_000_000 / per_second)
        return _EPOCH + timedelta(microseconds=micros)
    except (OverflowError, ValueError):
        raise ValueError(
            f"timestamp {value!r} {unit} since the epoch is not a representable date"
        ) from None
