"""A job process's life: forked from the zygote, it waits for its one `Launch`, runs the program
with stdout and stderr on the job's log, and exits.

The zygote imports this module (and with it qiskit, qiskit-aer and the runtime codec) once, so
every job process starts with them already loaded.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys

from qrt_common.errors import MalformedMessage
from qrt_common.processes import become_subreaper
from qrt_common.programs import ProgramKind
from qrt_common.wire import from_json

from . import sandbox
from .job_backends import report_usage_to
from .job_protocol import Exit, Launch, SandboxPolicy
from .messenger import UserMessenger
from .runtime_program import run_program
from .template import run_template


def prepare_output() -> None:
    """Give the processes forked from this one their `sys.stdout` and `sys.stderr` ahead: text
    streams on file descriptors 1 and 2, which a job process points at its sockets.

    Streams built in each job process cost it about 50 page copies more (0.2 ms of a no-op job)
    than these, made once and shared until written to.
    """
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:  # started without it: a job process replaces it with its socket anyway
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    sys.stdout, sys.stderr = (
        io.TextIOWrapper(
            io.FileIO(fd, "w", closefd=False),
            encoding="utf-8",
            errors="replace",
            line_buffering=True,
        )
        for fd in (1, 2)
    )


def _read_line(sock: socket.socket) -> bytes:
    """One line from `sock` (the executor sends one, then waits), or b"" if it closed."""
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(parts)


def serve(
    control: socket.socket, stdout: int, stderr: int, policy: SandboxPolicy | None = None
) -> None:
    """Wait for one job on `control`, run it with stdout and stderr on the given file
    descriptors (of sockets), exit. `prepare_output` ran in the process forked from. With
    `policy` (the executor's), the sandbox's namespaces and mounts are built while it waits."""
    # A session of its own keeps a terminal's signals (Ctrl-C on `qrt dev`) away from the job;
    # as a subreaper it keeps whatever the program starts in its tree, for `kill_tree` and the
    # zygote to end with it.
    os.setsid()
    become_subreaper()
    job_process = os.getpid()
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.close(stdout)
    os.close(stderr)
    filled = sandbox.fill_ahead()
    ahead = sandbox.build_ahead(policy)
    line = _read_line(control)
    if not line:
        os._exit(0)
    try:
        launch: Launch = from_json(Launch, line)
    except MalformedMessage as exc:
        print(f"[qrt] the job process could not read its launch: {exc}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(70)
    os.environ["QRT_JOB_ID"] = launch.job_id
    messenger = UserMessenger(control, launch.limits, launch.sandbox.limits)
    try:
        sandbox.enter(launch, filled, ahead)
    except OSError as exc:
        messenger.fail(
            f"the job's sandbox could not be built ({exc}); QRT_JOB_SANDBOX=off runs jobs "
            "without one"
        )
        os._exit(70)
    os.chdir(launch.workdir)
    report_usage_to(messenger)
    if launch.kind is ProgramKind.PYTHON_TEMPLATE:
        code = run_template(launch, messenger)
    else:
        code = run_program(launch, messenger)
    _exit(code, control, messenger, job_process)


def _nothing_else_runs() -> bool:
    """Whether no process this one started (or was handed, as a subreaper) still runs; the
    ended ones are reaped."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False


def _exit(code: int, control: socket.socket, messenger: UserMessenger, job_process: int) -> None:
    """Flush the job's output and exit with `code`. When this is the job process (not a child
    the program forked that returned from it too) and nothing the program started still runs,
    say `code` first (`Exit`) and close the sockets: the executor then ends the job without
    waiting for the kernel to tear this process down."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.getpid() == job_process and _nothing_else_runs():
        with contextlib.suppress(OSError):
            messenger.send(Exit(code))
            # A copy of these a program made (os.dup) keeps them open until the exit: the
            # executor then waits for it, as it would have.
            os.close(1)
            os.close(2)
            control.close()
    os._exit(code)
