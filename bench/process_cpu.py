"""CPU time of the processes a benchmark runs, read from Linux `/proc`.

The embedded stack's servers share two cores with the services under test, so a rate alone does
not say which process is the bottleneck; CPU seconds per item, per process, do.
"""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(executable: str, parent: int | None = None) -> int:
    """The child process of `parent` (default: this one) whose command starts `executable`."""
    parent = os.getpid() if parent is None else parent
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z" and int(ppid) == parent and command.endswith(executable):
            return int(entry.name)
    raise LookupError(f"no child process {executable!r} of {parent}")
