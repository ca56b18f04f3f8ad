"""A Qiskit Runtime program inside its job process: decode its params, call
`main(backend, user_messenger, **kwargs)`, report its result."""

from __future__ import annotations

import traceback

from qiskit_ibm_runtime.json import RuntimeDecoder

from qrt_common.errors import (
    DeviceRefused,
    InvalidInput,
    ParamsUndecodable,
    ResultRefused,
    SimulationFailed,
)

from .job_backends import make_backend
from .job_protocol import Failure, Launch
from .loader import entry_point
from .messenger import UserMessenger
from .params import keyword_arguments
from .sandbox import limit_reason


def run_program(launch: Launch, messenger: UserMessenger) -> int:
    """Import the program, decode its inputs and call `main()`; returns the exit code."""
    try:
        where = f"program module {launch.module}"
        main = entry_point(launch.search_path, launch.module, "main", where)
        backend = make_backend(launch.backend, launch.device, launch.simulator_qubits)
        # User input is decoded only here, inside the program's own process.
        kwargs = keyword_arguments(launch.params, RuntimeDecoder)
        result = main(backend, messenger, **kwargs)
        if result is not None and not messenger.final_published:
            try:
                messenger.publish(result, final=True)
            except ResultRefused as exc:
                messenger.fail(str(exc))
                return 1
        return 0
    except (ParamsUndecodable, InvalidInput, DeviceRefused) as exc:
        # Input the program or the device refused with qrt's own error (a primitive's option, a
        # pub that is not an ISA circuit, a circuit the device's rules refuse): its message is
        # the reason; a traceback would only bury it.
        messenger.fail(str(exc))
        return 1
    except SimulationFailed as exc:
        # Aer's own reason says it all, unless the job's memory limit made it fail.
        messenger.fail(limit_reason(exc, messenger.job_limits) or str(exc))
        return 1
    except SystemExit as exc:
        if exc.code in (0, None):
            return 0
        traceback.print_exc()
        messenger.send(Failure(f"program exited with {exc.code!r}"))
        return 1
    except BaseException as exc:
        traceback.print_exc()
        # A publish the program made and did not catch: the traceback shows where.
        reason = str(exc) if isinstance(exc, ResultRefused) else f"{type(exc).__name__}: {exc}"
        messenger.send(Failure(limit_reason(exc, messenger.job_limits) or reason))
        return 1
