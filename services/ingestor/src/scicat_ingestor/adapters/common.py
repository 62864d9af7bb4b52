"""What every adapter shares: its two ways to refuse a message, and deterministic event ids."""

from __future__ import annotations

import hashlib

MAX_ID_PART = 200
"""Natural keys longer than this (long file paths) are shortened to a digest in event ids."""


class NotThisKind(Exception):
    """The message is not of the kind this topic carries (another schema, a document we do not
    need). It is counted and skipped, never dead-lettered: foreign traffic is normal on shared
    topics."""


class BrokenMessage(ValueError):
    """The message is of the right kind but cannot be turned into an event; the text says what
    is wrong and what the producer should send instead. It is dead-lettered."""


def event_id(kind: str, *natural_key: str) -> str:
    """A CloudEvent id made from the producer's natural key, so a redelivered native message
    becomes the same (`source`, `id`) pair and the ingestor recognises it as already applied.

    Parts are joined with `/`; a part longer than `MAX_ID_PART` is replaced by its sha256 prefix
    so ids stay short enough for a MongoDB `_id` however deep the file tree is.
    """
    parts = [
        part
        if len(part) <= MAX_ID_PART
        else "sha256:" + hashlib.sha256(part.encode()).hexdigest()[:32]
        for part in natural_key
    ]
    return ":".join([kind, "/".join(parts)])
