"""The Qiskit backends a job process hands its program: the simulators (built once in the
zygote), or a 2300 device; each reports what it ran to the executor."""

from __future__ import annotations

from typing import Any

from qiskit_aer import AerSimulator

from qrt_common.backends import SIMULATORS

from .job_protocol import DeviceAccess, Usage
from .messenger import UserMessenger

_simulators: dict[str, Any] = {}
"""Simulator backends built ahead in the zygote (`build_simulators`); a job process takes its
copy of the one it needs, once."""

_usage: list[UserMessenger] = []
"""Where backends report what they ran (set by `report_usage_to`): the executor counts circuits
and shots, since nothing a job process records itself outlives it."""


def build_simulators() -> None:
    """Build every simulator backend ahead, for the processes forked from this one.

    Building one touches a few hundred pages of the zygote's memory, each of which a job process
    then copies: about 1 ms of a no-op job's CPU time. A prebuilt one it uses as its own copy
    (its options and `run` changed in that process alone) for a few dozen pages.
    """
    for name, options in SIMULATORS.items():
        _simulators[name] = AerSimulator(**options)


def prebuilt_simulators() -> dict[str, Any]:
    """The simulators `build_simulators` built that no job took yet, by backend name."""
    return dict(_simulators)


def report_usage_to(messenger: UserMessenger) -> None:
    """Send what every backend of this process runs to `messenger`'s executor."""
    _usage[:] = [messenger]


def make_backend(
    name: str, device: DeviceAccess | None = None, simulator_qubits: int | None = None
) -> Any:
    """The Qiskit backend a job asked for: a simulator (offering `simulator_qubits` qubits,
    its `num_qubits` and Target's, when given; else as many as Aer thinks memory allows), or
    the device `device` describes; raises ValueError for an unknown simulator name."""
    if device is not None:
        from .device_backend import DeviceBackend
        from .device_relay import RelayedDeviceClient

        if not _usage:
            raise ValueError("a device backend needs the job's channel (report_usage_to)")
        client = RelayedDeviceClient(_usage[0], device.address, timeout=device.timeout)
        backend = DeviceBackend(
            device.address,
            device.static,
            timeout=device.timeout,
            execute_timeout=device.execute_timeout,
            session_id=device.session_id,
            client=client,
        )
    elif name in SIMULATORS:
        backend = _simulators.pop(name, None)
        if backend is None:
            backend = AerSimulator(**SIMULATORS[name])
        if simulator_qubits is not None and backend.num_qubits != simulator_qubits:
            # Only when it differs: any set_options makes the zygote's kept Target stale, and
            # every job would build its own again (qrt_executor.warm).
            backend.set_options(n_qubits=simulator_qubits)
    else:
        raise ValueError(f"unknown backend {name!r}")
    return _counting(backend, name)


def _counting(backend: Any, name: str) -> Any:
    """`backend`, whose `run` also reports the circuits and shots it was given."""
    run = backend.run

    def report(circuits: int, shots: int) -> None:
        for messenger in _usage:
            messenger.send(Usage(name, circuits, shots))

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
