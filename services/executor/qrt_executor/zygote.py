"""The zygote: a process that imports qiskit once and forks job processes on request.

multiprocessing's forkserver does the same, but makes every child re-run the parent's
`__main__` module (a pytest run or a `python -m` entry point costs each job 100 ms and more);
the zygote's children start with nothing to do but wait for their job.

Protocol, over a SOCK_SEQPACKET socket (one message per datagram):
- executor -> zygote: `fork`, carrying the child's control, stdout and stderr sockets as
  SCM_RIGHTS file descriptors;
- zygote -> executor: `ready` once imports are done, `forked <pid>` for each fork (in order),
  `exited <pid> <code>` when a child ends (negative code: killed by that signal).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from qrt_common.processes import become_subreaper, end_with_parent, keep_proc_entry_private
from qrt_executor.process_tree import kill_strangers, kill_tree

if TYPE_CHECKING:
    from qrt_executor.job_protocol import SandboxPolicy
    from qrt_executor.sandbox import PidNamespaces

PRELOAD = (
    "qrt_executor.child",
    "qrt_executor.device_backend",
    "qiskit",
    "qiskit_aer",
    "qiskit_ibm_runtime.json",  # RuntimeEncoder and RuntimeDecoder, not the package's client
    "qrt_common.primitive_runs",  # the sampler and estimator programs: ~25 ms a job otherwise
)
"""Modules imported once in the zygote, so job processes start with them loaded."""

DEFERRED = "qiskit_ibm_runtime"
"""The package whose `__init__` the zygote leaves to the jobs that use it (see
`qrt_executor.deferred_package`), unless QRT_JOB_PRELOAD names it."""

OPENMP_SETTINGS = {"OMP_WAIT_POLICY": "passive"}
"""What the OpenMP runtime Aer bundles (libgomp) reads once, when `PRELOAD` loads it.

Its threads otherwise spin (GOMP_SPINCOUNT: 300,000 rounds) after every parallel region,
taking a core from the job's other threads and from other jobs: perf on a 2-core machine found
Aer's OpenMP worker spinning through about 6 of the 21 ms of CPU of a Bell `sampler` job.
Waiting passively, they sleep at once; statevector runs of 15-21 qubits took no longer in wall
time that way on the same (busy) machine, and less CPU."""

RESTORE = "QRT_ZYGOTE_RESTORE"
"""Environment variable: JSON of variables set for the zygote alone, with their values before
(null: unset), put back once the zygote started."""


def _child(fds: list[int], policy: SandboxPolicy | None) -> None:
    from qrt_executor import child

    control, stdout, stderr = fds
    child.serve(socket.socket(fileno=control), stdout, stderr, policy)


def _reap(channel: socket.socket, children: set[int], namespaces: PidNamespaces | None) -> None:
    """Reap every child that ended; report the job processes' exits, and kill the orphans
    their ends handed over (before the report, so nothing of a finished job runs on)."""
    exits = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if pid in children:
            children.discard(pid)
            if namespaces is not None:
                namespaces.ended(pid)
            exits.append(f"exited {pid} {os.waitstatus_to_exitcode(status)}")
    kill_strangers(children if namespaces is None else children | namespaces.inits())
    for message in exits:
        with contextlib.suppress(OSError):
            channel.send(message.encode())


END_SECONDS = 5.0
"""How long an ending zygote waits for the processes it killed to be gone."""


def _end_all(children: set[int]) -> None:
    """Kill every job process and every orphan they left, and wait until all are gone."""
    # Without its executor nobody follows these jobs, and the scheduler will run them again
    # elsewhere: they must not keep running.
    for pid in children:
        kill_tree(pid)
    deadline = time.monotonic() + END_SECONDS
    while time.monotonic() < deadline:
        kill_strangers(())
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.005)


KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH")
"""What job processes keep of the executor's environment: nothing else, so no password, token
or URL of the platform reaches a program (not even through `/proc/self/environ`, which shows
the environment a process started with; hence the zygote itself starts with this one)."""


def job_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment job processes start with: `KEPT_VARIABLES` of `environ`, and HOME and
    TMPDIR in the job's own temporary directory (see `qrt_executor.sandbox`)."""
    kept = {name: environ[name] for name in KEPT_VARIABLES if name in environ}
    return {**kept, "HOME": "/tmp", "TMPDIR": "/tmp"}


def zygote_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The zygote's environment: `job_environment(environ)`, with its heap in transparent
    huge pages.

    Forking a job process and ending it cost the kernel time in proportion to the page-table
    entries of the zygote's heap (about 180 MB once qiskit, Aer and qiskit-ibm-runtime are
    loaded). With Python's objects allocated by glibc's malloc, and glibc asked to back its
    heap with huge pages, fork and exit of a no-op job take half the CPU time (measured on a
    2-core machine: 14 ms down to 7 ms). The zygote puts the two variables back as they were
    (`_restore_environment`), so programs' own subprocesses start with the job's environment.
    """
    restore = {name: None for name in ("PYTHONMALLOC", "GLIBC_TUNABLES")}
    return {
        **job_environment(environ),
        "PYTHONMALLOC": "malloc",
        "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
        RESTORE: json.dumps(restore),
    }


def _restore_environment() -> None:
    for name, value in json.loads(os.environ.pop(RESTORE, "{}")).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def _set_for_imports(settings: Mapping[str, str]) -> Iterator[None]:
    """`settings` in the environment (those not set already) while the block imports: what
    libraries read once when loaded, kept from job processes' own environment."""
    added = [name for name in settings if name not in os.environ]
    for name in added:
        os.environ[name] = settings[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _preload(modules: Sequence[str]) -> None:
    """Import `PRELOAD` and `modules` (QRT_JOB_PRELOAD); one of `modules` that fails to import
    is named on stderr (the executor's log) and left to the jobs that use it."""
    from qrt_executor.deferred_package import defer_package

    if DEFERRED not in modules:
        defer_package(DEFERRED)
    with _set_for_imports(OPENMP_SETTINGS):
        for name in PRELOAD:
            importlib.import_module(name)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # whatever its import raises, jobs still run without it
            print(f"[qrt] QRT_JOB_PRELOAD: could not import {name}: {exc!r}", file=sys.stderr)


def serve(
    channel: socket.socket, parent: int, preload: Sequence[str] = (), policy: str = ""
) -> None:
    """Fork a job process for every `fork` message until the executor (process `parent`)
    closes the channel or ends; either ends every job process too. Until the imports are done
    SIGTERM ends the zygote as it is (nothing to clean up, nothing to say). Job processes
    start with `PRELOAD` and `preload` (module names) imported and, given the executor's
    sandbox `policy` (a `SandboxPolicy` as JSON), build its walls while they wait for a job."""
    # Passed to it inheritable: no `cat` it starts (`PidNamespaces`), which a job without
    # Landlock could reach through /proc/1/fd, may hold the executor's channel.
    os.set_inheritable(channel.fileno(), False)
    # SIGTERM, not SIGKILL: its handler ends the job processes too.
    end_with_parent(parent, signal.SIGTERM)
    # What a job leaves behind when its process ends comes here, to be killed.
    become_subreaper()
    # Started with exec, it is dumpable again: a job of the same user (no PID namespace, no
    # Landlock) could read its memory, write it, or reach its /proc/<pid>/root past the job's
    # own mounts. Job processes it forks become dumpable again where they need it (`enter`).
    keep_proc_entry_private()
    _restore_environment()
    _preload(preload)
    from qrt_common import device_protocol, wire
    from qrt_executor import child, job_backends, job_protocol, sandbox, seccomp, warm

    wire.prepare([*job_protocol.MESSAGES, *device_protocol.CLIENT_MESSAGES])
    ahead = wire.from_json(job_protocol.SandboxPolicy, policy) if policy else None
    seccomp.prepare()
    job_backends.build_simulators()
    warm.warm_targets(job_backends.prebuilt_simulators())
    if threads := warm.exercise(job_backends.prebuilt_simulators()):
        print(f"[qrt] the zygote forks with threads started warming up: {threads}", file=sys.stderr)
    child.prepare_output()
    sandbox.prepare()  # after anything that could change sys.path
    # Objects created so far are never collected: children then share their memory pages
    # instead of copying them when the collector touches them.
    gc.collect()
    gc.freeze()
    # Once more, now that the first round's garbage is collected and the rest frozen, then
    # the heap's free chunks taken (`warm.fill_heap_holes`): job processes copy fewer of the
    # zygote's pages (bench/warm_jobs.py: about 190 fewer for a no-op job, 270 for a Bell job
    # through circuit-runner; the second round alone makes most of it).
    if threads := warm.exercise():
        print(f"[qrt] the zygote forks with threads started warming up: {threads}", file=sys.stderr)
    gc.collect()
    gc.freeze()
    warm.fill_heap_holes()
    wakeup_r, wakeup_w = os.pipe()
    os.set_blocking(wakeup_w, False)
    signal.set_wakeup_fd(wakeup_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    selector.register(wakeup_r, selectors.EVENT_READ)
    children: set[int] = set()
    namespaces = sandbox.PidNamespaces.open()
    fork = namespaces.fork if namespaces is not None else os.fork
    if namespaces is None:
        print("[qrt] job processes share the executor's PID namespace (no CAP_SYS_ADMIN here)",
              file=sys.stderr)  # fmt: skip

    def end(*_: object) -> None:
        _end_all(children)
        os._exit(0)

    signal.signal(signal.SIGTERM, end)
    try:
        channel.send(b"ready")
    except OSError:  # the executor went away while this one started
        end()
    while True:
        for key, _ in selector.select():
            if key.fileobj is not channel:
                os.read(wakeup_r, 4096)
                _reap(channel, children, namespaces)
                continue
            try:
                message, fds, _, _ = socket.recv_fds(channel, 64, 3)
            except OSError:
                message, fds = b"", []
            if not message:
                _end_all(children)
                return
            if len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                continue
            # Close-on-exec (Python 3.11's `recv_fds` drops its flags argument): the `cat` a
            # fork starts (`PidNamespaces`) must not hold the job's sockets open, or the
            # executor would see their end only once the job process had exited and been
            # reaped, not when it closes them (`child._exit`).
            for fd in fds:
                os.set_inheritable(fd, False)
            pid = fork()
            if pid == 0:
                try:
                    selector.close()
                    channel.close()
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    os.close(wakeup_r)
                    os.close(wakeup_w)
                    _child(fds, ahead)
                finally:
                    os._exit(70)
            children.add(pid)
            for fd in fds:
                os.close(fd)
            try:
                channel.send(f"forked {pid}".encode())
            except OSError:
                end()


if __name__ == "__main__":
    serve(
        socket.socket(fileno=int(sys.argv[1])),
        parent=int(sys.argv[2]),
        preload=[name for name in (sys.argv[3] if len(sys.argv) > 3 else "").split(",") if name],
        policy=sys.argv[4] if len(sys.argv) > 4 else "",
    )
