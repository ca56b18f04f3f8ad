"""The program's side of a job: runs inside the job's own process, forked from the warm pool.

The forkserver imports this module (and with it qiskit, qiskit-aer and the runtime codec)
once, so every job process starts with them already loaded.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import socket
import sys
import threading
import traceback
from typing import Any

import qiskit_ibm_runtime
from qiskit_aer import AerSimulator

from qrt_common.backends import SIMULATORS

RuntimeEncoder: type[json.JSONEncoder] = qiskit_ibm_runtime.RuntimeEncoder
RuntimeDecoder: type[json.JSONDecoder] = qiskit_ibm_runtime.RuntimeDecoder


class UserMessenger:
    """Handed to a program's `main()` to publish interim results and its final result."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self.final_published = False

    def publish(
        self,
        message: Any,
        encoder: type[json.JSONEncoder] = RuntimeEncoder,
        final: bool = False,
    ) -> None:
        """Publish `message`: an interim result, or the final result if `final`."""
        text = json.dumps(message, cls=encoder)
        # As in Qiskit Runtime, the log shows every published message.
        print(text, flush=True)
        self.send({"kind": "final" if final else "interim", "data": text})
        self.final_published = self.final_published or final

    def send(self, frame: dict[str, Any]) -> None:
        """Write one control frame to the executor."""
        line = (json.dumps(frame) + "\n").encode()
        with self._lock:
            self._channel.sendall(line)


_simulators: dict[str, Any] = {}
"""Simulator backends built ahead in the zygote (`build_simulators`); a job process takes its
copy of the one it needs, once."""

_usage: UserMessenger | None = None
"""Where the job's backend reports what it ran (set by `serve`): the executor counts circuits
and shots, since nothing a job process records itself outlives it."""


def make_backend(name: str, device: dict[str, Any] | None = None) -> Any:
    """The Qiskit backend a job asked for: a simulator, or the device described by `device`."""
    if device is not None:
        from .device_backend import DeviceBackend

        backend = DeviceBackend(
            device["address"],
            device["static"],
            timeout=device["timeout"],
            execute_timeout=device["execute_timeout"],
            session_id=device["session_id"],
        )
    elif name in SIMULATORS:
        backend = _simulators.pop(name, None)
        if backend is None:
            backend = AerSimulator(**SIMULATORS[name])
    else:
        raise ValueError(f"unknown backend {name!r}")
    return _counting(backend, name)


def build_simulators() -> None:
    """Build every simulator backend ahead, for the processes forked from this one.

    Building one touches a few hundred pages of the zygote's memory, each of which a job process
    then copies: about 1 ms of a no-op job's CPU time. A prebuilt one it uses as its own copy
    (its options and `run` changed in that process alone) for a few dozen pages.
    """
    for name, options in SIMULATORS.items():
        _simulators[name] = AerSimulator(**options)


def _counting(backend: Any, name: str) -> Any:
    """`backend`, whose `run` also reports the circuits and shots it was given."""
    run = backend.run

    def report(circuits: int, shots: int) -> None:
        if _usage is not None:
            _usage.send({"kind": "usage", "backend": name, "circuits": circuits, "shots": shots})

    def run_and_report(run_input: Any, **options: Any) -> Any:
        job = run(run_input, **options)
        circuits = len(run_input) if isinstance(run_input, list | tuple) else 1
        shots = int(options.get("shots") or getattr(backend.options, "shots", 0) or 0)
        report(circuits, circuits * shots)
        return job

    backend.run = run_and_report
    run_cqasm = getattr(backend, "run_cqasm", None)
    if run_cqasm is not None:  # a device's path for cQASM text sent as it is

        def run_cqasm_and_report(circuit: str, shots: int, *args: Any, **kwargs: Any) -> Any:
            payload = run_cqasm(circuit, shots, *args, **kwargs)
            report(1, int(shots))
            return payload

        backend.run_cqasm = run_cqasm_and_report
    return backend


def import_from(directory: str) -> None:
    """Put `directory` first on the import path, seeing the files it holds now."""
    sys.path.insert(0, directory)
    # A finder the zygote cached for it may predate files added since. Only that one is
    # dropped: importlib.invalidate_caches() would free caches all over the zygote's heap,
    # and copying the pages they sit on costs a job process about 6 ms.
    sys.path_importer_cache.pop(directory, None)


def run_program(spec: dict[str, Any], messenger: UserMessenger) -> int:
    """Import the program, decode its inputs and call `main()`; returns the exit code."""
    try:
        import_from(spec["programs_dir"])
        module = importlib.import_module(spec["module"])
        main = getattr(module, "main", None)
        if not callable(main):
            raise AttributeError(f"program module {spec['module']} has no main() function")
        backend = make_backend(spec["backend"], spec.get("device"))
        # User input is decoded only here, inside the program's own process.
        params = spec["params"]
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
        messenger.send({"kind": "error", "reason": f"program exited with {exc.code!r}"})
        return 1
    except BaseException as exc:
        traceback.print_exc()
        messenger.send({"kind": "error", "reason": f"{type(exc).__name__}: {exc}"})
        return 1


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
    # A process group of its own lets the executor kill the program and anything it started.
    os.setsid()
    os.dup2(stdout, 1)
    os.dup2(stderr, 2)
    os.close(stdout)
    os.close(stderr)
    line = _read_line(control)
    if not line:
        os._exit(0)
    spec = json.loads(line)
    os.environ["QRT_JOB_ID"] = spec["job_id"]
    os.chdir(spec["workdir"])
    global _usage
    messenger = _usage = UserMessenger(control)
    if spec.get("kind") == "python-template":
        from .template import run_template

        code = run_template(spec, messenger)
    else:
        code = run_program(spec, messenger)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
