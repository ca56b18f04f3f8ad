"""How much work a circuit may ask for, each bound checked before the work it bounds.

A 42-byte circuit can ask for 10^9 operations (`.a(1000000000)` in cQASM 1.0), a register of
10^9 qubits, or an expression nested so deeply that a recursive parser runs out of stack. The
parsers count what a circuit expands to arithmetically (repetitions times operations, range
lengths, register sizes) and refuse it, naming the rule and the line, before expanding it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CqasmError


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds a parse and a run keep to (a device passes its own configuration's)."""

    max_qubits: int = 64
    """Qubits a circuit may declare (rule `qubits`)."""
    max_bits: int = 128
    """Bits a cQASM 3 circuit may declare (rule `bits`; cQASM 1.0 has one per qubit)."""
    max_operations: int = 100_000
    """Operations after expansion (rule `size`): subcircuit repetitions times their body, a
    gate on `q[0:3]` four times, a measurement, init, reset, barrier or wait once per qubit."""
    max_nesting: int = 100
    """Operators, parentheses, brackets and gate modifiers in one statement (rule `nesting`):
    what bounds the depth of any expression, so no recursive parser runs out of stack."""
    max_shots: int = 1_000_000
    """Shots a run may ask for (rule `max_shots`)."""


DEFAULT_LIMITS = Limits()


def check_register(kind: str, count: int, limit: int, line: int) -> None:
    """Raise CqasmError (rule `qubits` or `bits`) if `count` `kind` are more than `limit`."""
    if count > limit:
        raise CqasmError(
            f"the circuit declares {count} {kind}; at most {limit} can be run", line, rule=kind
        )


class Budget:
    """Operations planned so far, checked against `max_operations` before they are built."""

    def __init__(self, limits: Limits) -> None:
        self.limit = limits.max_operations
        self.used = 0

    def spend(self, count: int, line: int, *, repeats: int = 1, subcircuit: str = "") -> None:
        """Plan `count` more operations (`repeats` times, for a repeated subcircuit); raises
        CqasmError (rule `size`) at `line` if the total would exceed the limit."""
        total = self.used + count * repeats
        if total > self.limit:
            expands = f"the circuit expands to {total} operations; at most {self.limit} are run"
            if repeats > 1:
                expands = (
                    f"subcircuit {subcircuit} repeats its operations {repeats} times: {expands}"
                )
            raise CqasmError(expands, line, rule="size")
        self.used = total
