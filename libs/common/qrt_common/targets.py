"""The Qiskit `Target` of each kind of backend qrt offers, from what it knows of it: a 2300
device's from its `get_static` reply, a simulator's from Aer."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from .backends import SIMULATORS
from .cqasm.gates import QISKIT_EQUALS
from .device_protocol import StaticInfo

if TYPE_CHECKING:
    from qiskit.transpiler import Target


def device_target(static: StaticInfo) -> Target:
    """The Target of a device, from its `get_static` payload: the gates of its `pgs` that have
    a Qiskit equal (phase included), on every qubit or every coupled pair (either way round).
    Imports Qiskit on first use (blocking: call it off an event loop)."""
    from qiskit.circuit import Measure, Reset
    from qiskit.transpiler import InstructionProperties, Target

    qubits = static.nqubits
    pgs = set(static.pgs)
    target = Target(description=static.name, num_qubits=qubits)
    everywhere = {(q,): None for q in range(qubits)}
    pairs: dict[tuple[int, ...], InstructionProperties | None] = {}
    for a, b in static.topology:
        pairs[(a, b)] = pairs[(b, a)] = None
    for gate in QISKIT_EQUALS.values():
        if gate.name not in pgs or gate.qubits > 2 or (gate.qubits == 2 and not pairs):
            continue
        target.add_instruction(gate.target_gate(), dict(everywhere if gate.qubits == 1 else pairs))
    if "measure" in pgs:
        target.add_instruction(Measure(), dict(everywhere))
    if "reset" in pgs:
        target.add_instruction(Reset(), dict(everywhere))
    return target


@functools.cache
def simulator_target(name: str) -> Any:
    """The Target of the Aer simulator `name` (one of SIMULATORS), built once per process (it
    imports Aer: about a second); raises KeyError for another name."""
    from qiskit_aer import AerSimulator

    return AerSimulator(**SIMULATORS[name]).target
