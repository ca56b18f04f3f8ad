"""A job process's life: forked from the zygote, it waits for its one `Launch`, runs the program
with stdout and stderr on the job's log, and exits.

The zygote imports this module (and with it qiskit, qiskit-aer and the runtime codec) once, so
every job process starts with them already loaded.
"""

from __future__ import annotations

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
from .job_protocol import Launch
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


def serve(control: socket.socket, stdout: int, stderr: int) -> None:
    """Wait for one job on `control`, run it with stdout and stderr on the given file
    descriptors (of sockets), exit. `prepare_output` ran in the process forked from."""
    # A session of its own keeps a terminal's signals (Ctrl-C on `qrt dev`) away from the job;
    # as a subreaper it keeps whatever the program starts in its tree, for `kill_tree` and the
    # zygote to end with it.
    os.setsid()
    become_subreaper()
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.close(stdout)
    os.close(stderr)
    filled = sandbox.fill_ahead()
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
        sandbox.enter(launch, filled)
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
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
