"""Helpers shared by the cross-service tests."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    endpoints: dict[str, str]
    stderr_lines: list[str]


def cloud_event(event_type: str, event_id: str, data: dict[str, Any]) -> bytes:
    """A CloudEvent written by hand, as an outside producer would: no project code involved."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": "/tests/e2e/beamline",
            "type": event_type,
            "time": "2026-03-01T10:00:00Z",
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()
