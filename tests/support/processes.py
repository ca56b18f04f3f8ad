"""Looking at processes from outside, through /proc and pidfds (Linux): a process's children,
the CPU time it spent, whether it has ended."""

from __future__ import annotations

import os
import select
from pathlib import Path

PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return [text.split(" ", 1)[0], *text.rsplit(")", 1)[1].split()]


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[2] == str(pid) and stat[1] != "Z":
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time `pid` has spent (0 once it is gone)."""
    stat = _stat(pid)
    if stat is None:
        return 0.0
    return (int(stat[12]) + int(stat[13])) / os.sysconf("SC_CLK_TCK")


def ended(pid: int) -> bool:
    """True once `pid` has ended, all its threads too (gone, or a zombie nobody collected yet;
    a process whose main thread is a zombie may still have threads ending)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], 0)[0])
    finally:
        os.close(fd)
