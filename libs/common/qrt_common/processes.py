"""Processes that must not outlive the process that started them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1
"""prctl(2): the signal this process gets when its parent ends (Linux)."""


def end_with_parent(parent: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Have this process get `sig` when `parent`, the process that started it, ends (even by
    SIGKILL), and end it at once if `parent` has ended already. Linux only: elsewhere nothing
    changes, and the caller relies on its pipes to that parent closing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))
        if os.getppid() != parent:  # it ended before the request took effect
            os._exit(0)
