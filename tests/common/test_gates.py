"""QuTech's gate table: each gate's Qiskit equal and phase, and the sets derived from it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit.circuit import Parameter
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.quantum_info import Operator

from qrt_common.cqasm.convert import exact_matrix
from qrt_common.cqasm.gates import (
    CQASM1_GATES,
    GATES,
    NON_GATES,
    PGS_GATES,
    QISKIT_EQUALS,
    QuisGate,
)

SAMPLE_PARAMS = (0.3, -1.1, 2.5, 0.7, 0.4)
"""Parameter values to try a gate with (a gate takes as many as it has)."""
CRK_PARAMS = (3,)


def params_of(gate: QuisGate) -> tuple[float, ...]:
    return CRK_PARAMS if gate.name == "CRk" else SAMPLE_PARAMS[: gate.params]


@pytest.mark.parametrize("gate", GATES.values(), ids=lambda g: g.name)
def test_each_gates_qiskit_gate_times_its_phase_is_its_exact_matrix(gate):
    params = params_of(gate)
    qiskit = np.asarray(Operator(gate.qiskit_gate(params)).data)
    exact = exact_matrix(gate.name, params)
    assert exact.shape == (2**gate.qubits, 2**gate.qubits)
    assert np.allclose(qiskit * gate.phase, exact, atol=1e-12)
    assert np.allclose(exact @ exact.conj().T, np.eye(len(exact)), atol=1e-12)


def test_a_phase_is_a_unit_and_only_gates_with_one_are_not_qiskits_equal():
    for gate in GATES.values():
        assert math.isclose(abs(gate.phase), 1)
        if gate.phase != 1:
            assert gate.qiskit_name is None, gate.name


@pytest.mark.parametrize("name", sorted(QISKIT_EQUALS))
def test_each_qiskit_equal_is_that_qiskit_instruction_phase_included(name):
    gate = QISKIT_EQUALS[name]
    assert gate.qiskit_name == name
    standard = get_standard_gate_name_mapping()[name]
    assert (standard.num_qubits, len(standard.params)) == (gate.qubits, gate.params)
    values = SAMPLE_PARAMS[: gate.params]
    instruction = standard.base_class(*values) if values else standard
    assert instruction.name == name
    assert np.allclose(Operator(instruction).data, exact_matrix(gate.name, values), atol=1e-12)


def test_qiskit_equals_holds_every_gate_that_names_one():
    named = {g.qiskit_name: g.name for g in GATES.values() if g.qiskit_name}
    assert {k: v.name for k, v in QISKIT_EQUALS.items()} == named
    assert not {"Y90", "mY90", "Z90", "mZ90", "Rn", "CRk", "Toffoli"} & set(named.values())


def test_cqasm1_gates_are_cqasm_1_0s_names():
    assert set(CQASM1_GATES) == {
        "i", "h", "x", "y", "z", "x90", "mx90", "y90", "my90", "s", "sdag", "t", "tdag",
        "rx", "ry", "rz", "cnot", "cz", "swap", "cr", "crk", "toffoli",
    }  # fmt: skip
    for name, gate in CQASM1_GATES.items():
        assert gate.name.lower() == name


def test_a_device_may_list_every_gate_but_z90_and_mz90():
    assert set(GATES) - PGS_GATES == {"Z90", "mZ90"}
    assert not PGS_GATES & NON_GATES


@pytest.mark.parametrize("gate", QISKIT_EQUALS.values(), ids=lambda g: g.name)
def test_a_target_gate_has_symbolic_parameters(gate):
    target = gate.target_gate()
    assert target.name == gate.qiskit_name
    assert len(target.params) == gate.params
    assert all(isinstance(p, Parameter) for p in target.params)
    assert len({p.name for p in target.params}) == gate.params
    assert target.num_qubits == gate.qubits


def test_a_fixed_gate_is_one_shared_instance_and_takes_no_parameters():
    for gate in GATES.values():
        if gate.params == 0:
            assert gate.fixed is not None and gate.qiskit_gate() is gate.qiskit_gate()
        else:
            assert gate.fixed is None and gate.factory is not None


def test_a_gate_without_a_qiskit_equal_has_no_target_gate():
    with pytest.raises(ValueError, match="Rn has no Qiskit equal"):
        GATES["Rn"].target_gate()
