"""The walls a job process builds around itself before its program runs: most of them while it
waits for its job (`build_ahead`, for the executor's policy), the rest once the job arrives
(`enter`).

Forked from the zygote (which has threads, so it cannot enter a user namespace itself), the
single-threaded job process:

1. enters new user, mount, network and IPC namespaces (the user namespace maps its own uid to
   0 inside, so it works unprivileged on a stock Linux);
2. makes the whole file system read-only, lays empty tmpfs over the hidden directories (the
   store's data, `/run`, `/dev/shm`, ..., and the home directories: `/root`, `/home` and the
   executor user's, `homes`) and gives `/tmp` a fresh tmpfs of its own (HOME and TMPDIR, gone
   when the job ends), keeping Python's directories that lie there; once the job has come, it
   puts back what the job needs (its program's directories read-only, its working directory
   and QRT_JOB_WRITABLE_PATHS writable), taken from beneath the tmpfs (`Isolation.beneath`);
3. enters a second user and mount namespace, which locks every mount of step 2: the program
   cannot unmount a tmpfs to see what lies beneath or make a mount writable again;
4. enters a Landlock domain of its own (`qrt_executor.landlock`, where the kernel has Landlock):
   no signal, ptrace access or abstract unix socket reaches a process outside it, and no file
   access reaches beyond `file_rules` (the system's directories, `/etc` but its secrets,
   Python's and the program's directories to read, the job's own to write), even as root;
5. sets its resource limits (`apply_limits`);
6. loads a seccomp filter (`qrt_executor.seccomp`): no ptrace, no new namespaces or mounts, no
   keyrings, BPF or performance counters, and the like.

With QRT_JOB_SANDBOX=off only steps 4 to 6 are taken: the Landlock domain's file rules are
then the one file wall (the job's HOME and TMPDIR become its working directory, the machine's
`/tmp` being out of its reach).

The network namespace has only a loopback interface, which is down: no TCP, UDP or abstract
unix socket of the machine is reachable. The job's device requests go through the executor on
its control socket (`DeviceCall`). See the README's sandbox section for what this does not stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import functools
import os
import pwd
import resource
import shutil
import signal
import stat
import sys
import tempfile
import traceback
from collections.abc import Collection, Iterable

from . import landlock, seccomp
from .job_protocol import JobLimits, Launch, SandboxPolicy

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
# x86_64 and aarch64 share the numbers of these newer system calls (the generic table).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442

JOB_TMP = "/tmp"
"""The job's own temporary directory (HOME and TMPDIR), a tmpfs inside its sandbox."""

JOB_SHM = "/dev/shm"
"""Where POSIX semaphores live (multiprocessing's locks): in the job's namespaces a small
writable tmpfs of its own (SHM_BYTES), not the machine's."""

SHM_BYTES = 1 << 20
"""The size of the job's own /dev/shm: a few hundred semaphores, not a place for data (it is
not counted in QRT_JOB_TEMP_BYTES)."""

DEFAULT_HIDDEN = ("/run", "/var/run", "/var/tmp", "/dev/shm", "/dev/mqueue")
"""Directories a job never needs and where sockets and other processes' files live."""

HOME_DIRECTORIES = ("/root", "/home")
"""Where users' own files (a `qrt login` profile holding an API key, SSH keys) live: hidden
from jobs like DEFAULT_HIDDEN, with the executor user's home (`homes`)."""

SYSTEM_DIRECTORIES = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin")
"""Programs and libraries a job may read and run (Landlock's `file_rules`)."""

KERNEL_DIRECTORIES = ("/proc", "/sys")
"""What a job may read of the kernel's views (OpenBLAS reads /sys/devices/system/cpu, Python
/proc/self/*): other processes' memory and environments stay Landlock's ptrace walls'."""

ETC = "/etc"
ETC_SECRETS = (
    "shadow", "shadow-", "gshadow", "gshadow-", "sudoers", "sudoers.d", "ssh", "ssl/private",
    "security/opasswd",
)  # fmt: skip
"""Entries of /etc (relative to it) a job never reads, whatever their mode; besides these (and
`credstore*`) a job reads only the world-readable ones (`etc_rules`)."""

DEVICES = "/dev"
DEVICE_FILES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/tty")
"""Devices a job reads and writes; `/dev/random` and `/dev/urandom` it reads; the rest of /dev
(disks, memory) it only lists."""

_libc = ctypes.CDLL(None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(source.encode(), target.encode(), fstype.encode(), flags, data.encode()),
        f"mount {target}",
    )


def _set_readonly(
    path: str, *, dirfd: int = AT_FDCWD, recursive: bool = True, undo: bool = False
) -> None:
    flags = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID
    attr = _MountAttr(0, MOUNT_ATTR_RDONLY, 0, 0) if undo else _MountAttr(flags, 0, 0, 0)
    flags = (AT_RECURSIVE if recursive else 0) | (AT_EMPTY_PATH if not path else 0)
    _check(
        _libc.syscall(SYS_MOUNT_SETATTR, dirfd, path.encode(), flags, ctypes.byref(attr),
                      ctypes.sizeof(attr)),
        f"read-only {path or 'kept mount'}",
    )  # fmt: skip


def _clone_tree(path: str) -> int:
    flags = OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC
    return _check(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(), flags), f"keep {path}")


def _beneath(isolation: Isolation, path: str) -> tuple[int, str]:
    """Where to look `path` (real, absolute) up from: the innermost directory a tmpfs covers
    that holds it (its descriptor and the rest of the path), else the view as it is now."""
    found = max((c for c in isolation.beneath if within(path, c)), key=len, default=None)
    if found is None:
        return AT_FDCWD, path
    return isolation.beneath[found], path[len(found) :].lstrip("/")


def _open_real(isolation: Isolation, path: str) -> int | None:
    """An `O_PATH` descriptor of directory `path` (absolute) as it was before anything was
    hidden (`_beneath`), looked up one name at a time without following a symbolic link: a
    link a job planted in a directory jobs write (QRT_JOB_WRITABLE_PATHS within one another)
    must not lead a later job's walls to the store. None when some part of it is no
    directory, or a link."""
    start, rest = _beneath(isolation, path)
    names = [name for name in rest.split("/") if name]
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        current = os.open(
            "/" if start == AT_FDCWD else ".", flags, dir_fd=None if start == AT_FDCWD else start
        )
    except OSError:
        return None
    for name in names:
        try:
            following = os.open(name, flags, dir_fd=current)
        except OSError:  # missing, no directory, or a link (O_NOFOLLOW with O_DIRECTORY)
            os.close(current)
            return None
        os.close(current)
        current = following
    return current


def _job_directories(
    isolation: Isolation, paths: Iterable[str], besides: Collection[str] = ()
) -> dict[str, int]:
    """The directories among `paths` (real and absolute) but `besides`, as they were before
    anything was hidden, outermost first, each once, with an `O_PATH` descriptor each
    (`_open_real`): what `_directories` finds in this process's view, links left out."""
    normal = {os.path.normpath(path) for path in paths if path.startswith("/")}
    found = {}
    for path in _outermost_first(normal - {"/", *besides}):
        if (opened := _open_real(isolation, path)) is not None:
            found[path] = opened
    return found


def _clone_opened(opened: int, path: str) -> int:
    """A detached copy of the directory `opened` (an `O_PATH` descriptor of `path`)."""
    flags = OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC | AT_EMPTY_PATH
    return _check(_libc.syscall(SYS_OPEN_TREE, opened, b"", flags), f"keep {path}")


def _attach(tree: int, path: str) -> None:
    _check(
        _libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, path.encode(), MOVE_MOUNT_F_EMPTY_PATH),
        f"put back {path}",
    )


class PidNamespaces:
    """Forks each job process into a PID namespace of its own, as process 2 under a `cat` that
    is process 1 there.

    A job process runs as the executor's user, and kill(2) lets a process signal every process
    of its user: without its own PID namespace a job could SIGKILL or SIGSTOP the zygote, the
    other jobs, the executor and, under root, anything on the machine. Signals (`kill`,
    `pidfd_send_signal`) reach only processes of the sender's PID namespace and those below it
    (pid_namespaces(7)), so a job reaches only what it started itself; the job process then
    mounts a `/proc` of the namespace, so it sees only those too.

    The job is not process 1, which the kernel treats apart (signals whose action is the default
    never reach it: a program could not kill itself, nor be ended by SIGXCPU at its CPU limit).
    Process 1 is `cat` reading a pipe whose other end only the zygote holds: started with
    `posix_spawn` (no copy of the zygote's memory), it ends when the zygote closes the pipe after
    the job process ended (`ended`), or when the zygote itself ends, and the kernel then kills
    whatever the job left in the namespace. The job cannot signal it (process 1 of its own
    namespace) nor reach its pipe.

    Creating a PID namespace takes CAP_SYS_ADMIN: `open` returns None where the zygote lacks it
    (an executor not running as root), and job processes are forked as before; the Landlock
    domain each job process enters (`enter`) then keeps its signals to itself (see the README's
    "What it does not stop" for kernels without it). The zygote has threads:
    `unshare(CLONE_NEWPID)` changes only the calling thread's namespace for its next children,
    and `setns` puts it back after each fork.
    """

    def __init__(self, own: int, cat: str) -> None:
        self._own = own
        self._cat = cat
        self._inits: dict[int, tuple[int, int]] = {}  # job process -> its init, the pipe's end

    @classmethod
    def open(cls) -> PidNamespaces | None:
        """Namespaces for this process's forks, or None if the kernel refuses them here (or
        there is no `cat`)."""
        cat = shutil.which("cat")
        if cat is None:
            return None
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        # Tried in a child first: a process whose `unshare` worked but whose `setns` back was
        # refused (a seccomp profile) would fork every later child into one namespace.
        probe = os.fork()
        if probe == 0:
            code = 1
            try:
                _unshare(CLONE_NEWPID)
                _check(_libc.setns(own, CLONE_NEWPID), "setns")
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(probe, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            os.close(own)
            return None
        return cls(own, cat)

    def fork(self) -> int:
        """`os.fork()`, the child being process 2 of a new PID namespace; raises OSError as
        `os.fork` does, and when the kernel refuses the namespace."""
        read, write = os.pipe2(os.O_CLOEXEC)
        pid = -1
        try:
            _unshare(CLONE_NEWPID)
            try:
                init = os.posix_spawn(
                    self._cat, [self._cat], {},
                    file_actions=[(os.POSIX_SPAWN_DUP2, read, 0),
                                  (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)],
                )  # fmt: skip
                pid = os.fork()
            finally:
                if pid != 0:
                    _check(_libc.setns(self._own, CLONE_NEWPID), "setns")
        finally:
            if pid != 0:
                os.close(read)
                if pid == -1:
                    os.close(write)
        if pid == 0:
            # The job process holds no way back to the zygote's namespace nor any init's pipe.
            os.close(self._own)
            os.close(read)
            os.close(write)
            for _, other in self._inits.values():
                os.close(other)
            self._inits.clear()
            # Now, while it waits for a job, rather than when the job has come. Where the kernel
            # refuses a new /proc (a container whose /proc is partly masked) the job sees the
            # machine's, its signals still confined to its namespace.
            with contextlib.suppress(OSError):
                _own_proc()
            return 0
        self._inits[pid] = (init, write)
        return pid

    def ended(self, pid: int) -> None:
        """Job process `pid` ended: let its namespace's init end, and the namespace with it."""
        if (found := self._inits.pop(pid, None)) is not None:
            os.close(found[1])

    def inits(self) -> set[int]:
        """The inits of the job processes that have not ended: children of this process that
        are not strangers."""
        return {init for init, _ in self._inits.values()}


def _own_proc() -> None:
    """In a PID namespace of its own (`PidNamespaces`), before the user namespace that would
    take the right to: a new mount namespace with a `/proc` of this PID namespace."""
    _unshare(CLONE_NEWNS)
    _mount("none", "/", "", MS_REC | MS_PRIVATE)  # nothing of this reaches the machine's mounts
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _map_to_root(uid: int, gid: int) -> None:
    """Be uid and gid 0 in the user namespace just entered, as `uid` and `gid` outside."""
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as file:
            file.write(text)


def _outermost_first(paths: Iterable[str]) -> list[str]:
    return sorted(paths, key=lambda path: (path.count("/"), path))


def _directories(paths: Iterable[str]) -> list[str]:
    """The real, existing directories among `paths`, outermost first, each once."""
    found = {os.path.realpath(path) for path in paths if path and os.path.isdir(path)}
    return _outermost_first(found - {"/"})


def within(path: str, directory: str) -> bool:
    """Whether `path` is `directory` or lies beneath it (both real and absolute)."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


@dataclasses.dataclass(slots=True)
class Isolation:
    """A job process's namespaces and mounts as far as they depend on its executor's policy
    alone (`isolate_ahead`), waiting for the job's own directories (`isolate_job`)."""

    policy: SandboxPolicy
    kept: list[str]
    """The directories put back so far."""
    to_hide: list[str]
    """Every directory a job sees empty (`_to_hide`): the ones inside a kept directory are
    hidden again once it is back."""
    hidden: list[str]
    """Where a tmpfs lies over a hidden directory; made read-only once the job's own
    directories are in (their mount points may have to be made in one)."""
    missing: list[str]
    """The places to hide that were no directory when the tmpfs were laid: one made since is
    hidden when the job comes (`isolate_job`)."""
    beneath: dict[str, int]
    """For each directory a tmpfs covers now (the hidden ones and /tmp), a file descriptor
    (O_PATH) of it opened before: the way to the job's own directories beneath it, since a path
    looked up from it does not cross into the tmpfs above it. Closed before anything of the
    job runs."""

    def close(self) -> None:
        """Let go of every way beneath the tmpfs."""
        for fd in self.beneath.values():
            os.close(fd)
        self.beneath.clear()


def _hidden_places(policy: SandboxPolicy) -> list[str]:
    return [*DEFAULT_HIDDEN, *homes(), *policy.hidden]


def _to_hide(policy: SandboxPolicy) -> list[str]:
    return _directories(_hidden_places(policy))


def _open_beneath(path: str, beneath: dict[str, int], real: str | None = None) -> None:
    """Keep a way to what `path` (real, unless `real` says what it is) holds now, before a
    tmpfs covers it (`Isolation.beneath`)."""
    beneath[real or path] = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def _hide(path: str) -> None:
    if path == JOB_SHM:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={SHM_BYTES},mode=1777")
    else:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")


def _put_back(trees: list[tuple[str, int, bool]]) -> None:
    """Attach each (path, detached tree, writable) at its path, read-only unless writable (a
    writable one cloned once `/` was read-only is made writable again, unless the machine's
    own mount is read-only: that one stays locked so)."""
    for path, tree, is_writable in trees:
        if not is_writable:
            _set_readonly("", dirfd=tree)
        else:
            with contextlib.suppress(PermissionError):
                _set_readonly("", dirfd=tree, recursive=False, undo=True)
        with contextlib.suppress(OSError):  # it exists already unless a tmpfs covers it now
            os.makedirs(path, exist_ok=True)
        _attach(tree, path)
        os.close(tree)


def isolate_ahead(
    policy: SandboxPolicy, readable: Iterable[str] = (), writable: Iterable[str] = ()
) -> Isolation:
    """Steps 1 and 2 of the module doc for `policy`, with `readable` and `writable` put back:
    what a job process builds while it waits for its job (`build_ahead`), so that the job does
    not wait for it (about 1.5 ms). Raises OSError when the kernel refuses a step (no
    unprivileged user namespaces, an old kernel); the process is then unusable for a job.
    The process is not dumpable when this returns (it must be to write its maps)."""
    uid, gid = os.getuid(), os.getgid()
    # Forked from the zygote, which is not dumpable: a process that is not owns nothing of its
    # /proc/self, where the user namespace's maps are written.
    _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
    try:
        _unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC)
        _map_to_root(uid, gid)
    finally:
        # Until its job comes: another job of the same user without Landlock's ptrace wall
        # could otherwise reach into the process that will run the next job.
        _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
    _mount("none", "/", "", MS_REC | MS_PRIVATE)
    beneath: dict[str, int] = {}
    try:
        kept_rw = _directories(writable)
        kept_ro = [path for path in _directories(readable) if path not in kept_rw]
        trees = [(path, _clone_tree(path), True) for path in kept_rw]
        trees += [(path, _clone_tree(path), False) for path in kept_ro]
        _set_readonly("/")
        # The second user namespace's maps are written there (proc itself refuses what matters).
        _set_readonly("/proc", recursive=False, undo=True)
        # A hidden directory inside a kept one (the data directory in the programs directory)
        # is hidden again once the kept one is back; one under /tmp or under another hidden
        # directory is hidden with it.
        kept = [path for path, _, _ in trees]
        to_hide = _to_hide(policy)
        hidden: list[str] = []
        inside_kept: list[str] = []
        for path in to_hide:
            if any(within(path, k) for k in kept):
                inside_kept.append(path)
            elif not any(within(path, outer) for outer in [JOB_TMP, *hidden]):
                hidden.append(path)
        for path in hidden:
            _open_beneath(path, beneath)
            _hide(path)
        _open_beneath(JOB_TMP, beneath, os.path.realpath(JOB_TMP))
        _mount(
            "tmpfs", JOB_TMP, "tmpfs", MS_NOSUID | MS_NODEV, f"{_tmp_size(policy.limits)}mode=1777"
        )
        _put_back(trees)
        for path in inside_kept:
            _open_beneath(path, beneath)
            _hide(path)
    except BaseException:
        for fd in beneath.values():
            os.close(fd)
        raise
    missing = [place for place in _hidden_places(policy) if not os.path.isdir(place)]
    return Isolation(policy, kept, to_hide, [*hidden, *inside_kept], missing, beneath)


def isolate_job(
    isolation: Isolation,
    readable: Iterable[str] = (),
    writable: Iterable[str] = (),
    scratch: Iterable[str] = (),
) -> None:
    """Finish `isolation` for one job (steps 2 and 3 of the module doc): put back its
    `readable` directories read-only and its `writable` ones writable, even under a hidden
    directory or /tmp (taken from beneath the tmpfs, `Isolation.beneath`: real, absolute
    paths, as the executor sends them; one that is no directory there is left out, as
    `isolate` leaves it out); make the `scratch` directories (under /tmp) anew, empty, in the
    job's own /tmp, so what is written there counts in its size; then lock every mount.
    Raises OSError when the kernel refuses."""
    kept_rw: dict[str, int] = {}
    kept_ro: dict[str, int] = {}
    try:
        kept_rw = _job_directories(isolation, writable)
        kept_ro = _job_directories(isolation, readable, besides=[*kept_rw, *isolation.kept])
        trees = [(path, _clone_opened(fd, path), True) for path, fd in kept_rw.items()]
        trees += [(path, _clone_opened(fd, path), False) for path, fd in kept_ro.items()]
    finally:
        for opened in [*kept_rw.values(), *kept_ro.values()]:
            os.close(opened)
        isolation.close()
    for path in scratch:
        os.makedirs(path, mode=0o700, exist_ok=True)
    _put_back(trees)
    kept = [path for path, _, _ in trees]
    hidden = list(isolation.hidden)
    for path in isolation.to_hide:
        if any(within(path, k) for k in kept):
            _hide(path)
            hidden.append(path)
    # Made while this process waited for its job (a data directory created after the executor
    # started): hidden all the same, unless /tmp or a hidden directory covers it already.
    for path in _directories(isolation.missing):
        inside = any(within(path, k) for k in kept)
        if inside or not any(within(path, outer) for outer in [JOB_TMP, *hidden]):
            _hide(path)
            hidden.append(path)
    for path in hidden:
        if path != JOB_SHM:
            _set_readonly(path, recursive=False)
    # A second user namespace locks all of the above (mount_namespaces(7), "restrictions on
    # mount namespaces"): its root cannot undo what the first one's root did.
    _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
    _unshare(CLONE_NEWUSER | CLONE_NEWNS)
    _map_to_root(0, 0)


def isolate(
    policy: SandboxPolicy,
    readable: Iterable[str],
    writable: Iterable[str],
    scratch: Iterable[str] = (),
) -> None:
    """Wall this process (single-threaded, not yet running user code) in; see the module doc:
    `isolate_ahead` and `isolate_job` at once.

    `readable` directories stay visible read-only and `writable` ones writable, even under a
    hidden directory or /tmp. `scratch` directories (under /tmp) are made anew, empty, in the
    job's own /tmp, so what is written there counts in its size. Raises OSError when the
    kernel refuses a step (no unprivileged user namespaces, an old kernel); the process is
    then unusable for a job.
    """
    isolate_job(isolate_ahead(policy, readable, writable), scratch=scratch)


def apply_limits(limits: JobLimits) -> None:
    """Set this process's resource limits (inherited by what it starts). Memory is counted
    from what the process has mapped now (the zygote's imports), so `memory_bytes` is what the
    program itself may add."""
    if limits.memory_bytes:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        _lower(resource.RLIMIT_AS, mapped + limits.memory_bytes)
    if limits.cpu_seconds:
        # SIGXCPU at the limit; the hard limit a second later kills one that ignores it.
        _lower(resource.RLIMIT_CPU, limits.cpu_seconds, slack=1)
    if limits.processes:
        _lower(resource.RLIMIT_NPROC, limits.processes)
    if limits.open_files:
        _lower(resource.RLIMIT_NOFILE, limits.open_files)


def _lower(kind: int, value: int, slack: int = 0) -> None:
    """Set limit `kind` to `value` (the hard one `slack` above), never above the hard limit the
    process has (which it could not raise)."""
    _, hard = resource.getrlimit(kind)
    ceiling = value + slack
    if hard != resource.RLIM_INFINITY:
        value, ceiling = min(value, hard), min(ceiling, hard)
    resource.setrlimit(kind, (value, ceiling))


def python_installation(hidden: Iterable[str] = ()) -> list[str]:
    """The directories Python itself reads from (its prefixes, every `sys.path` entry: the
    venv, an editable install's sources) that lie where a sandbox hides or replaces everything
    (`/tmp`, the hidden directories, the home directories): a qrt installed under /tmp, or a
    Python under /root/.pyenv, must still find the metadata and modules it reads lazily
    (Qiskit's transpiler plugins are found by entry points)."""
    places = (JOB_TMP, *DEFAULT_HIDDEN, *homes(), *hidden)
    covered = [os.path.realpath(outer) for outer in places]
    return [path for path in _installation() if any(within(path, outer) for outer in covered)]


_installations: dict[tuple[str, ...], list[str]] = {}
"""Python's directories by the places they were found from (`_installation`)."""


def _installation() -> list[str]:
    """Python's own directories (its prefixes and `sys.path`), real and existing, outermost
    first. Found once for a given `sys.path`, in the zygote (`prepare`): resolving every entry
    took a job process about 2.5 ms of CPU (a few hundred `lstat`s)."""
    places = (sys.prefix, sys.exec_prefix, sys.base_prefix, *sys.path)
    found = _installations.get(places)
    if found is None:
        found = _installations[places] = _directories(places)
    return found


@functools.cache
def homes() -> tuple[str, ...]:
    """The home directories a job sees empty: HOME_DIRECTORIES and the home of this process's
    user (from the password database: a zygote's HOME is the job's /tmp), unless that is `/`
    or holds a system directory. Found once per process."""
    found = list(HOME_DIRECTORIES)
    with contextlib.suppress(KeyError):
        home = os.path.realpath(pwd.getpwuid(os.getuid()).pw_dir)
        system = [*SYSTEM_DIRECTORIES, ETC, *KERNEL_DIRECTORIES, DEVICES, JOB_TMP]
        if home not in found and not any(within(path, home) for path in system):
            found.append(home)
    return tuple(found)


def _world_readable(mode: int) -> bool:
    wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & wanted == wanted


def _etc_entries(
    directory: str, relative: str, secrets: list[str]
) -> tuple[bool, list[landlock.Rule]]:
    """The rules that allow reading the world-readable entries beneath `directory` (but
    ETC_SECRETS), one for the whole directory where it holds nothing else; and whether it
    does not. What is left out goes to `secrets`."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        secrets.append(directory)
        return False, []
    whole, rules = True, []
    for entry in entries:
        name = f"{relative}{entry.name}"
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):  # what it points to is allowed, or not, on its own
            continue
        if name in ETC_SECRETS or entry.name.startswith("credstore") or not _world_readable(mode):
            whole = False
            secrets.append(entry.path)
        elif stat.S_ISDIR(mode):
            inner_whole, inner = _etc_entries(entry.path, f"{name}/", secrets)
            if inner_whole:
                rules.append(landlock.Rule(entry.path, landlock.READ))
            else:
                whole = False
                rules += [landlock.Rule(entry.path, landlock.ACCESS_FS_READ_DIR), *inner]
        else:
            rules.append(landlock.Rule(entry.path, landlock.READ, directory=False))
    return whole, rules


def _walk_etc() -> tuple[list[landlock.Rule], list[str]]:
    secrets: list[str] = []
    try:
        readable = _world_readable(os.stat(ETC).st_mode)
    except OSError:
        readable = False
    if not readable:
        return [], []
    whole, rules = _etc_entries(ETC, "", secrets)
    if whole:
        return [landlock.Rule(ETC, landlock.READ)], []
    return [landlock.Rule(ETC, landlock.ACCESS_FS_READ_DIR), *rules], secrets


@functools.cache
def _etc() -> tuple[tuple[landlock.Rule, ...], tuple[str, ...]]:
    rules, secrets = _walk_etc()
    return tuple(rules), tuple(secrets)


def etc_rules() -> tuple[landlock.Rule, ...]:
    """Landlock rules allowing a job to read /etc but its secrets: the entries that are not
    world-readable (`/etc/shadow`, `/etc/ssl/private`, a root-only 0600 or 0640 file: root
    would read them all) and ETC_SECRETS, whatever their mode. Decided by the modes found
    once per process, in the zygote (`prepare`): a file made in /etc later is out of a job's
    reach. /etc stays listable (names are no secret)."""
    return _etc()[0]


def etc_secrets() -> tuple[str, ...]:
    """The entries of /etc that `etc_rules` leave out (outermost only), for a sandbox that
    hides them by mounts (`qrt_executor.oneshot`'s bubblewrap)."""
    return _etc()[1]


@functools.cache
def _system_rules() -> tuple[landlock.Rule, ...]:
    """The rules every job shares: the system's and Python's directories, /etc, /dev."""
    rules = [landlock.Rule(path, landlock.RUN) for path in SYSTEM_DIRECTORIES]
    python: list[str] = []
    for path in _installation():  # outermost first: a rule covers what lies beneath
        if not any(within(path, outer) for outer in python):
            python.append(path)
    rules += [landlock.Rule(path, landlock.RUN) for path in python]
    rules += etc_rules()
    rules.append(landlock.Rule(DEVICES, landlock.ACCESS_FS_READ_DIR))
    rules += [landlock.Rule(path, landlock.DEVICE, directory=False) for path in DEVICE_FILES]
    rules += [
        landlock.Rule(path, landlock.ACCESS_FS_READ_FILE, directory=False)
        for path in ("/dev/random", "/dev/urandom")
    ]
    return tuple(rules)


@functools.cache
def _opened_system_rules() -> landlock.OpenedRules:
    """`_system_rules`, opened once: in the zygote (`prepare`), for every job process."""
    return landlock.OpenedRules(_system_rules())


def job_rules(launch: Launch) -> list[landlock.Rule]:
    """The Landlock rules of `launch`'s own directories: read (and run) its program's, read
    /proc and /sys; read and write its working directory, /dev/shm, its /tmp (in its
    namespaces: its own tmpfs) and QRT_JOB_WRITABLE_PATHS."""
    program = [path for path in (launch.search_path, launch.project_dir) if path]
    rules = [landlock.Rule(path, landlock.RUN) for path in program]
    # Opened here: the job's /proc may be a new one of its PID namespace (other inodes).
    rules += [landlock.Rule(path, landlock.READ) for path in KERNEL_DIRECTORIES]
    # /dev/shm: the job's own in its namespaces, the machine's (shared by jobs) without them.
    writable = [launch.workdir, JOB_SHM, *launch.sandbox.writable]
    if launch.sandbox.isolate:
        writable.append(JOB_TMP)
    rules += [landlock.Rule(path, landlock.WRITE) for path in writable]
    return rules


def one_shot_rules(
    project_dir: str, input_dir: str, writable: Iterable[str] = ()
) -> list[landlock.Rule]:
    """The Landlock rules of a one-shot program in its bubblewrap sandbox (`qrt_executor.
    confine` enters them there): what a job process reads (the system's, Python's and /etc's
    world-readable entries, a few devices, /proc and /sys), its project's directory and its
    input; it writes only the sandbox's own /tmp, /var/tmp and /dev/shm, and `writable`."""
    rules = [*_system_rules(), landlock.Rule(project_dir, landlock.RUN)]
    rules.append(landlock.Rule(input_dir, landlock.READ))
    rules += [landlock.Rule(path, landlock.READ) for path in KERNEL_DIRECTORIES]
    places = (JOB_TMP, "/var/tmp", JOB_SHM, *writable)
    rules += [landlock.Rule(path, landlock.WRITE) for path in places]
    return rules


def file_rules(launch: Launch) -> list[landlock.Rule]:
    """All the Landlock rules of `launch`'s job process: read the system's directories (but
    /etc's secrets, `etc_rules`; of /dev, the few devices jobs use), Python's and the
    program's; write its own directories (`job_rules`); nothing else (not the home
    directories, /srv, /var, /opt, other checkouts, the executor's other temporary files)."""
    return [*_system_rules(), *job_rules(launch)]


def prepare() -> None:
    """Do ahead, in the process job processes are forked from, what every sandbox needs."""
    _installation()
    homes()
    landlock.scopes()
    if landlock.fs_access():
        _opened_system_rules()


def fill_ahead() -> landlock.FilledRuleset | None:
    """The system's Landlock rules (`_system_rules`, opened in the zygote) in a ruleset of this
    job process's own, for `enter`: what it does while it waits for its job, so that the job
    does not wait for it (about 1 ms). None where the kernel has no file rules, or refused
    (`enter` then builds the ruleset itself, and says why it cannot)."""
    if not landlock.fs_access():
        return None
    try:
        return landlock.FilledRuleset(_opened_system_rules())
    except OSError:
        return None


PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CAP_LAST_CAP = "/proc/sys/kernel/cap_last_cap"


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities() -> None:
    """Give up every capability, for good: the bounding set where this process may (with
    CAP_SETPCAP), no_new_privs (so that executing a program, which offers uid 0 its bounding
    set, gains nothing it does not hold: capabilities(7)), then the effective, permitted and
    inheritable sets. For a job process of a root executor without namespaces: it keeps root's
    uid, which owns its files, but not what root may do beyond that (read /proc/kcore with
    CAP_SYS_RAWIO, files of other users with CAP_DAC_OVERRIDE, anything a capability
    bypasses). Raises OSError when the kernel refuses."""
    try:
        with open(CAP_LAST_CAP) as file:
            last = int(file.read())
    except (OSError, ValueError):
        last = 63
    for capability in range(last + 1):
        if _libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            if code == errno.EPERM:  # no CAP_SETPCAP: no_new_privs keeps exec from granting
                break
            if code != errno.EINVAL:  # EINVAL: a capability this kernel does not have
                raise OSError(code, f"drop capability {capability}: {os.strerror(code)}")
    _check(_libc.prctl(landlock.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    nothing = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), nothing), "drop capabilities")


class Ahead:
    """What a job process built of its sandbox while it waited for its job (`build_ahead`):
    its namespaces and mounts for `policy`, or why the kernel refused them."""

    def __init__(self, policy: SandboxPolicy) -> None:
        self.policy = policy
        self.isolation: Isolation | None = None
        self.error: OSError | None = None
        try:
            # QRT_JOB_WRITABLE_PATHS are put back when the job comes: one made or replaced
            # while this process waited is the one the job writes.
            self.isolation = isolate_ahead(policy, python_installation(policy.hidden))
        except OSError as exc:
            self.error = exc

    def finish(
        self, launch: Launch, readable: list[str], writable: list[str], scratch: list[str]
    ) -> None:
        """`isolate_job` for `launch`, its /tmp resized to the launch's limit (a program may
        declare its own); raises OSError when the namespaces could not be built, or were
        built for walls other than the launch's."""
        if self.error is not None:
            raise self.error
        wanted = launch.sandbox
        isolation, self.isolation = self.isolation, None
        if isolation is None or _walls(wanted) != _walls(self.policy):
            if isolation is not None:
                isolation.close()
            raise OSError(errno.EINVAL, "the job process was prepared for another sandbox policy")
        if wanted.limits.temp_bytes != self.policy.limits.temp_bytes:
            _mount("tmpfs", JOB_TMP, "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV,
                   f"{_tmp_size(wanted.limits)}mode=1777")  # fmt: skip
        isolate_job(isolation, readable, writable, scratch)


def _walls(policy: SandboxPolicy) -> tuple[object, ...]:
    """What of `policy` the namespaces and mounts depend on (its limits but /tmp's size are
    set once the job comes)."""
    return (policy.isolate, policy.hidden, policy.writable)


def _tmp_size(limits: JobLimits) -> str:
    # tmpfs's own default is half the machine's memory.
    return f"size={limits.temp_bytes}," if limits.temp_bytes else "size=50%,"


def build_ahead(policy: SandboxPolicy | None) -> Ahead | None:
    """The namespaces and mounts of `policy`'s sandbox, built by a job process while it waits
    for its job (`isolate_ahead`, about 1.5 ms), or None without a policy or one without
    namespaces (`enter` then builds all of it)."""
    if policy is None or not policy.isolate:
        return None
    return Ahead(policy)


def enter(
    launch: Launch,
    filled: landlock.FilledRuleset | None = None,
    ahead: Ahead | None = None,
) -> None:
    """Build `launch`'s sandbox around this job process (finishing what it built `ahead` for
    its executor's policy, if it did), set its limits, enter its Landlock domain (its ruleset
    `filled` with the system's rules already, if given: `fill_ahead`) and load its seccomp
    filter; raises OSError when the sandbox cannot be built.

    Without namespaces (QRT_JOB_SANDBOX=off: Kubernetes, where the pod walls jobs in) the job
    process is not dumpable, so the other jobs' processes, running as the same user, can
    neither trace it nor read its memory or environment through /proc; the Landlock domain
    (its file rules the one file wall there: a job whose domain the kernel refuses fails) and
    the seccomp filter are entered there too, and where the filter cannot be the job runs on,
    its log saying so."""
    policy = launch.sandbox
    # With walls built ahead, `finish` refuses a launch for others (or for none).
    if policy.isolate or ahead is not None:
        program = [launch.search_path, launch.project_dir]
        # A working directory in the machine's /tmp is made in the job's own instead: bound in,
        # it would let a job fill the machine's disk, whatever QRT_JOB_TEMP_BYTES says.
        workdir = os.path.realpath(launch.workdir)
        job_writable, scratch = ([], [workdir]) if within(workdir, JOB_TMP) else ([workdir], [])
        writable = [*job_writable, *policy.writable]
        if ahead is not None:
            ahead.finish(launch, program, writable, scratch)
        else:
            isolation = isolate_ahead(policy, python_installation(policy.hidden))
            isolate_job(isolation, program, writable, scratch)
    if not policy.isolate:
        _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
        if os.geteuid() == 0:
            # No namespaces make root's capabilities the job's own (in them, they count in
            # the job's user namespace only): the file rules grant /proc whole, /proc/kcore
            # included.
            drop_capabilities()
        if landlock.fs_access():
            # The machine's /tmp (other jobs' directories, the executor's unpacked programs)
            # is out of reach: the job's temporary files go where it may write.
            workdir = os.path.realpath(launch.workdir)
            os.environ["HOME"] = os.environ["TMPDIR"] = workdir
            tempfile.tempdir = None
    # After the mounts, which a domain handling file access would refuse (and so that the
    # rules' paths are what the job sees); before the limits, under which the fds of its
    # rules could not all be opened; before the filter, which stays free to deny programs
    # Landlock's system calls. It is the one file wall without namespaces: no fallback.
    opened = _opened_system_rules() if filled is None and landlock.fs_access() else None
    landlock.restrict(job_rules(launch), opened, filled)
    apply_limits(policy.limits)
    if policy.isolate:
        seccomp.load()  # last: building the walls needed what it denies
        return
    try:
        seccomp.load()
    except OSError as exc:
        print(f"[qrt] this job runs without a seccomp filter: {exc}", file=sys.stderr, flush=True)


# What a program sees when it runs into a limit, and which limit (by its setting) that was.
LIMIT_SETTINGS = {
    "memory": "QRT_JOB_MAX_MEMORY_BYTES",
    "cpu": "QRT_JOB_MAX_CPU_SECONDS",
    "processes": "QRT_JOB_MAX_PROCESSES",
    "open_files": "QRT_JOB_MAX_OPEN_FILES",
    "temp": "QRT_JOB_TEMP_BYTES",
}
_FIELDS = {
    "memory": "memory_bytes",
    "cpu": "cpu_seconds",
    "processes": "processes",
    "open_files": "open_files",
    "temp": "temp_bytes",
}


def set_by(limits: JobLimits, limit: str) -> str:
    """What set `limit` (a LIMIT_SETTINGS key) of `limits`: the program's metadata field, a
    ceiling's setting, or the default setting."""
    return limits.set_by.get(_FIELDS[limit]) or LIMIT_SETTINGS[limit]


def limit_reason(exc: BaseException, limits: JobLimits) -> str | None:
    """Which limit `exc` (raised in a job, or any exception it came from) ran into, in words;
    None if it is not a limit's."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        reason = _own_reason(current, limits)
        if reason is not None:
            return reason
        current = current.__cause__ or current.__context__
    return None


def memory_reason(limits: JobLimits) -> str:
    """Why a job that ran out of its memory limit failed."""
    return (
        f"memory limit reached: the job may use {limits.memory_bytes} bytes more than it "
        f"started with ({set_by(limits, 'memory')})"
    )


def _own_reason(exc: BaseException, limits: JobLimits) -> str | None:
    if isinstance(exc, MemoryError) and limits.memory_bytes:
        return memory_reason(limits)
    spawn_failed = isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOMEM and limits.memory_bytes:
            return memory_reason(limits)
        if exc.errno == errno.EMFILE and limits.open_files:
            return (
                f"open files limit reached: {limits.open_files} per process "
                f"({set_by(limits, 'open_files')})"
            )
        if exc.errno == errno.ENOSPC and limits.temp_bytes and _temp_full(exc):
            return (
                f"temporary directory full: {limits.temp_bytes} bytes in {JOB_TMP} "
                f"({set_by(limits, 'temp')})"
            )
        # fork, clone and subprocess fail with EAGAIN at the process limit; so does I/O on a
        # non-blocking file, which is not a limit's doing.
        spawn_failed = exc.errno == errno.EAGAIN and _raised_starting_a_process(exc)
    if spawn_failed and limits.processes:
        return (
            f"process limit reached: the job may have {limits.processes} processes and threads "
            f"({set_by(limits, 'processes')})"
        )
    return None


def _temp_full(exc: OSError) -> bool:
    """Whether an ENOSPC came from the job's own /tmp: named in the error, or full now."""
    if isinstance(exc.filename, str):
        return within(os.path.abspath(exc.filename), JOB_TMP)
    try:
        return os.statvfs(JOB_TMP).f_bavail == 0
    except OSError:
        return False


SPAWNING = ("fork", "Popen", "spawn", "_execute_child", "Thread", "Pool", "clone")
"""What the code that raised an EAGAIN names when it started a process or thread."""


def _raised_starting_a_process(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    return any(word in f"{frame.name} {frame.line}" for frame in frames for word in SPAWNING)


def signal_reason(code: int | None, limits: JobLimits) -> str | None:
    """The limit a job process that exited with `code` (negative: killed by that signal) ran
    into, or None."""
    if code == -signal.SIGXCPU and limits.cpu_seconds:
        return f"CPU time limit reached: {limits.cpu_seconds} s ({set_by(limits, 'cpu')})"
    return None
