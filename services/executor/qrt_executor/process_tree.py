"""Every process a job starts ends with it, however it tries to get away.

A process group or a session is no fence: a program's child may call `setsid()`, or
double-fork and leave an orphan behind. Linux's *child subreapers* are: an orphan is handed to
its nearest ancestor that is a subreaper instead of to init. So

- each job process is a subreaper (`qrt_common.processes.become_subreaper`): while it runs,
  everything it started, in whatever session, stays in its tree, and `kill_tree` ends that
  tree (cancel, time limit, executor shutdown);
- the zygote is a subreaper too: when a job process exits, what it leaves becomes the zygote's,
  and the zygote kills every child it did not fork itself (`kill_strangers`) - at once, since
  the orphans are handed over before the job process's exit is reported.

(One-shot programs need none of this: bubblewrap gives each a PID namespace of its own, which the
kernel ends, with everything in it, when the command ends.)
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Collection
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The children of process `pid` (zombies included), from each of its threads' `children`
    file; on a kernel without those files (no CONFIG_PROC_CHILDREN), by reading every process's
    parent instead."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split())
        except FileNotFoundError:
            if Path(f"/proc/{pid}/task/{task}").is_dir():
                return _children_by_parent(pid)
        except OSError:
            continue
    return found


def _children_by_parent(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def live_descendants(pid: int) -> list[int]:
    """Every live process below `pid` (zombies have no children: they are skipped)."""
    found, waiting = [], [pid]
    while waiting:
        for child in children(waiting.pop()):
            if _alive(child):
                found.append(child)
                waiting.append(child)
    return found


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def kill_tree(root: int, pidfd: int | None = None) -> None:
    """SIGKILL process `root` (a subreaper: see the module) and every process below it; with
    `pidfd` (a pidfd of `root`, opened while it was known to run), nothing at all once `root`
    has ended, since its pid may be another process's by then.

    `root` is stopped first so that it forks nothing more; its descendants are killed in rounds
    until none is left that was not killed already (a process with SIGKILL pending cannot fork,
    so each round can only find children born before the last one's signal); `root` last, so
    that no orphan leaves its tree before. Safe on a process that has ended.
    """
    if pidfd is not None:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGSTOP)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
    else:
        _kill(root, signal.SIGSTOP)
    killed: set[int] = set()
    while fresh := [pid for pid in live_descendants(root) if pid not in killed]:
        for pid in fresh:
            _kill(pid, signal.SIGKILL)
        killed.update(fresh)
    if pidfd is None:
        _kill(root, signal.SIGKILL)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)


def kill_strangers(known: Collection[int]) -> None:
    """SIGKILL every child of this process not in `known`: orphans handed to this subreaper."""
    for pid in children(os.getpid()):
        if pid not in known:
            _kill(pid, signal.SIGKILL)
