"""What a circuit must satisfy to run on the device; a broken rule is named with its line."""

from __future__ import annotations

from qrt_common.cqasm import Circuit
from qrt_common.cqasm.gates import NON_GATES
from qrt_common.errors import CqasmError

from .config import DeviceConfig


def is_dynamic(parsed: Circuit) -> bool:
    """True if Aer has to simulate the circuit shot by shot: a conditional gate, or a gate
    or reset after a measurement on the same qubit."""
    measured: set[int] = set()
    for op in parsed.operations:
        if op.condition:
            return True
        if op.name == "measure":
            measured.update(op.qubits)
        elif op.name not in ("barrier", "wait") and measured.intersection(op.qubits):
            return True
    return False


def check(parsed: Circuit, config: DeviceConfig, shots: int) -> None:
    """Raise CqasmError (with `rule` and `line`) for the first rule `parsed` breaks."""
    name = config.name
    if parsed.num_qubits > config.qubits:
        raise CqasmError(
            f"the circuit declares {parsed.num_qubits} qubits; {name} has {config.qubits}",
            parsed.declaration_line,
            rule="qubits",
        )
    if parsed.num_bits > config.max_bits:
        raise CqasmError(
            f"the circuit declares {parsed.num_bits} bits; {name} returns at most "
            f"{config.max_bits} per shot",
            rule="bits",
        )
    if len(parsed.operations) > config.max_operations:
        raise CqasmError(
            f"the circuit has {len(parsed.operations)} operations; {name} runs at most "
            f"{config.max_operations}",
            rule="size",
        )
    pgs = set(config.pgs)
    edges = {frozenset(edge) for edge in config.topology}
    for op in parsed.operations:
        if op.name not in pgs:
            raise CqasmError(
                f"{op.name} is not in the primitive gate set of {name} ({', '.join(config.pgs)})",
                parsed.line_of(op),
                rule="pgs",
            )
        if op.name in NON_GATES or len(op.qubits) < 2:
            continue
        if len(op.qubits) > 2:
            raise CqasmError(
                f"{op.name} acts on {len(op.qubits)} qubits; {name} runs gates on at most two",
                parsed.line_of(op),
                rule="topology",
            )
        if frozenset(op.qubits) not in edges:
            a, b = op.qubits
            coupled = ", ".join(f"{x}-{y}" for x, y in config.topology)
            raise CqasmError(
                f"{op.name} on qubits {a} and {b}, which are not coupled on {name} "
                f"(coupled pairs: {coupled})",
                parsed.line_of(op),
                rule="topology",
            )
    if is_dynamic(parsed) and shots * 2**parsed.num_qubits > config.max_dynamic_work:
        raise CqasmError(
            f"a circuit with mid-circuit measurements or conditional gates is simulated shot by "
            f"shot: {shots} shots on {parsed.num_qubits} qubits is more than {name} runs "
            f"(shots x 2^qubits <= {config.max_dynamic_work})",
            rule="size",
        )
