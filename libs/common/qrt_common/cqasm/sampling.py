"""Running a parsed cQASM circuit on a Qiskit backend, answering as a 2300 device does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qiskit.circuit import QuantumCircuit

from ..errors import CqasmError
from .circuit import Circuit
from .convert import to_circuit
from .limits import DEFAULT_LIMITS, Limits


@dataclass(frozen=True, slots=True)
class Sample:
    """What a run measured."""

    counts: dict[str, int]
    """Bitstring `b[n-1]...b[0]` (little endian) to how often it was measured."""
    raw_data: list[str] | None
    """The bitstring of every shot, in order (when asked for)."""


def sample(
    backend: Any,
    parsed: Circuit,
    shots: int,
    *,
    raw_data: bool = False,
    circuit: QuantumCircuit | None = None,
    **options: Any,
) -> Sample:
    """Run `parsed` (already converted to `circuit`, if given) on `backend` for `shots` shots;
    `options` go to `backend.run`, except `limits` (a `Limits`, DEFAULT_LIMITS if not given).

    Raises CqasmError (rule `max_shots`) unless `shots` is an integer from 1 to
    `limits.max_shots`, before anything is run or allocated for them.
    """
    # A keyword in `options`, not a parameter: callers pass `**options` of their own.
    limits = options.pop("limits", DEFAULT_LIMITS)
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a Limits, got {limits!r}")
    if isinstance(shots, bool) or not isinstance(shots, int) or not 0 < shots <= limits.max_shots:
        raise CqasmError(
            f"shots must be an integer from 1 to {limits.max_shots}, got {shots!r}",
            rule="max_shots",
        )
    width = parsed.num_bits or parsed.num_qubits
    if not any(op.name == "measure" for op in parsed.operations):
        # Nothing measured: every bit reads 0 (as QuTech's QX simulator answers).
        zeros = "0" * width
        return Sample({zeros: shots}, [zeros] * shots if raw_data else None)
    circuit = circuit if circuit is not None else to_circuit(parsed)
    result = backend.run(circuit, shots=shots, memory=raw_data, **options).result()
    if not result.success:
        raise RuntimeError(f"the simulation failed: {result.status}")
    counts = {key.replace(" ", ""): n for key, n in result.get_counts().items()}
    memory = [key.replace(" ", "") for key in result.get_memory()] if raw_data else None
    return Sample(counts, memory)
