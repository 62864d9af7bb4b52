"""The base every event payload shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Payload(BaseModel):
    """Base of every `data` payload: unknown fields are refused so typos surface at the producer."""

    model_config = ConfigDict(extra="forbid")
