"""Processes that must not outlive the process that started them, nor leave descendants behind.

Both rules rest on prctl(2) (Linux): a parent-death signal, and child subreapers, to which
orphaned descendants are handed instead of to init. Elsewhere they do nothing, and callers fall
back on their pipes to the parent closing.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
"""prctl(2): the signal this process gets when its parent ends."""
PR_SET_DUMPABLE = 4
"""prctl(2): whether others of the same user may ptrace this process and read its /proc files."""
PR_SET_CHILD_SUBREAPER = 36
"""prctl(2): orphaned descendants of the caller become its children (Linux 3.4)."""


def _prctl() -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return function


_PRCTL = _prctl()
"""Looked up once, at import (in the executor's zygote: before it forks job processes)."""


def end_with_parent(parent: int, sig: signal.Signals = signal.SIGKILL) -> None:
    """Have this process get `sig` when `parent`, the process that started it, ends (even by
    SIGKILL), and end it at once if `parent` has ended already."""
    if _PRCTL is None or _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # it ended before the request took effect
        os._exit(0)


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants; False where the system cannot
    (not Linux), and descendants may then escape."""
    return _PRCTL is not None and _PRCTL(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def keep_proc_entry_private() -> bool:
    """Make this process not dumpable: processes of the same user without CAP_SYS_PTRACE can no
    longer read its `/proc/<pid>/environ`, `mem` or `fd` (ptrace access mode checks, proc(5)),
    nor ptrace it. True if it worked. (A program run later with exec is dumpable again.)"""
    return _PRCTL is not None and _PRCTL(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
