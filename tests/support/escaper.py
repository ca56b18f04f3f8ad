"""Processes that try to outlive their job, and how a test finds them.

Run as a script, `python escaper.py TOKEN DIR` is a process that tries to outlive its job twice
over: it stays in a session of its own (start it with `start_new_session=True`) and
double-forks a daemon (an orphan, in a session of its own too). Once the daemon runs it writes
both pids to `DIR/escaped`, then sleeps. Both carry TOKEN in their command line, so
`survivors(TOKEN)` finds them from anywhere (a sandbox's pids are not the machine's). The script
needs nothing but the standard library: sandboxed programs run it with the machine's Python.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ESCAPER = Path(__file__).resolve()
"""This script, for programs to start."""
MARK = "escaped"
"""The file (in DIR) the script writes once both of its processes run."""


def survivors(token: str) -> list[int]:
    """The live processes of this machine whose command line carries `token`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and token.encode() in command.split(b"\0"):
            found.append(int(entry.name))
    return found


def _sleep_forever() -> None:
    while True:
        time.sleep(1000)


def _escape(directory: str) -> None:
    read, write = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write, str(os.getpid()).encode())
            os.close(write)
            _sleep_forever()
        os._exit(0)
    os.wait()
    os.close(write)
    daemon = os.read(read, 64).decode()
    written = Path(directory, MARK + ".part")
    written.write_text(f"{os.getpid()} {daemon}")
    written.rename(Path(directory, MARK))
    _sleep_forever()


if __name__ == "__main__":
    _escape(sys.argv[2])
