"""A 2300 device as a Qiskit backend: its Target comes from `get_static`, circuits are
transpiled to it, written as cQASM 3 and run in an initialize/execute/terminate session."""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from qiskit import QuantumCircuit, transpile
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.result import Result
from qiskit.transpiler import Target

from qrt_common.cqasm import dumps
from qrt_common.device_protocol import Command, ExecuteRequest, StaticInfo
from qrt_common.errors import DeviceRefused, DeviceUnavailable
from qrt_common.targets import device_target
from qrt_common.wire import decode

from .device_client import DeviceClient, end_session

logger = logging.getLogger(__name__)

UNAVAILABLE_ATTEMPTS = 3
"""Sessions started again after the device did not answer (or restarted) before giving up."""
RETRY_SECONDS = 0.5


def _needs_transpiling(circuit: QuantumCircuit, target: Target) -> bool:
    if circuit.num_qubits != target.num_qubits:
        return True
    index = {qubit: i for i, qubit in enumerate(circuit.qubits)}
    for instruction in circuit.data:
        name = instruction.operation.name
        if name == "barrier":
            continue
        qargs = tuple(index[q] for q in instruction.qubits)
        if not target.instruction_supported(name, qargs):
            return True
    return False


class DeviceJob(JobV1):  # type: ignore[misc]
    """A finished run on a device (devices run jobs as they are submitted)."""

    def __init__(self, backend: DeviceBackend, job_id: str, result: Result) -> None:
        super().__init__(backend, job_id)
        self._result = result

    def submit(self) -> None:
        return None

    def result(self) -> Result:
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE


class DeviceBackend(BackendV2):  # type: ignore[misc]
    """A 2300 device at `address`, reached over the 2200/2300 ZeroMQ interface."""

    def __init__(
        self,
        address: str,
        static: StaticInfo | None = None,
        *,
        timeout: float = 10.0,
        execute_timeout: float = 300.0,
        session_id: str | None = None,
        client: Any = None,
    ) -> None:
        self.client = client or DeviceClient(address, timeout=timeout)
        """A `DeviceClient`, or what stands in for one (a job process's `RelayedDeviceClient`)."""
        self.session_id = session_id or str(uuid.uuid4())
        """The session every run of this backend locks the device with (an executor ends it
        after the job, however the job ended)."""
        if static is None:
            payload = self.client.request(Command.GET_STATIC, str(uuid.uuid4()))
            static = decode(StaticInfo, payload)
        self.static = static
        self.address = address
        self.execute_timeout = execute_timeout
        super().__init__(
            name=static.name,
            description=f"2300 device {static.name} at {address}",
            backend_version=str(static.protocol_version),
        )
        self._target = device_target(static)
        self._job_ids = itertools.count(1)

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, memory=False, seed_simulator=None, seed_transpiler=None)

    def run(
        self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options: Any
    ) -> DeviceJob:
        """Run circuits (transpiled for the device here if they are not yet) and wait for the
        results; options: `shots`, `memory` (per-shot bitstrings)."""
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        shots = int(options.get("shots", self.options.shots))
        memory = bool(options.get("memory", self.options.memory))
        seed = options.get("seed_transpiler", self.options.seed_transpiler)
        ready = [
            transpile(c, backend=self, seed_transpiler=seed)
            if _needs_transpiling(c, self._target)
            else c
            for c in circuits
        ]
        texts = [dumps(circuit) for circuit in ready]
        payloads = self.execute_all([(text, shots, memory) for text in texts])
        job_id = str(uuid.uuid4())
        results = [
            _experiment(original, payload, shots, memory)
            for original, payload in zip(circuits, payloads, strict=True)
        ]
        result = Result.from_dict(
            {
                "backend_name": self.name,
                "backend_version": self.backend_version,
                "job_id": job_id,
                "qobj_id": job_id,
                "success": True,
                "results": results,
            }
        )
        return DeviceJob(self, job_id, result)

    def run_cqasm(
        self, circuit: str, shots: int = 1024, include_raw_data: bool = False
    ) -> dict[str, Any]:
        """Run a cQASM program as it is; returns the device's reply payload (`results`,
        `raw_data`)."""
        return self.execute_all([(circuit, shots, include_raw_data)])[0]

    def execute_all(self, runs: list[tuple[str, int, bool]]) -> list[dict[str, Any]]:
        """Execute each (cQASM, shots, raw data) in one locked session; a session lost to a
        timeout or a device restart is started again for the runs not done yet."""
        done: list[dict[str, Any]] = []
        unavailable = 0
        deadline = time.monotonic() + self.execute_timeout
        session = self.session_id
        while len(done) < len(runs):
            try:
                self.client.request(Command.INITIALIZE, session)
                while len(done) < len(runs):
                    text, shots, raw = runs[len(done)]
                    execute = ExecuteRequest(
                        job_id=next(self._job_ids),
                        circuit=text,
                        number_of_shots=shots,
                        include_raw_data=raw,
                    )
                    timeout = self.execute_timeout
                    done.append(
                        self.client.request(Command.EXECUTE, session, execute, timeout=timeout)
                    )
            except DeviceUnavailable as exc:
                unavailable += 1
                if unavailable >= UNAVAILABLE_ATTEMPTS:
                    tries = f"{unavailable} attempts"
                    raise DeviceUnavailable(f"{self.name}: {exc} ({tries})") from None
                logger.warning("device unavailable, starting a new session: %s", exc)
                time.sleep(RETRY_SECONDS)
            except DeviceRefused as exc:
                # Busy (another session, calibrating) or the session was lost (a restart, a
                # lease run out): wait and start again. Anything else is the circuit's fault.
                message = str(exc)
                busy = ("locked by another session", "CALIBRATING", "outside an initialized")
                if not any(reason in message for reason in busy) or time.monotonic() > deadline:
                    raise DeviceRefused(f"{self.name}: {message}") from None
                time.sleep(RETRY_SECONDS)
            finally:
                end_session(self.client, session)
        return done

    def close(self) -> None:
        self.client.close()


def _experiment(
    circuit: QuantumCircuit, payload: dict[str, Any], shots: int, memory: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "counts": {hex(int(key, 2)): n for key, n in payload.get("results", {}).items()}
    }
    if memory:
        data["memory"] = [hex(int(bits, 2)) for bits in payload.get("raw_data") or []]
    return {
        "shots": shots,
        "success": True,
        "data": data,
        "header": {
            "name": circuit.name,
            "creg_sizes": [[creg.name, creg.size] for creg in circuit.cregs],
            "memory_slots": circuit.num_clbits,
        },
    }
