"""A parsed cQASM program as a Qiskit circuit with the same semantics (qubit order included:
Qiskit's |q_n...q_0>, so counts read `b[n-1]...b[0]` as cQASM's little-endian bitstrings)."""

from __future__ import annotations

import cmath
import contextlib
import math
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from qiskit.circuit import (
    CircuitInstruction,
    ClassicalRegister,
    Gate,
    QuantumCircuit,
    QuantumRegister,
)
from qiskit.circuit.library import (
    CCXGate,
    CPhaseGate,
    CXGate,
    CZGate,
    HGate,
    IGate,
    RXGate,
    RYGate,
    RZGate,
    SdgGate,
    SGate,
    SwapGate,
    SXdgGate,
    SXGate,
    TdgGate,
    TGate,
    UGate,
    UnitaryGate,
    XGate,
    YGate,
    ZGate,
)
from qiskit.quantum_info import Operator

from .program import CqasmError, Operation, Program

_FIXED: dict[str, Gate] = {
    "I": IGate(), "H": HGate(), "X": XGate(), "Y": YGate(), "Z": ZGate(),
    "X90": SXGate(), "mX90": SXdgGate(), "Y90": RYGate(math.pi / 2), "mY90": RYGate(-math.pi / 2),
    "Z90": SGate(), "mZ90": SdgGate(), "S": SGate(), "Sdag": SdgGate(), "T": TGate(),
    "Tdag": TdgGate(), "CNOT": CXGate(), "CZ": CZGate(), "SWAP": SwapGate(), "Toffoli": CCXGate(),
}  # fmt: skip
"""Gates without parameters; Y90 and mY90 equal Ry(±π/2) up to a global phase."""


def _rn(nx: float, ny: float, nz: float, theta: float, phi: float) -> Gate:
    norm = math.sqrt(nx * nx + ny * ny + nz * nz)
    if norm == 0:
        raise CqasmError("Rn needs a non-zero axis")
    nx, ny, nz = nx / norm, ny / norm, nz / norm
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    matrix = cmath.exp(1j * phi) * np.array(
        [[c - 1j * s * nz, -1j * s * nx - s * ny], [-1j * s * nx + s * ny, c + 1j * s * nz]]
    )
    return UnitaryGate(matrix, check_input=False)


_PARAMETRIC: dict[str, Callable[..., Gate]] = {
    "Rx": RXGate,
    "Ry": RYGate,
    "Rz": RZGate,
    "U": UGate,
    "Rn": _rn,
    "CR": CPhaseGate,
    "CRk": lambda k: CPhaseGate(2 * math.pi / 2**k),
}

_PHASES = {"Y90": cmath.exp(1j * math.pi / 4), "mY90": cmath.exp(-1j * math.pi / 4)}
"""What Ry(±π/2) lacks to be cQASM's Y90/mY90 exactly (it matters under `ctrl`)."""

_P0 = np.diag([1.0, 0.0]).astype(complex)
_P1 = np.diag([0.0, 1.0]).astype(complex)


def gate_of(name: str, params: tuple[float, ...] = ()) -> Gate:
    """The Qiskit gate for the QuIS gate `name` (up to a global phase)."""
    fixed = _FIXED.get(name)
    if fixed is not None:
        return fixed
    factory = _PARAMETRIC.get(name)
    if factory is None:
        raise CqasmError(f"unknown gate {name}")
    return factory(*params)


@cache
def _fixed_matrix(name: str) -> np.ndarray[Any, Any]:
    return np.asarray(_FIXED[name].to_matrix() * _PHASES.get(name, 1), dtype=complex)


def exact_matrix(name: str, params: tuple[float, ...] = ()) -> np.ndarray[Any, Any]:
    """The unitary cQASM defines for gate `name`, global phase included."""
    if name in _FIXED:
        return _fixed_matrix(name)
    return np.asarray(gate_of(name, params).to_matrix(), dtype=complex)


def _modified(operation: Operation) -> Gate:
    matrix = exact_matrix(operation.name, operation.params)
    for modifier in reversed(operation.modifiers):
        if modifier.name == "inv":
            matrix = matrix.conj().T
        elif modifier.name == "pow":
            matrix = Operator(matrix).power(modifier.exponent).data
        else:  # ctrl: the control is the gate's first qubit, Qiskit's least significant
            matrix = np.kron(np.eye(len(matrix)), _P0) + np.kron(matrix, _P1)
    # Aer runs a UnitaryGate as is, but not a ControlledGate it was not transpiled for.
    return UnitaryGate(matrix, check_input=False)


class _Builder:
    def __init__(self, program: Program) -> None:
        self.circuit = QuantumCircuit(
            QuantumRegister(program.num_qubits, "q"),
            *([ClassicalRegister(program.num_bits, "b")] if program.num_bits else []),
        )
        self.qubits = self.circuit.qubits
        self.clbits = self.circuit.clbits
        self.touched: set[int] = set()

    def append(self, gate: Any, qubits: tuple[int, ...], bits: tuple[int, ...] = ()) -> None:
        qargs = tuple(self.qubits[q] for q in qubits)
        cargs = tuple(self.clbits[b] for b in bits)
        self.circuit._append(CircuitInstruction(gate, qargs, cargs))

    def measure(self, operation: Operation) -> None:
        circuit = self.circuit
        for q, b in zip(operation.qubits, operation.bits, strict=True):
            qubit = self.qubits[q]
            if operation.axis == "x":
                circuit.h(qubit)
            elif operation.axis == "y":
                circuit.sdg(qubit)
                circuit.h(qubit)
            circuit.measure(qubit, self.clbits[b])
            if operation.axis == "x":
                circuit.h(qubit)
            elif operation.axis == "y":
                circuit.h(qubit)
                circuit.s(qubit)
        self.touched.update(operation.qubits)

    def initialize(self, operation: Operation) -> None:
        for q in operation.qubits:
            # A reset on a qubit nothing touched yet changes nothing, and would make Aer
            # simulate every shot on its own instead of sampling them all from one state.
            if q in self.touched:
                self.circuit.reset(self.qubits[q])
            if operation.axis in ("x", "y"):
                self.circuit.h(self.qubits[q])
            if operation.axis == "y":
                self.circuit.s(self.qubits[q])
        self.touched.update(operation.qubits)

    def gate(self, operation: Operation) -> None:
        if operation.modifiers:
            gate = _modified(operation)
        else:
            gate = _FIXED.get(operation.name) or gate_of(operation.name, operation.params)
        self.touched.update(operation.qubits)
        if not operation.condition:
            self.append(gate, operation.qubits)
            return
        with contextlib.ExitStack() as stack:
            for bit in operation.condition:
                stack.enter_context(self.circuit.if_test((self.clbits[bit], 1)))
            self.circuit.append(gate, [self.qubits[q] for q in operation.qubits])


def to_circuit(program: Program) -> QuantumCircuit:
    """`program` as a QuantumCircuit on registers `q` and `b` (flattened in declaration order)."""
    builder = _Builder(program)
    for operation in program.operations:
        name = operation.name
        if name == "measure":
            builder.measure(operation)
        elif name in ("init", "reset"):
            builder.initialize(operation)
        elif name == "barrier":
            builder.circuit.barrier(*(builder.qubits[q] for q in operation.qubits))
        elif name == "wait":
            continue
        else:
            try:
                builder.gate(operation)
            except CqasmError as exc:
                exc.line = exc.line or program.line_of(operation)
                raise
    return builder.circuit
