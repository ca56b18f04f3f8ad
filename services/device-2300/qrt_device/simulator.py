"""Running a checked circuit on Aer with the device's noise: counts and per-shot bitstrings."""

from __future__ import annotations

from dataclasses import dataclass

from qiskit.circuit import ControlFlowOp, QuantumCircuit
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel

from qrt_common.cqasm import Program, to_circuit

from .rules import is_dynamic

DENSITY_MATRIX_QUBITS = 10
"""Up to this many qubits a noisy circuit runs as one density matrix, sampled for all shots
(far faster than one noisy statevector trajectory per shot)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a run measured."""

    counts: dict[str, int]
    """Bitstring `b[n-1]...b[0]` to how often it was measured."""
    raw_data: list[str] | None
    """The bitstring of every shot, in order (when asked for)."""


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
        program: Program,
        shots: int,
        *,
        noise: NoiseModel | None = None,
        seed: int | None = None,
        raw_data: bool = False,
        circuit: QuantumCircuit | None = None,
    ) -> Outcome:
        """Run `program` (already converted to `circuit`, if given) for `shots` shots."""
        width = program.num_bits or program.num_qubits
        if not any(op.name == "measure" for op in program.operations):
            # Nothing measured: every bit reads 0 (as QuTech's QX simulator answers).
            zeros = "0" * width
            return Outcome({zeros: shots}, [zeros] * shots if raw_data else None)
        circuit = circuit if circuit is not None else to_circuit(program)
        options: dict[str, object] = {"shots": shots, "memory": raw_data}
        if seed is not None:
            options["seed_simulator"] = seed
        dynamic = is_dynamic(program)
        if noise is None:
            backend = self._ideal
        elif dynamic or circuit.num_qubits > DENSITY_MATRIX_QUBITS:
            backend = self._statevector
            options["noise_model"] = noise
        else:
            backend = self._density
            options["noise_model"] = noise
        if dynamic:
            options["shot_branching_enable"] = True
        result = backend.run(circuit, **options).result()
        if not result.success:
            raise RuntimeError(f"the simulation failed: {result.status}")
        counts = {key.replace(" ", ""): n for key, n in result.get_counts().items()}
        memory = [key.replace(" ", "") for key in result.get_memory()] if raw_data else None
        return Outcome(counts, memory)
