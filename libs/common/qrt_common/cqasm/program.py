"""What a parsed cQASM circuit is, whichever dialect it was written in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


class CqasmError(ValueError):
    """A circuit that cannot be read or run; `line` is 1-based (0: not tied to a line)."""

    def __init__(self, message: str, line: int = 0, rule: str = "syntax") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.rule = rule

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


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
    """Index of the source statement it comes from (see `Program.line_of`)."""
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
class Program:
    """A circuit: flat qubit and bit registers and the operations on them, in order."""

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
