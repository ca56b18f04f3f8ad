"""Running a checked circuit on Aer with the device's noise."""

from __future__ import annotations

from qiskit.circuit import ControlFlowOp, QuantumCircuit
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel

from qrt_common.cqasm import DEFAULT_LIMITS, Circuit, Limits, Sample, sample

from .rules import is_dynamic

DENSITY_MATRIX_QUBITS = 10
"""Up to this many qubits a noisy circuit runs as one density matrix, sampled for all shots
(far faster than one noisy statevector trajectory per shot)."""


def instruction_names(circuit: QuantumCircuit) -> frozenset[str]:
    """Every instruction name in `circuit`, inside control flow too."""
    names: set[str] = set()
    for instruction in circuit.data:
        operation = instruction.operation
        names.add(operation.name)
        if isinstance(operation, ControlFlowOp):
            for block in operation.blocks:
                names |= instruction_names(block)
    return frozenset(names)


class Simulator:
    """Aer, set up once, for one device."""

    def __init__(self) -> None:
        self._ideal = AerSimulator()
        self._density = AerSimulator(method="density_matrix")
        self._statevector = AerSimulator(method="statevector")

    def run(
        self,
        parsed: Circuit,
        shots: int,
        *,
        noise: NoiseModel | None = None,
        seed: int | None = None,
        raw_data: bool = False,
        circuit: QuantumCircuit | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> Sample:
        """Run `parsed` (already converted to `circuit`, if given) for `shots` shots; raises
        CqasmError (rule `max_shots`) for more shots than `limits` allow."""
        options: dict[str, object] = {"limits": limits}
        if seed is not None:
            options["seed_simulator"] = seed
        qubits = parsed.num_qubits
        backend = self._ideal
        if noise is not None:
            options["noise_model"] = noise
            many = is_dynamic(parsed) or qubits > DENSITY_MATRIX_QUBITS
            backend = self._statevector if many else self._density
        # Aer's shot branching stays off: with it, Aer 0.18 ends the process (SIGSEGV) on a
        # few rounds of mid-circuit measurements at 70000 shots and more, and bench/device.py
        # measured it 4-10 times slower on such rounds (each outcome, and with noise each
        # sampled error, forks a branch); it wins (by 1.7-3 times) only on wide ideal circuits
        # with few branches, whose shots max_dynamic_work keeps few.
        return sample(backend, parsed, shots, raw_data=raw_data, circuit=circuit, **options)
