"""A Qiskit Runtime program inside its job process: decode its params, call
`main(backend, user_messenger, **kwargs)`, report its result."""

from __future__ import annotations

import json
import traceback

from .job_backends import make_backend
from .job_protocol import Failure, Launch
from .loader import entry_point
from .messenger import RuntimeDecoder, UserMessenger


def run_program(launch: Launch, messenger: UserMessenger) -> int:
    """Import the program, decode its inputs and call `main()`; returns the exit code."""
    try:
        where = f"program module {launch.module}"
        main = entry_point(launch.search_path, launch.module, "main", where)
        backend = make_backend(launch.backend, launch.device)
        # User input is decoded only here, inside the program's own process.
        params = launch.params
        kwargs = json.loads(params, cls=RuntimeDecoder) if params not in ("", "{}") else {}
        if not isinstance(kwargs, dict):
            raise TypeError("params must decode to an object of keyword arguments")
        result = main(backend, messenger, **kwargs)
        if result is not None and not messenger.final_published:
            messenger.publish(result, final=True)
        return 0
    except SystemExit as exc:
        if exc.code in (0, None):
            return 0
        traceback.print_exc()
        messenger.send(Failure(f"program exited with {exc.code!r}"))
        return 1
    except BaseException as exc:
        traceback.print_exc()
        messenger.send(Failure(f"{type(exc).__name__}: {exc}"))
        return 1
