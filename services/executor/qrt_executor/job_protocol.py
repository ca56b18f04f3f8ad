"""What an executor and one of its job processes say to each other, for both sides.

Over the job process's control socket, one JSON document per line: the executor sends one
`Launch`, the job process answers with `Frame`s (interim results, the final result, backend
usage, a failure) until it exits. Its stdout and stderr are the job's log.
"""

from __future__ import annotations

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


Frame = Interim | Final | Usage | Failure
"""What a job process sends back, told apart by its `kind` tag (`interim`, `final`, `usage`,
`error`)."""

MESSAGES = (Launch, Frame, Interim, Final, Usage, Failure)
"""Every message type of this protocol (for `wire.prepare`)."""
