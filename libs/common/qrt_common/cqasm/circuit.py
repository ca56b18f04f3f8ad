"""What a parsed cQASM circuit is, whichever dialect it was written in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Modifier:
    """A cQASM 3 gate modifier: `inv`, `pow(exponent)` or `ctrl`."""

    name: str
    exponent: float = 1.0


@dataclass(frozen=True, slots=True)
class Operation:
    """One instruction applied to concrete qubits (a gate on a qubit list is several)."""

    name: str
    """QuIS name: `H`, `CNOT`, `Rx`, ... or `measure`, `init`, `reset`, `barrier`, `wait`."""
    qubits: tuple[int, ...]
    statement: int
    """Index of the source statement it comes from (see `Circuit.line_of`)."""
    params: tuple[float, ...] = ()
    bits: tuple[int, ...] = ()
    """For `measure`: the bit each of `qubits` is written to."""
    condition: tuple[int, ...] = ()
    """cQASM 1 `c-` gates: run only if all these bits are 1."""
    modifiers: tuple[Modifier, ...] = ()
    """Outermost first, as written: `ctrl.inv.X` is (ctrl, inv)."""
    axis: str = "z"
    """Basis of a `measure` or `init` (cQASM 1 `measure_x`, `prep_y`)."""


@dataclass(slots=True)
class Circuit:
    """A parsed cQASM circuit: flat qubit and bit registers and the operations on them, in
    order. (`to_circuit` makes a Qiskit `QuantumCircuit` of it.)"""

    version: str
    num_qubits: int
    num_bits: int
    operations: list[Operation]
    locate: Callable[[], tuple[list[int], int]] = field(repr=False, default=lambda: ([], 0))
    """Lines of the statements and of the qubit declaration (computed only when needed)."""
    _lines: tuple[list[int], int] | None = field(default=None, repr=False)

    def _located(self) -> tuple[list[int], int]:
        if self._lines is None:
            self._lines = self.locate()
        return self._lines

    def line_of(self, operation: Operation) -> int:
        """The source line `operation` was written on (0 if unknown)."""
        lines = self._located()[0]
        return lines[operation.statement] if operation.statement < len(lines) else 0

    @property
    def declaration_line(self) -> int:
        """The line declaring the qubits."""
        return self._located()[1]
