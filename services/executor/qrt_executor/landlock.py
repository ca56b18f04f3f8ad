"""Landlock scoping for job processes: a job cannot signal, nor connect to an abstract unix
socket of, any process outside what it started itself.

A job process runs as the executor's user, and kill(2) lets a process signal every process of
its user. Where the zygote may create PID namespaces (`sandbox.PidNamespaces`) a job sees and
reaches only its own; where it may not (an executor without CAP_SYS_ADMIN: the chart's runs as
uid 10001 without capabilities) nothing else stopped a job from SIGKILLing or SIGSTOPping the
executor, the zygote and the other jobs. A Landlock domain (landlock(7), Linux 5.13) does, and
needs no privilege: the job process restricts itself (`restrict`), and everything it starts
from then on inherits the domain.

- `LANDLOCK_SCOPE_SIGNAL` (ABI 6, Linux 6.12): `kill`, `tgkill`, `pidfd_send_signal` and
  `F_SETOWN`'s SIGIO to a process outside the domain fail with EPERM. Signals within the domain
  (a program killing its own subprocesses, a multiprocessing pool, itself) pass, and so do
  the kernel's own (SIGXCPU at the CPU limit, SIGCHLD, a parent-death signal). Processes
  outside the domain (the executor, the zygote) still signal the job: only the inside is
  restricted.
- `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET` (ABI 6): connecting or sending to an abstract unix
  socket bound by a process outside the domain fails with EPERM (the job's own network
  namespace hides them already where the sandbox builds one; with QRT_JOB_SANDBOX=off it does
  not).
- Any Landlock domain also refuses ptrace access to processes outside it, whatever the ruleset
  handles: `ptrace`, `/proc/<pid>/mem`, and for a job of an executor not running as root
  `/proc/<pid>/environ` and `maps`, even of the commands another job executes (which `execve`
  makes dumpable again).

The ruleset handles no file system or network access: the sandbox's mounts stay the file walls.
Scopes are found once per process (`scopes`, in the zygote before it forks job processes);
where the kernel has none (ABI < 6, Landlock not enabled at boot, a seccomp profile refusing
its system calls) job processes run as before, and the executor says so once at start.
"""

from __future__ import annotations

import ctypes
import functools
import os

# x86_64 and aarch64 share the numbers of these newer system calls (the generic table).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 0x1
LANDLOCK_SCOPE_SIGNAL = 0x2
PR_SET_NO_NEW_PRIVS = 38

SCOPES_BY_ABI = {6: LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL}
"""The scopes a job process takes, by the Landlock ABI that brought them (landlock(7))."""

SCOPING_ABI = min(SCOPES_BY_ABI)
"""The first Landlock ABI with scopes (Linux 6.12)."""

_libc = ctypes.CDLL(None, use_errno=True)


class _RulesetAttr(ctypes.Structure):
    """The kernel's `struct landlock_ruleset_attr` as of ABI 6 (a kernel of a later ABI takes
    this shorter size and reads the fields it lacks as zero)."""

    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


def _failed(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"landlock: {what}: {os.strerror(code)}")


@functools.cache
def abi() -> int:
    """The Landlock ABI version of the running kernel; 0 where there is none to use (not built
    or not enabled at boot: EOPNOTSUPP, too old: ENOSYS, a seccomp profile refusing it)."""
    version = _libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), LANDLOCK_CREATE_RULESET_VERSION
    )
    return max(int(version), 0)


@functools.cache
def scopes() -> int:
    """The `LANDLOCK_SCOPE_*` bits job processes restrict themselves with here; 0 where the
    kernel has no scopes. Probed once per process (with a ruleset made and closed at once)."""
    version = abi()
    wanted = 0
    for since, bits in SCOPES_BY_ABI.items():
        if version >= since:
            wanted |= bits
    if not wanted:
        return 0
    try:
        os.close(_ruleset(wanted))
    except OSError:
        return 0
    return wanted


def _ruleset(scoped: int) -> int:
    attr = _RulesetAttr(0, 0, scoped)
    fd = _libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0
    )
    if fd < 0:
        raise _failed("create ruleset")
    return int(fd)


def restrict() -> bool:
    """Put this single-threaded process (and all it starts from now on) in a Landlock domain of
    its own, scoped by `scopes()`, with no_new_privs set (landlock_restrict_self(2) needs it of
    a process without CAP_SYS_ADMIN). False, and nothing done, where the kernel has no scopes;
    raises OSError when the kernel refuses what `scopes` found it has."""
    scoped = scopes()
    if not scoped:
        return False
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _failed("no_new_privs")
    ruleset = _ruleset(scoped)
    try:
        if _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            raise _failed("restrict self")
    finally:
        os.close(ruleset)
    return True


def unavailable_reason() -> str | None:
    """Why job processes here are not scoped, in words (None: they are)."""
    if scopes():
        return None
    version = abi()
    if version == 0:
        found = "the kernel has no Landlock (not built, not enabled at boot, or refused here)"
    else:
        found = f"the kernel's Landlock ABI is {version}"
    return (
        f"job processes are not Landlock-scoped: {found}, scoping needs ABI {SCOPING_ABI} "
        "(Linux 6.12); where they share the executor's PID namespace (no CAP_SYS_ADMIN) they "
        "can signal the executor's processes"
    )
