"""PlanQK's Python template inside a job process: call `run(data, params)`, report its response.

A program may also import `job_backend` from here to run circuits on the backend its job
asked for (elsewhere it would fall back to a simulator of its own).
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any

from qrt_common.backends import DEFAULT_BACKEND
from qrt_common.errors import ParamsUndecodable, ResultRefused
from qrt_common.results import ResultLimits, refusal

from .job_backends import make_backend
from .job_protocol import Failure, Final, Launch
from .loader import entry_point
from .messenger import UserMessenger
from .params import planqk_arguments
from .sandbox import limit_reason

ENTRY_MODULE = "src.program"


def job_backend() -> Any:
    """The Qiskit backend this job runs on."""
    return make_backend(os.environ.get("QRT_BACKEND", DEFAULT_BACKEND))


def _fields(value: Any) -> Any:
    # PlanQK's ResultResponse and ErrorResponse are plain classes that serialize as their
    # attributes; pydantic models as their dump.
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if hasattr(value, "__dict__"):
        return vars(value)
    raise TypeError(f"a {type(value).__name__} is not JSON serializable")


def response_body(response: Any, limits: ResultLimits) -> str:
    """`run()`'s response as JSON text; raises TypeError if it cannot be one, ResultRefused if
    qrt cannot keep it (NaN or Infinity in it, over QRT_MAX_RESULT_BYTES)."""
    try:
        body = json.dumps(response, default=_fields)
    except ValueError as exc:  # a circular reference
        raise TypeError(f"the response is not JSON serializable: {exc}") from None
    reason = refusal(body, interim=False, limits=limits)
    if reason is not None:
        raise ResultRefused(reason)
    return body


def _failure(messenger: UserMessenger, reason: str) -> int:
    messenger.send(Failure(reason))
    return 1


def run_template(launch: Launch, messenger: UserMessenger) -> int:
    """Import the project's `src/program.py`, call `run(data, params)`; returns the exit code.

    A `ResultResponse`, a dict or a pydantic model is the result; an `ErrorResponse` fails
    the job and is kept as its result body; an exception fails it with the traceback logged.
    """
    os.environ["QRT_BACKEND"] = launch.backend
    try:
        data, params = planqk_arguments(launch.params)
        run = entry_point(launch.project_dir, ENTRY_MODULE, "run", "src/program.py")
        response = run(data=data, params=params)
        body = response_body(response, launch.limits)
    except (ParamsUndecodable, ResultRefused) as exc:
        messenger.fail(str(exc))
        return 1
    except SystemExit as exc:
        if exc.code in (0, None):
            messenger.send(Final("null"))
            return 0
        traceback.print_exc()
        return _failure(messenger, f"run() exited with {exc.code!r}")
    except BaseException as exc:
        traceback.print_exc()
        reason = limit_reason(exc, messenger.job_limits) or f"{type(exc).__name__}: {exc}"
        return _failure(messenger, reason)
    if type(response).__name__ == "ErrorResponse":
        error = json.loads(body)
        code = str(error.get("code")) if isinstance(error, dict) else "500"
        detail = str(error.get("detail")) if isinstance(error, dict) else body
        messenger.send(Failure(f"{detail} (code {code})", body))
        return 1
    messenger.send(Final(body))
    return 0
