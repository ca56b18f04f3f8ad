"""Landlock for job processes: a job cannot signal, nor connect to an abstract unix socket of,
any process outside what it started itself, and reaches only the files its rules allow.

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

- File system access (ABI 1, Linux 5.13): the ruleset handles every access right the running
  ABI knows (`fs_access`: reading, writing, executing, making and removing, and from later
  ABIs `REFER`, `TRUNCATE`, `IOCTL_DEV`), so whatever its `Rule`s do not allow beneath a
  directory, or on a file, is refused with EACCES, even to root. `qrt_executor.sandbox` makes
  the rules (`sandbox.file_rules`): a job reads only the system's directories, Python's and
  its program's, and writes only its own directories. A rule ties to the inode its path
  names: the system's and /etc's, which the job's mounts leave as they are, are opened once in
  the zygote (`OpenedRules`); the job's own directories and what its mounts make anew (its
  /tmp, /proc) are opened in the job process as it restricts itself, after its mounts.

The ruleset handles no network access (the sandbox's network namespace is the network wall).
What the kernel offers is found once per process (`scopes`, `fs_access`, in the zygote before
it forks job processes); where it has nothing of it (Landlock not enabled at boot, a seccomp
profile refusing its system calls) job processes run as before, and the executor says so once
at start (`unavailable_reason`).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass

# x86_64 and aarch64 share the numbers of these newer system calls (the generic table).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_RESTRICT_SELF = 446
SYS_LANDLOCK_ADD_RULE = 445
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
ACCESS_FS_EXECUTE = 1 << 0
ACCESS_FS_WRITE_FILE = 1 << 1
ACCESS_FS_READ_FILE = 1 << 2
ACCESS_FS_READ_DIR = 1 << 3
ACCESS_FS_REFER = 1 << 13
ACCESS_FS_TRUNCATE = 1 << 14
ACCESS_FS_IOCTL_DEV = 1 << 15

FS_ACCESS_BY_ABI = {
    1: (1 << 13) - 1,  # EXECUTE ... MAKE_SYM
    2: ACCESS_FS_REFER,
    3: ACCESS_FS_TRUNCATE,
    5: ACCESS_FS_IOCTL_DEV,
}
"""The file system access rights a ruleset handles, by the Landlock ABI that brought them."""

FILE_ACCESS = (
    ACCESS_FS_EXECUTE | ACCESS_FS_WRITE_FILE | ACCESS_FS_READ_FILE | ACCESS_FS_TRUNCATE
    | ACCESS_FS_IOCTL_DEV
)  # fmt: skip
"""The rights a rule on a file (not a directory) may grant (the others concern directories)."""

READ = ACCESS_FS_READ_FILE | ACCESS_FS_READ_DIR
"""Read files and list directories."""
RUN = READ | ACCESS_FS_EXECUTE
"""Read, and execute files (programs, shared libraries mapped executable)."""
WRITE = sum(FS_ACCESS_BY_ABI.values())
"""Everything: read, write, execute, make, remove, rename into, truncate."""
DEVICE = ACCESS_FS_READ_FILE | ACCESS_FS_WRITE_FILE | ACCESS_FS_TRUNCATE | ACCESS_FS_IOCTL_DEV
"""Read, write and control a device file (`/dev/null`, a terminal)."""
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 0x1
LANDLOCK_SCOPE_SIGNAL = 0x2
PR_SET_NO_NEW_PRIVS = 38

SCOPES_BY_ABI = {6: LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL}
"""The scopes a job process takes, by the Landlock ABI that brought them (landlock(7))."""

SCOPING_ABI = min(SCOPES_BY_ABI)
"""The first Landlock ABI with scopes (Linux 6.12)."""

_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True, slots=True)
class Rule:
    """Allow `access` (`READ`, `RUN`, `WRITE`, `DEVICE` or other `ACCESS_FS_*` bits) beneath
    the directory `path`, or on the file `path` when `directory` is False (of which only
    `FILE_ACCESS` counts). A path that does not exist (or is not of that kind) adds nothing."""

    path: str
    access: int
    directory: bool = True


class _PathBeneathAttr(ctypes.Structure):
    """The kernel's `struct landlock_path_beneath_attr` (packed)."""

    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


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
        os.close(_ruleset(0, wanted))
    except OSError:
        return 0
    return wanted


@functools.cache
def fs_access() -> int:
    """The `ACCESS_FS_*` bits a job process's ruleset handles here: all that the running ABI
    knows; 0 where there is no Landlock. Probed once per process."""
    version = abi()
    handled = sum(bits for since, bits in FS_ACCESS_BY_ABI.items() if version >= since)
    if not handled:
        return 0
    try:
        os.close(_ruleset(handled, 0))
    except OSError:
        return 0
    return handled


def _ruleset(handled: int, scoped: int) -> int:
    attr = _RulesetAttr(handled, 0, scoped)
    fd = _libc.syscall(
        SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), 0
    )
    if fd < 0:
        raise _failed("create ruleset")
    return int(fd)


class OpenedRules:
    """`Rule`s whose paths are opened now (`O_PATH`), once, in the process job processes are
    forked from: a job process then adds them to its ruleset without a path lookup each
    (about 6 µs a rule otherwise, for the two hundred /etc entries), from one array its fork
    shares rather than copies. A rule ties to the inode its path names, which the job's mounts
    leave as they are (they lay new file systems over other directories, or clone mounts of
    the same inodes): rules on what a job's mounts make anew (its /tmp, /proc) are not for
    this. Paths that do not exist are left out; the process that restricts itself with them
    closes its copies (`restrict`)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        handled = fs_access()
        found = [(rule.path, _open(rule, handled)) for rule in rules]
        opened = [(path, fd_access) for path, fd_access in found if fd_access is not None]
        self.paths = [path for path, _ in opened]
        self._attrs = (_PathBeneathAttr * len(opened))(
            *(_PathBeneathAttr(access, fd) for _, (fd, access) in opened)
        )
        self._count = len(opened)
        self._fds = sorted(fd for _, (fd, _) in opened)

    def _add_to(self, ruleset: int) -> None:
        size = ctypes.sizeof(_PathBeneathAttr)
        for index in range(self._count):
            attr = ctypes.byref(self._attrs, index * size)
            if _libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, attr, 0):
                raise _failed(f"allow {self.paths[index]}")

    def close(self) -> None:
        """Close this process's copies of the paths (the rules stay in its domain)."""
        fds, self._fds, self._count = self._fds, [], 0
        if fds and fds[-1] - fds[0] + 1 == len(fds):
            os.closerange(fds[0], fds[-1] + 1)  # one close_range(2): opened one after another
            return
        for fd in fds:
            os.close(fd)


class FilledRuleset:
    """A ruleset of this process's, created and given `opened`'s rules ahead of `restrict`
    (`OpenedRules` are the same for every job: about 220 rules, 1 ms of system calls), so that
    a job process can do it while it waits for its job rather than once the job has come. It
    walls nothing until `restrict` enforces it. `opened` is closed once its rules are in;
    raises OSError (and leaves `opened` open) when the kernel refuses a step."""

    def __init__(self, opened: OpenedRules) -> None:
        self.scoped = scopes()
        self.handled = fs_access()
        fd = _ruleset(self.handled, self.scoped)
        try:
            opened._add_to(fd)
        except BaseException:
            os.close(fd)
            raise
        opened.close()
        self._fd: int | None = fd

    def take(self) -> int:
        """The ruleset's fd, for the one `restrict` that closes it."""
        fd, self._fd = self._fd, None
        if fd is None:
            raise ValueError("this ruleset was taken already")
        return fd


def restrict(
    rules: Iterable[Rule] | None = None,
    opened: OpenedRules | None = None,
    filled: FilledRuleset | None = None,
) -> bool:
    """Put this single-threaded process (and all it starts from now on) in a Landlock domain of
    its own, scoped by `scopes()`, with no_new_privs set (landlock_restrict_self(2) needs it of
    a process without CAP_SYS_ADMIN): one ruleset, restricted once. With `rules`, `opened` or
    `filled` (all None: no file walls) the domain also handles `fs_access()`, allowing only
    what they allow: an empty list allows no file access at all. `filled` is a ruleset given
    its `OpenedRules` already, which `rules` are added to; `opened` and `filled` are closed
    when this returns. False, and nothing done, where the kernel has neither; raises OSError
    when the kernel refuses what `scopes` and `fs_access` found it has."""
    try:
        if filled is not None:
            scoped, handled, ruleset = filled.scoped, filled.handled, filled.take()
        else:
            scoped = scopes()
            walled = rules is not None or opened is not None
            handled = fs_access() if walled else 0
            if not scoped and not handled:
                return False
            ruleset = _ruleset(handled, scoped)
        try:
            if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
                raise _failed("no_new_privs")
            if handled:
                if opened is not None:
                    opened._add_to(ruleset)
                for rule in rules or ():
                    found = _open(rule, handled)
                    if found is not None:
                        try:
                            attr = _PathBeneathAttr(found[1], found[0])
                            if _libc.syscall(
                                SYS_LANDLOCK_ADD_RULE,
                                ruleset,
                                LANDLOCK_RULE_PATH_BENEATH,
                                ctypes.byref(attr),
                                0,
                            ):
                                raise _failed(f"allow {rule.path}")  # fmt: skip
                        finally:
                            os.close(found[0])
            if _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
                raise _failed("restrict self")
        finally:
            os.close(ruleset)
        return True
    finally:
        if opened is not None:
            opened.close()


_O_PATH = getattr(os, "O_PATH", 0o10000000)


def _open(rule: Rule, handled: int) -> tuple[int, int] | None:
    """A path fd of `rule`'s path and the rights it grants there; None where it is not."""
    allowed = rule.access & handled
    flags = _O_PATH | os.O_CLOEXEC
    if rule.directory:
        flags |= os.O_DIRECTORY
    else:
        allowed &= FILE_ACCESS
    try:
        return os.open(rule.path, flags), allowed
    except OSError as exc:
        if exc.errno in _ABSENT:  # nothing there (that this process may name) to allow
            return None
        raise OSError(exc.errno, f"landlock: open {rule.path}: {exc.strerror}") from exc


_ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP)


def unavailable_reason() -> str | None:
    """Why job processes here are not scoped (or not walled in by file rules), in words
    (None: they are both)."""
    if scopes():
        return None
    if fs_access():
        return (
            f"job processes are not Landlock-scoped: the kernel's Landlock ABI is {abi()}, "
            f"scoping needs ABI {SCOPING_ABI} (Linux 6.12); where they share the executor's PID "
            "namespace (no CAP_SYS_ADMIN) they can signal the executor's processes (their file "
            "walls hold)"
        )
    version = abi()
    if version == 0:
        found = "the kernel has no Landlock (not built, not enabled at boot, or refused here)"
    else:
        found = f"the kernel's Landlock ABI is {version}"
    return (
        f"job processes are not Landlock-scoped: {found}, scoping needs ABI {SCOPING_ABI} "
        "(Linux 6.12); where they share the executor's PID namespace (no CAP_SYS_ADMIN) they "
        "can signal the executor's processes, and they read every file the executor's user "
        "may read outside the sandbox's hidden directories"
    )
