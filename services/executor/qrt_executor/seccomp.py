"""A seccomp filter for job processes: the system calls no program needs and an attacker
wants (debugging other processes, new namespaces, mounts, kernel keyrings, BPF, performance
counters, loading kernel modules, ...) fail with `EPERM`; everything else is allowed.

Built with libseccomp (the C library every Linux distribution ships, `libseccomp.so.2`, through
ctypes: the names of system calls are resolved for this machine's architecture, and system calls
of another ABI, such as 32-bit ones on x86_64, kill the process). The zygote compiles it once
(`prepare`); a warm job process loads the compiled program on itself as the last wall (`load`,
after its namespaces, limits and Landlock domain); bubblewrap loads the same program on
one-shot programs (`--seccomp`).

Landlock's system calls (`landlock_create_ruleset`, `landlock_add_rule`,
`landlock_restrict_self`) stay allowed: the job process enters its domain before the filter
is loaded, and a program that calls them itself only ever restricts itself further (a nested
domain cannot lift its parent's scopes, nor keep processes outside it from signalling it).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import os

DENIED = (
    # Other processes' memory and execution.
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    # New namespaces and mounts: the sandbox's walls are built before the filter is loaded.
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    # Kernel facilities a program has no use for, and a large attack surface.
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie", "quotactl", "acct",
    "swapon", "swapoff", "reboot", "syslog", "iopl", "ioperm", "settimeofday", "clock_settime",
    "adjtimex", "clock_adjtime", "vhangup", "nfsservctl", "uselib",
    # Memory that no mapping holds, which RLIMIT_AS therefore does not count: a memfd filled
    # with write(), a System V segment filled and detached (the job's /tmp is the bounded way).
    "memfd_create", "memfd_secret", "shmget",
)  # fmt: skip
"""System calls that fail with EPERM in a job."""

NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}
"""`clone` with any of these flags fails with EPERM (a plain fork or thread passes)."""

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
SCMP_CMP_MASKED_EQ = 7
NR_SCMP_ERROR = -1


class _ArgCmp(ctypes.Structure):
    """libseccomp's `struct scmp_arg_cmp`."""

    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


@functools.cache
def _library() -> ctypes.CDLL:
    """libseccomp; raises OSError when it is not installed."""
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp)
    ]  # fmt: skip
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def _errno(code: int) -> int:
    return SCMP_ACT_ERRNO | code


def _check(result: int, what: str) -> None:
    if result < 0:  # libseccomp returns -errno
        raise OSError(-result, f"seccomp: {what}: {os.strerror(-result)}")


def _filter() -> int:
    """A libseccomp context holding the job filter (release it with `seccomp_release`)."""
    lib = _library()
    context = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not context:
        raise OSError(errno.ENOMEM, "seccomp: could not make a filter")
    try:
        for name in DENIED:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == NR_SCMP_ERROR:
                continue  # not a system call of this architecture
            _check(lib.seccomp_rule_add_array(context, _errno(errno.EPERM), number, 0, None), name)
        clone = lib.seccomp_syscall_resolve_name(b"clone")
        for flag in NAMESPACE_FLAGS.values():
            # On x86_64 and aarch64 alike the flags are clone's first argument.
            compare = _ArgCmp(0, SCMP_CMP_MASKED_EQ, flag, flag)
            _check(
                lib.seccomp_rule_add_array(
                    context, _errno(errno.EPERM), clone, 1, ctypes.byref(compare)
                ),
                "clone",
            )
        # clone3 takes its flags in memory, where a filter cannot look: it is "not there", and
        # the C library falls back to clone (as Docker's and Podman's default profiles do).
        clone3 = lib.seccomp_syscall_resolve_name(b"clone3")
        if clone3 != NR_SCMP_ERROR:
            _check(
                lib.seccomp_rule_add_array(context, _errno(errno.ENOSYS), clone3, 0, None), "clone3"
            )
    except BaseException:
        lib.seccomp_release(context)
        raise
    return int(context)


PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _Program(ctypes.Structure):
    """The kernel's `struct sock_fprog`: how many instructions, and where."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def prepare() -> None:
    """Compile the filter ahead, in the zygote, so job processes forked from it only load it
    (compiling it costs each of them a few milliseconds more). Without libseccomp nothing is
    compiled: `load` then raises in the job process, and the job fails saying why."""
    with contextlib.suppress(OSError):
        _loadable()


@functools.cache
def _loadable() -> tuple[ctypes.CDLL, _Program, ctypes.Array[ctypes.c_char]]:
    """The C library, and the compiled filter as the kernel takes it (with the buffer it
    points into, which must live as long)."""
    program = bpf_program()
    code = ctypes.create_string_buffer(program, len(program))
    return (
        ctypes.CDLL(None, use_errno=True),
        _Program(len(program) // 8, ctypes.addressof(code)),
        code,
    )


def load() -> None:
    """Load the job filter on this single-threaded process (and everything it starts from now
    on), with no_new_privs set as seccomp(2) requires of a process without CAP_SYS_ADMIN.
    Raises OSError when libseccomp is missing or the kernel refuses."""
    libc, fprog, _ = _loadable()
    for what, result in (
        ("no_new_privs", libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)),
        ("load", libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0)),
    ):
        if result != 0:
            failure = ctypes.get_errno()
            raise OSError(failure, f"seccomp: {what}: {os.strerror(failure)}")


@functools.cache
def bpf_program() -> bytes:
    """The job filter as a BPF program (`struct sock_filter`s), what `bwrap --seccomp FD`
    reads. Raises OSError when libseccomp is missing."""
    lib = _library()
    context = _filter()
    read_end, write_end = os.pipe()
    try:
        # A filter of ~60 rules is a few hundred instructions of 8 bytes: within a pipe's buffer.
        _check(lib.seccomp_export_bpf(context, write_end), "export")
        os.close(write_end)
        write_end = -1
        parts = []
        while chunk := os.read(read_end, 65536):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        lib.seccomp_release(context)
        os.close(read_end)
        if write_end != -1:
            os.close(write_end)
