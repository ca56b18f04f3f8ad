"""Exit codes of the client commands: how a job ended, and what went wrong otherwise (README,
"From the command line")."""

from __future__ import annotations

OK = 0
"""The command did what it was asked; for a job it followed: the job completed."""
FAILED = 1
"""The job failed."""
USAGE = 2
"""Bad arguments, unreadable params or config file (argparse uses 2 too)."""
CANCELLED = 3
"""The job was cancelled."""
RAN_TOO_LONG = 4
"""The platform stopped the job at its time limit ("Cancelled - Ran too long")."""
REFUSED = 5
"""The platform answered with an error (unknown job or program, bad input, a bad key, ...)."""
UNREACHABLE = 6
"""The platform could not be reached (connection refused, DNS, a stream that broke)."""
TIMED_OUT = 7
"""The job had not ended within `--timeout`."""
INTERRUPTED = 130
"""Ctrl-C (the job goes on running)."""

BY_STATUS = {
    "Completed": OK,
    "Failed": FAILED,
    "Cancelled": CANCELLED,
    "Cancelled - Ran too long": RAN_TOO_LONG,
}


def of_status(status: str) -> int:
    """The exit code for a job that ended with `status` (OK for one that has not ended)."""
    return BY_STATUS.get(status, OK)
