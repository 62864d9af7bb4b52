"""Pure adapters: each producer's native message → our CloudEvents. No I/O, no clock.

One module per producer (`wrdn`, `bluesky`, `asapo`, `door`), sharing `common` (the two kinds of
refusal, deterministic event ids) and `timestamps` (s/ms/ns epochs → aware datetimes). The
native-topic handlers in `scicat_ingestor.native` do the I/O around them (file sizes, the bluesky
run context) and hand the events to the same path CloudEvents take.
"""

from scicat_ingestor.adapters.common import BrokenMessage, NotThisKind, event_id
from scicat_ingestor.adapters.timestamps import EpochUnit, from_epoch, infer_epoch_unit

__all__ = [
    "BrokenMessage",
    "EpochUnit",
    "NotThisKind",
    "event_id",
    "from_epoch",
    "infer_epoch_unit",
]
