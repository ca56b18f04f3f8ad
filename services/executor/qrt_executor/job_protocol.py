"""What an executor and one of its job processes say to each other, for both sides.

Over the job process's control socket, one JSON document per line: the executor sends one
`Launch`, the job process answers with `Frame`s (interim results, the final result, backend
usage, a failure) until it exits. Its stdout and stderr are the job's log.
"""

from __future__ import annotations

from typing import Any

import msgspec

from qrt_common.device_protocol import StaticInfo
from qrt_common.programs import ProgramKind
from qrt_common.results import ResultLimits
from qrt_common.wire import Message


class DeviceAccess(Message, frozen=True):
    """How a job process reaches the 2300 device its job runs on."""

    address: str
    """The device's request socket (`tcp://host:port`)."""
    static: StaticInfo
    """What the executor learnt of it (`get_static`), so the job need not ask again."""
    timeout: float
    """Seconds the device may take to answer initialize, terminate, get_static, get_dynamic."""
    execute_timeout: float
    """Seconds it may take to answer an execute."""
    session_id: str
    """The session the job locks the device with; the executor ends it after the job."""


class JobLimits(Message, frozen=True):
    """What a job process may use (see `qrt_executor.sandbox`); 0 means no limit."""

    memory_bytes: int = 0
    """Address space beyond what the process had when its job arrived (RLIMIT_AS)."""
    cpu_seconds: int = 0
    """CPU time of the job process (RLIMIT_CPU); each process it starts has its own."""
    processes: int = 0
    """Processes and threads the job may have at once (RLIMIT_NPROC, in its own user namespace;
    the kernel ignores it for root, see the README)."""
    open_files: int = 0
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    temp_bytes: int = 0
    """Size of the job's temporary directory (its tmpfs)."""
    set_by: dict[str, str] = msgspec.field(default_factory=dict)
    """What set each limit, by `qrt_common.program_limits` field (`memory_bytes`, ...), in
    words for a failure reason: a setting, or the program's metadata; the default settings'
    names for those left out."""


class SandboxPolicy(Message, frozen=True):
    """How a job process walls itself in before it runs its program."""

    isolate: bool = True
    """Own user, mount, network and IPC namespaces with a read-only view of the file system;
    False runs with the limits alone."""
    hidden: tuple[str, ...] = ()
    """Directories that appear empty (the store's, sockets' and other jobs' directories)."""
    writable: tuple[str, ...] = ()
    """Directories the job may write besides its own (QRT_JOB_WRITABLE_PATHS)."""
    limits: JobLimits = JobLimits()


class Launch(Message, frozen=True):
    """What a job process is to run: the one message it gets."""

    job_id: str
    kind: ProgramKind
    """`qiskit-runtime` (call `main()`) or `python-template` (call PlanQK's `run()`)."""
    module: str
    """The dotted module holding `main()` (Qiskit Runtime), importable from `search_path`."""
    search_path: str
    """Put first on `sys.path` to import the program."""
    project_dir: str
    """A PlanQK project's directory, where `src/program.py` is."""
    backend: str
    """The backend the job asked for."""
    params: str
    """The program's input, as the job keeps it (RuntimeEncoder JSON, or PlanQK's input)."""
    workdir: str
    """An empty directory of the job's own: the process's working directory."""
    device: DeviceAccess | None = None
    """Set when `backend` is a device."""
    limits: ResultLimits = ResultLimits()
    """How large the result and each interim result may be."""
    sandbox: SandboxPolicy = SandboxPolicy(isolate=False)
    """The walls and limits the job runs within."""
    simulator_qubits: int = 30
    """Qubits a simulator backend offers the job (QRT_SIMULATOR_QUBITS), as the IBM API
    advertises them: the primitives refuse wider circuits."""


class Interim(Message, frozen=True, tag="interim", tag_field="kind"):
    """An interim result the program published (RuntimeEncoder JSON text)."""

    data: str


class Final(Message, frozen=True, tag="final", tag_field="kind"):
    """The program's final result (JSON text); the first one counts."""

    data: str


class Usage(Message, frozen=True, tag="usage", tag_field="kind"):
    """What the job ran on a backend, for the executor's metrics (a job process keeps none)."""

    backend: str
    circuits: int
    shots: int


class Failure(Message, frozen=True, tag="error", tag_field="kind"):
    """Why the program failed, for people; `data` is a failure's own body (PlanQK's
    `ErrorResponse`), kept as the job's result."""

    reason: str
    data: str | None = None


class DeviceCall(Message, frozen=True, tag="device", tag_field="kind"):
    """A request for the job's device, which the executor makes for the job process (that has
    no network of its own) and answers with one `DeviceAnswer` line."""

    command: str
    session_id: str
    payload: dict[str, Any] | None = None
    timeout: float | None = None


class DeviceAnswer(Message, frozen=True):
    """The device's success payload, or why there is none."""

    payload: dict[str, Any] | None = None
    error: str | None = None
    unavailable: bool = False
    """The error is DeviceUnavailable (no answer) rather than DeviceRefused."""


class Exit(Message, frozen=True, tag="exit", tag_field="kind"):
    """The job process's exit code, its last frame, sent when nothing it started runs any more
    and its output is flushed, right before it exits and closes its sockets: the executor then
    takes the job's end from it once the sockets are closed, rather than waiting for the
    kernel to tear the process down (about 3 ms of a no-op job's 10)."""

    code: int


Frame = Interim | Final | Usage | Failure | DeviceCall | Exit
"""What a job process sends back, told apart by its `kind` tag (`interim`, `final`, `usage`,
`error`, `device`, `exit`)."""

MESSAGES = (Launch, Frame, Interim, Final, Usage, Failure, DeviceCall, DeviceAnswer, Exit)
"""Every message type of this protocol (for `wire.prepare`)."""
