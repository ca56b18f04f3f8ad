"""QuTech's instruction set (QuIS): the one table of gates qrt knows.

The cQASM 1.0 parser, the converter to Qiskit, the cQASM 3 exporter, the device's rules and a
device's Qiskit `Target` are all derived from `GATES` (cQASM 3.0 itself is parsed by libqasm,
which checks gate signatures on its own). Non-gate instructions are `NON_GATES`.
"""

from __future__ import annotations

import cmath
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import CqasmError

if TYPE_CHECKING:
    from qiskit.circuit import Gate

NON_GATES = frozenset({"measure", "init", "reset", "barrier", "wait"})
"""Instructions that are not gates; a device's `pgs` lists them too."""


@functools.cache
def _qiskit_gate_class(name: str) -> Any:
    """The gate class `name` of `qiskit.circuit.library`: imported when a gate is first built,
    so a process that only reads this table (a device's front, the gateway) never loads Qiskit."""
    from qiskit.circuit import library

    return getattr(library, name)


def _shared(class_name: str, *args: float) -> Callable[[], Gate]:
    """Builds Qiskit's `class_name(*args)` once, on first call, and returns that instance."""
    return functools.cache(lambda: _qiskit_gate_class(class_name)(*args))


def _factory(class_name: str) -> Callable[..., Gate]:
    """Builds Qiskit's `class_name(*params)` on each call."""
    return lambda *params: _qiskit_gate_class(class_name)(*params)


def _rn(nx: float, ny: float, nz: float, theta: float, phi: float) -> Gate:
    # hypot scales instead of squaring, so a component of 1e200 does not overflow to inf.
    norm = math.hypot(nx, ny, nz)
    if norm == 0 or not math.isfinite(norm):
        raise CqasmError("Rn needs a finite, non-zero axis", rule="parameters")
    nx, ny, nz = nx / norm, ny / norm, nz / norm
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    import numpy as np

    matrix = cmath.exp(1j * phi) * np.array(
        [[c - 1j * s * nz, -1j * s * nx - s * ny], [-1j * s * nx + s * ny, c + 1j * s * nz]]
    )
    return _qiskit_gate_class("UnitaryGate")(matrix, check_input=False)


def crk_phase(k: float) -> float:
    """CRk's phase 2π/2^k for an integer k; 0 for k <= 0, where 2π·2^|k| is a whole number of
    turns (so no k, however large, overflows)."""
    if k <= 0:
        return 0.0
    return math.ldexp(2 * math.pi, -int(min(k, 2000)))


def _crk(k: float) -> Gate:
    return _qiskit_gate_class("CPhaseGate")(crk_phase(k))


@dataclass(frozen=True, slots=True)
class QuisGate:
    """One gate: its QuIS name, operands, and its Qiskit equal."""

    name: str
    """As cQASM 3 and a device's `pgs` write it: `CNOT`, `Rx`, `mY90`."""
    qubits: int
    params: int
    """Angles (or, for CRk, the integer k) written in parentheses."""
    fixed: Callable[[], Gate] | None = None
    """Builds the Qiskit gate, for a gate without parameters (one shared instance, built on
    first use: importing this table imports no Qiskit)."""
    factory: Callable[..., Gate] | None = None
    """The Qiskit gate for given parameters."""
    phase: complex = 1
    """The global phase the Qiskit gate lacks to be cQASM's exactly (it matters under `ctrl`)."""
    qiskit_name: str | None = None
    """The Qiskit instruction written as this gate, when the two are equal including the phase:
    what the exporter writes and what a device's Target offers."""
    in_cqasm1: bool = True
    """cQASM 1.0 has it (under its lower-case name)."""
    in_pgs: bool = True
    """A device may list it in its primitive gate set."""
    integer_params: bool = False
    """The parameters are integers (CRk's k), not angles: libqasm refuses `CRk(0.5)`."""

    def qiskit_gate(self, params: tuple[float, ...] = ()) -> Gate:
        """The Qiskit gate (equal up to `phase`) for these parameter values."""
        if self.fixed is not None:
            return self.fixed()
        assert self.factory is not None
        return self.factory(*params)

    def target_gate(self) -> Gate:
        """The Qiskit gate with symbolic parameters, as a Target lists it; raises ValueError for
        a gate without a Qiskit equal (`qiskit_name`)."""
        if self.qiskit_name is None:
            raise ValueError(f"{self.name} has no Qiskit equal to offer in a Target")
        from qiskit.circuit import Parameter

        symbols = [Parameter(name) for name in ("θ", "φ", "λ")[: self.params]]
        return self.qiskit_gate(tuple(symbols))


_Y90_PHASE = cmath.exp(1j * math.pi / 4)

GATES: dict[str, QuisGate] = {
    gate.name: gate
    for gate in (
        QuisGate("I", 1, 0, _shared("IGate"), qiskit_name="id"),
        QuisGate("H", 1, 0, _shared("HGate"), qiskit_name="h"),
        QuisGate("X", 1, 0, _shared("XGate"), qiskit_name="x"),
        QuisGate("Y", 1, 0, _shared("YGate"), qiskit_name="y"),
        QuisGate("Z", 1, 0, _shared("ZGate"), qiskit_name="z"),
        QuisGate("X90", 1, 0, _shared("SXGate"), qiskit_name="sx"),
        QuisGate("mX90", 1, 0, _shared("SXdgGate"), qiskit_name="sxdg"),
        # Ry(±π/2) is Y90/mY90 only up to a global phase: not offered to Qiskit as either.
        QuisGate("Y90", 1, 0, _shared("RYGate", math.pi / 2), phase=_Y90_PHASE),
        QuisGate("mY90", 1, 0, _shared("RYGate", -math.pi / 2), phase=_Y90_PHASE.conjugate()),
        QuisGate("Z90", 1, 0, _shared("SGate"), in_cqasm1=False, in_pgs=False),
        QuisGate("mZ90", 1, 0, _shared("SdgGate"), in_cqasm1=False, in_pgs=False),
        QuisGate("S", 1, 0, _shared("SGate"), qiskit_name="s"),
        QuisGate("Sdag", 1, 0, _shared("SdgGate"), qiskit_name="sdg"),
        QuisGate("T", 1, 0, _shared("TGate"), qiskit_name="t"),
        QuisGate("Tdag", 1, 0, _shared("TdgGate"), qiskit_name="tdg"),
        QuisGate("Rx", 1, 1, factory=_factory("RXGate"), qiskit_name="rx"),
        QuisGate("Ry", 1, 1, factory=_factory("RYGate"), qiskit_name="ry"),
        QuisGate("Rz", 1, 1, factory=_factory("RZGate"), qiskit_name="rz"),
        QuisGate("U", 1, 3, factory=_factory("UGate"), qiskit_name="u", in_cqasm1=False),
        QuisGate("Rn", 1, 5, factory=_rn, in_cqasm1=False),
        QuisGate("CNOT", 2, 0, _shared("CXGate"), qiskit_name="cx"),
        QuisGate("CZ", 2, 0, _shared("CZGate"), qiskit_name="cz"),
        QuisGate("SWAP", 2, 0, _shared("SwapGate"), qiskit_name="swap"),
        QuisGate("CR", 2, 1, factory=_factory("CPhaseGate"), qiskit_name="cp"),
        QuisGate("CRk", 2, 1, factory=_crk, integer_params=True),
        # cQASM 1.0 only: libqasm's cQASM 3 has no three-qubit gate.
        QuisGate("Toffoli", 3, 0, _shared("CCXGate")),
    )
}
"""Every QuIS gate by name."""

CQASM1_GATES: dict[str, QuisGate] = {g.name.lower(): g for g in GATES.values() if g.in_cqasm1}
"""cQASM 1.0's gates by their (case-insensitive, so lower-case) names."""

PGS_GATES = frozenset(name for name, gate in GATES.items() if gate.in_pgs)
"""Gate names a device's primitive gate set may list."""

QISKIT_EQUALS: dict[str, QuisGate] = {g.qiskit_name: g for g in GATES.values() if g.qiskit_name}
"""Qiskit instruction name to the QuIS gate equal to it, phase included."""
