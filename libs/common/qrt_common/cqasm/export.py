"""Qiskit circuits (transpiled to a device's gates) written as cQASM 3.0."""

from __future__ import annotations

from qiskit.circuit import QuantumCircuit

from ..errors import CqasmError
from .gates import QISKIT_EQUALS


def _number(value: float) -> str:
    # libqasm reads a float literal only with a dot in it (1.0e-3, not 1e-3).
    text = repr(float(value))
    if "." in text or "n" in text:
        return text
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}.0" + (f"e{exponent}" if exponent else "")


def dumps(circuit: QuantumCircuit) -> str:
    """`circuit` as a cQASM 3.0 program on `qubit[n] q` and `bit[m] b` (bits in Qiskit's
    clbit order, so the device's bitstrings read like Qiskit's counts)."""
    qubit_index = {qubit: i for i, qubit in enumerate(circuit.qubits)}
    bit_index = {bit: i for i, bit in enumerate(circuit.clbits)}
    lines = ["version 3.0", "", f"qubit[{circuit.num_qubits}] q"]
    if circuit.num_clbits:
        lines.append(f"bit[{circuit.num_clbits}] b")
    lines.append("")
    for instruction in circuit.data:
        operation = instruction.operation
        name = operation.name
        qubits = [f"q[{qubit_index[q]}]" for q in instruction.qubits]
        if name == "measure":
            lines.append(f"b[{bit_index[instruction.clbits[0]]}] = measure {qubits[0]}")
        elif name == "reset":
            lines.append(f"reset {qubits[0]}")
        elif name == "barrier":
            # One operand in cQASM 3: an index list (`q[0, 1, 2]`), not a list of operands.
            indices = ", ".join(str(qubit_index[q]) for q in instruction.qubits)
            lines.append(f"barrier q[{indices}]")
        elif name == "delay":
            continue
        elif name in QISKIT_EQUALS:
            params = operation.params
            if any(not isinstance(p, int | float) for p in params):
                raise CqasmError(f"{name} has unbound parameters; assign them before running")
            args = f"({', '.join(_number(p) for p in params)})" if params else ""
            lines.append(f"{QISKIT_EQUALS[name].name}{args} {', '.join(qubits)}")
        else:
            raise CqasmError(
                f"the instruction {name!r} has no cQASM 3 form; transpile for the device first",
                rule="unsupported",
            )
    return "\n".join(lines) + "\n"
