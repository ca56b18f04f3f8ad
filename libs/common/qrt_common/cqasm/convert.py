"""A parsed cQASM circuit as a Qiskit circuit with the same semantics (qubit order included:
Qiskit's |q_n...q_0>, so counts read `b[n-1]...b[0]` as cQASM's little-endian bitstrings)."""

from __future__ import annotations

import cmath
import contextlib
import math
from functools import cache
from typing import Any

import numpy as np
import scipy.linalg  # type: ignore[import-untyped]  # (a dependency of qiskit)
from qiskit.circuit import (
    CircuitInstruction,
    ClassicalRegister,
    Gate,
    QuantumCircuit,
    QuantumRegister,
)
from qiskit.circuit.library import UnitaryGate

from ..errors import CqasmError
from .circuit import Circuit, Operation
from .gates import GATES

_P0 = np.diag([1.0, 0.0]).astype(complex)
_P1 = np.diag([0.0, 1.0]).astype(complex)
_BRANCH_CUT_ROTATION = math.pi * 1e-12
"""Qiskit's `Operator.power` turns the branch cut of fractional powers this far off -1, so an
eigenvalue of -1 (give or take rounding) always takes the same root: pow(0.5).X is X90."""


def gate_of(name: str, params: tuple[float, ...] = ()) -> Gate:
    """The Qiskit gate for the QuIS gate `name` (up to a global phase)."""
    gate = GATES.get(name)
    if gate is None:
        raise CqasmError(f"unknown gate {name}")
    return gate.qiskit_gate(params)


@cache
def _fixed_matrix(name: str) -> np.ndarray[Any, Any]:
    gate = GATES[name]
    return np.asarray(gate.qiskit_gate().to_matrix() * gate.phase, dtype=complex)


def exact_matrix(name: str, params: tuple[float, ...] = ()) -> np.ndarray[Any, Any]:
    """The unitary cQASM defines for gate `name`, global phase included."""
    gate = GATES.get(name)
    if gate is not None and gate.fixed is not None:
        return _fixed_matrix(name)
    return np.asarray(gate_of(name, params).to_matrix(), dtype=complex)


def unitary_power(matrix: np.ndarray[Any, Any], exponent: float) -> np.ndarray[Any, Any]:
    """`matrix` (unitary) to the power `exponent`: the principal power of each eigenvalue, as
    Qiskit's `Operator.power(exponent, assume_unitary=True)` takes it (a Schur form: ~100 times
    faster than a general fractional matrix power)."""
    if exponent.is_integer() and abs(exponent) <= 64:
        return np.linalg.matrix_power(matrix, int(exponent))
    turned = cmath.rect(1, -_BRANCH_CUT_ROTATION) * matrix
    triangular, basis = scipy.linalg.schur(turned, output="complex")
    powers = [pow(complex(value), exponent) for value in triangular.diagonal()]
    powered: np.ndarray[Any, Any] = basis @ np.diag(powers) @ basis.conj().T
    return cmath.rect(1, _BRANCH_CUT_ROTATION * exponent) * powered


def _modified(operation: Operation) -> Gate:
    matrix = exact_matrix(operation.name, operation.params)
    for modifier in reversed(operation.modifiers):
        if modifier.name == "inv":
            matrix = matrix.conj().T
        elif modifier.name == "pow":
            matrix = unitary_power(matrix, modifier.exponent)
        else:  # ctrl: the control is the gate's first qubit, Qiskit's least significant
            matrix = np.kron(np.eye(len(matrix)), _P0) + np.kron(matrix, _P1)
    # Aer runs a UnitaryGate as is, but not a ControlledGate it was not transpiled for.
    return UnitaryGate(matrix, check_input=False)


class _Builder:
    def __init__(self, parsed: Circuit) -> None:
        self.circuit = QuantumCircuit(
            QuantumRegister(parsed.num_qubits, "q"),
            *([ClassicalRegister(parsed.num_bits, "b")] if parsed.num_bits else []),
        )
        self.qubits = self.circuit.qubits
        self.clbits = self.circuit.clbits
        self.touched: set[int] = set()
        # One statement's operations share their gate: a modified matrix is computed once.
        self.modified: dict[tuple[str, tuple[float, ...], tuple[Any, ...]], Gate] = {}

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
            key = (operation.name, operation.params, operation.modifiers)
            gate = self.modified.get(key)
            if gate is None:
                gate = self.modified[key] = _modified(operation)
        else:
            gate = gate_of(operation.name, operation.params)
        self.touched.update(operation.qubits)
        if not operation.condition:
            self.append(gate, operation.qubits)
            return
        with contextlib.ExitStack() as stack:
            for bit in operation.condition:
                stack.enter_context(self.circuit.if_test((self.clbits[bit], 1)))
            self.circuit.append(gate, [self.qubits[q] for q in operation.qubits])


def to_circuit(parsed: Circuit) -> QuantumCircuit:
    """`parsed` as a Qiskit QuantumCircuit on registers `q` and `b` (flattened in declaration
    order)."""
    builder = _Builder(parsed)
    for operation in parsed.operations:
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
                exc.line = exc.line or parsed.line_of(operation)
                raise
    return builder.circuit
