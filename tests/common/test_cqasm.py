"""cQASM 1.0 and 3.0: parsing, exact semantics on Qiskit, errors with lines, the cQASM 3 writer."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.quantum_info import Operator, Statevector
from qiskit_aer import AerSimulator

from qrt_common.cqasm import dumps, parse, to_circuit
from qrt_common.errors import CqasmError

S2 = 1 / math.sqrt(2)
W8 = cmath.exp(1j * math.pi / 4)
# The gates' matrices as cQASM (OpenSquirrel) defines them, global phase included; written
# out here rather than taken from the code under test.
MATRICES = {
    "I": [[1, 0], [0, 1]],
    "H": [[S2, S2], [S2, -S2]],
    "X": [[0, 1], [1, 0]],
    "Y": [[0, -1j], [1j, 0]],
    "Z": [[1, 0], [0, -1]],
    "S": [[1, 0], [0, 1j]],
    "Sdag": [[1, 0], [0, -1j]],
    "T": [[1, 0], [0, W8]],
    "Tdag": [[1, 0], [0, W8.conjugate()]],
    "X90": [[(1 + 1j) / 2, (1 - 1j) / 2], [(1 - 1j) / 2, (1 + 1j) / 2]],
    "mX90": [[(1 - 1j) / 2, (1 + 1j) / 2], [(1 + 1j) / 2, (1 - 1j) / 2]],
    "Y90": [[W8 * S2, -W8 * S2], [W8 * S2, W8 * S2]],
    "mY90": [
        [W8.conjugate() * S2, W8.conjugate() * S2],
        [-W8.conjugate() * S2, W8.conjugate() * S2],
    ],
}
V1_NAMES = {"Sdag": "sdag", "mX90": "mx90", "mY90": "my90", "Tdag": "tdag"}


def state(source: str) -> Statevector:
    circuit = to_circuit(parse(source)).remove_final_measurements(inplace=False)
    return Statevector(circuit)


def counts(source: str, shots: int = 200) -> dict[str, int]:
    circuit = to_circuit(parse(source))
    result = AerSimulator().run(circuit, shots=shots, seed_simulator=7).result()
    return dict(result.get_counts())


def assert_state(actual: Statevector, expected: list[complex], *, up_to_phase: bool) -> None:
    want = Statevector(np.asarray(expected, dtype=complex))
    if up_to_phase:
        assert actual.equiv(want), (actual, want)
    else:
        assert np.allclose(actual.data, want.data, atol=1e-9), (actual.data, want.data)


BELL_V1 = "version 1.0\nqubits 2\nh q[0]\ncnot q[0], q[1]\nmeasure q[0:1]\n"
BELL_V3 = "version 3.0\nqubit[2] q\nbit[2] b\nH q[0]\nCNOT q[0], q[1]\nb = measure q\n"
GHZ_V1 = "version 1.0\nqubits 5\nH q[0]\nCNOT q[0], q[1]\nCNOT q[0:1], q[2:3]\nCNOT q[3], q[4]\nmeasure_all\n"
GHZ_V3 = "version 3.0\nqubit[5] q\nbit[5] b\nH q[0]\nCNOT q[0:3], q[1:4]\nb = measure q\n"


@pytest.mark.parametrize("source", [BELL_V1, BELL_V3])
def test_bell(source):
    assert_state(state(source), [S2, 0, 0, S2], up_to_phase=False)
    assert set(counts(source)) == {"00", "11"}


@pytest.mark.parametrize("source", [GHZ_V1, GHZ_V3])
def test_ghz(source):
    expected = np.zeros(32)
    expected[0] = expected[31] = S2
    assert_state(state(source), list(expected), up_to_phase=False)
    assert set(counts(source)) == {"00000", "11111"}


@pytest.mark.parametrize("gate", sorted(MATRICES))
def test_each_single_qubit_gate_alone_and_under_ctrl(gate):
    matrix = np.asarray(MATRICES[gate], dtype=complex)
    plus = np.array([S2, S2])
    alone = matrix @ plus
    v1 = f"version 1.0\nqubits 1\nh q[0]\n{V1_NAMES.get(gate, gate.lower())} q[0]\n"
    v3 = f"version 3.0\nqubit q\nH q\n{gate} q\n"
    assert_state(state(v1), list(alone), up_to_phase=True)
    assert_state(state(v3), list(alone), up_to_phase=True)
    # Under ctrl the gate's global phase becomes a relative one: it must be exact.
    controlled = f"version 3.0\nqubit[2] q\nH q[0]\nH q[1]\nctrl.{gate} q[0], q[1]\n"
    # |q1 q0>: q0 is the control; amplitudes of |00>,|01>,|10>,|11>.
    target_if_1 = matrix @ plus
    expected = [S2 * plus[0], S2 * target_if_1[0], S2 * plus[1], S2 * target_if_1[1]]
    assert_state(state(controlled), expected, up_to_phase=False)


@pytest.mark.parametrize(
    ("v1", "v3", "theta"),
    [
        ("rx q[0], 0.3", "Rx(0.3) q[0]", 0.3),
        ("ry q[0], -1.2", "Ry(-1.2) q[0]", -1.2),
        ("rz q[0], pi/3", "Rz(1.0471975511965976) q[0]", math.pi / 3),
    ],
)
def test_rotations(v1, v3, theta):
    axis = v3[1]
    c, s = math.cos(theta / 2), math.sin(theta / 2)
    matrix = {
        "x": [[c, -1j * s], [-1j * s, c]],
        "y": [[c, -s], [s, c]],
        "z": [[cmath.exp(-1j * theta / 2), 0], [0, cmath.exp(1j * theta / 2)]],
    }[axis]
    expected = np.asarray(matrix) @ np.array([S2, S2])
    assert_state(state(f"version 1.0\nqubits 1\nh q[0]\n{v1}\n"), list(expected), up_to_phase=False)
    assert_state(
        state(f"version 3.0\nqubit[1] q\nH q[0]\n{v3}\n"), list(expected), up_to_phase=False
    )


def test_rn_and_u():
    # Rn about x by π with phase π/2 is exactly X.
    rn = state("version 3.0\nqubit q\nRn(1.0, 0.0, 0.0, 3.141592653589793, 1.5707963267948966) q\n")
    assert_state(rn, [0, 1], up_to_phase=False)
    u = state("version 3.0\nqubit q\nU(1.5707963267948966, 0.0, 3.141592653589793) q\n")
    assert_state(u, [S2, S2], up_to_phase=True)


@pytest.mark.parametrize(
    ("v1", "v3", "expected"),
    [
        # input |q1 q0> = |01> (q0 = 1)
        ("cnot q[0], q[1]", "CNOT q[0], q[1]", [0, 0, 0, 1]),
        ("swap q[0], q[1]", "SWAP q[0], q[1]", [0, 0, 1, 0]),
        ("cz q[0], q[1]", "CZ q[0], q[1]", [0, 1, 0, 0]),
    ],
)
def test_two_qubit_gates_on_a_basis_state(v1, v3, expected):
    assert_state(state(f"version 1.0\nqubits 2\nx q[0]\n{v1}\n"), expected, up_to_phase=False)
    assert_state(state(f"version 3.0\nqubit[2] q\nX q[0]\n{v3}\n"), expected, up_to_phase=False)


def test_controlled_phases():
    # |11> picks up the phase; prepared by X on both, so every amplitude but |11> is zero.
    for v1, v3, phase in [
        ("cr q[0], q[1], 0.7", "CR(0.7) q[0], q[1]", 0.7),
        ("crk q[0], q[1], 3", "CRk(3) q[0], q[1]", 2 * math.pi / 8),
    ]:
        expected = [0.5, 0.5, 0.5, 0.5 * cmath.exp(1j * phase)]
        assert_state(state(f"version 1.0\nqubits 2\nh q[0:1]\n{v1}\n"), expected, up_to_phase=False)
        assert_state(state(f"version 3.0\nqubit[2] q\nH q\n{v3}\n"), expected, up_to_phase=False)


def test_toffoli():
    source = "version 1.0\nqubits 3\nx q[0:1]\ntoffoli q[0], q[1], q[2]\n"
    expected = np.zeros(8)
    expected[7] = 1
    assert_state(state(source), list(expected), up_to_phase=False)


@pytest.mark.parametrize(
    ("modified", "plain"),
    [
        ("inv.X90 q[0]", "mX90 q[0]"),
        ("pow(2).X90 q[0]", "X q[0]"),
        ("pow(0.5).X q[0]", "X90 q[0]"),
        ("inv.Rx(0.4) q[0]", "Rx(-0.4) q[0]"),
        ("pow(2).Y90 q[0]", "Y q[0]"),
        ("inv.inv.T q[0]", "T q[0]"),
        ("ctrl.X q[0], q[1]", "CNOT q[0], q[1]"),
        ("ctrl.Z q[1], q[0]", "CZ q[0], q[1]"),
        ("ctrl.pow(0.5).Z q[0], q[1]", "CR(1.5707963267948966) q[0], q[1]"),
    ],
)
def test_modifiers(modified, plain):
    prefix = "version 3.0\nqubit[2] q\nH q[0]\nRy(0.3) q[1]\n"
    assert_state(
        state(prefix + modified + "\n"), list(state(prefix + plain + "\n").data), up_to_phase=False
    )


def test_subcircuits_repeat_their_body():
    odd = "version 1.0\nqubits 1\n.flip(3)\nx q[0]\n.tail\nmeasure q[0]\n"
    even = "version 1.0\nqubits 1\n.flip(2)\nx q[0]\n.tail\nmeasure q[0]\n"
    assert counts(odd) == {"1": 200}
    assert counts(even) == {"0": 200}


def test_conditional_gates_run_only_if_all_bits_are_one():
    fires = "version 1.0\nqubits 3\nx q[0:1]\nmeasure q[0:1]\nc-x b[0:1], q[2]\nmeasure q[2]\n"
    blocked = "version 1.0\nqubits 3\nx q[0]\nmeasure q[0:1]\nc-x b[0,1], q[2]\nmeasure q[2]\n"
    assert counts(fires) == {"111": 200}
    assert counts(blocked) == {"001": 200}


def test_measurement_and_preparation_bases():
    source = (
        "version 1.0\nqubits 3\nh q[0]\nh q[1]\ns q[1]\nprep_x q[2]\n"
        "measure_x q[0]\nmeasure_y q[1]\nmeasure_x q[2]\n"
    )
    assert counts(source) == {"000": 200}


def test_bundles_maps_comments_and_separators_in_any_case():
    source = (
        "# a comment\nVERSION 1.0\nQUBITS 2  # two\n\nmap q[1], anc; { H Q[0] | X anc }\n"
        "CNOT q[0], anc\nMeasure_All\n"
    )
    assert set(counts(source)) == {"10", "01"}


def test_v3_body_under_a_v1_header():
    source = BELL_V3.replace("version 3.0", "version 1.0")
    assert parse(source).version == "3.0"
    assert set(counts(source)) == {"00", "11"}


def test_v3_registers_are_flattened_in_declaration_order():
    source = (
        "version 3.0\nqubit[2] q\nqubit r\nbit[2] b\nbit c\nX r\nX q[1]\n"
        "b = measure q\nc = measure r\n"
    )
    program = parse(source)
    assert (program.num_qubits, program.num_bits) == (3, 3)
    assert counts(source) == {"110": 200}


def test_v3_reset_init_barrier_wait():
    source = (
        "version 3.0\nqubit[2] q\nbit[2] b\ninit q\nX q\nbarrier q\nwait(5) q[0]\n"
        "reset q[0]\nb = measure q\n"
    )
    assert counts(source) == {"10": 200}
    # init on untouched qubits leaves no reset behind (Aer then samples all shots at once).
    names = [i.operation.name for i in to_circuit(parse(source)).data]
    assert names.count("reset") == 1


@pytest.mark.parametrize(
    ("source", "line", "fragment"),
    [
        ("version 3.0\nqubit[2] q\nH q[0\n", 3, "missing ']'"),
        ("version 3.0\nqubit[2] q\n\nCNOT q[0]\n", 4, "CNOT"),
        ("version 3.0\nqubit[2] q\nH q[2]\n", 3, "out of range"),
        ("version 3.0\nqubit[2] q\nh q[0]\n", 3, "'h'"),
        ("version 3.0\nqubit[2] q\nX q[0]\nCNOT q[1], q[1]\n", 4, "one qubit twice"),
        ("version 3.0\nqubit[2] q\nX q[0]\ninit q[0]\n", 4, "init must come before"),
        ("version 1.0\nqubits 2\nh q[0]\nfoo q[1]\n", 4, "unknown instruction foo"),
        ("version 1.0\nqubits 2\nh q[2]\n", 3, "out of range"),
        ("version 1.0\nqubits 2\n\nh q[0] x q[1]\n", 4, "unexpected 'x'"),
        ("version 1.0\nqubits 2\nrx q[0]\n", 3, "rx takes (qubits, real), got (qubits)"),
        ("version 1.0\nqubits 2\nc-x q[0], q[1]\n", 3, "condition must be bits"),
        ("version 1.0\nqubits 2\nmeasure_parity q[0], z, q[1], z\n", 3, "not supported"),
        ("version 1.0\nh q[0]\n", 2, "qubits N"),
        ("version 2.0\nqubits 2\n", 1, "version 2.0 is not supported"),
        ("qubits 2\nh q[0]\n", 1, "no `version`"),
    ],
)
def test_errors_name_the_line(source, line, fragment):
    with pytest.raises(CqasmError) as caught:
        to_circuit(parse(source))
    assert caught.value.line == line, str(caught.value)
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"line {line}: ")


def test_lines_of_operations_are_found_when_needed():
    program = parse(
        "version 3.0\n// c\nqubit[3] q\n\nH q[0]\n/* two\nlines */ CNOT q[0], q[1]\nX q\n"
    )
    assert [program.line_of(op) for op in program.operations] == [5, 7, 8, 8, 8]
    assert program.declaration_line == 3
    v1 = parse("version 1.0\n\nqubits 3\nh q[0]\n.r(2)\nx q[1]\n")
    assert [v1.line_of(op) for op in v1.operations] == [4, 6, 6]
    assert v1.declaration_line == 3


def test_cqasm3_writer_round_trips_a_transpiled_circuit():
    circuit = QuantumCircuit(3, 3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.ry(0.25, 2)
    circuit.cp(1e-5, 1, 2)
    circuit.swap(0, 2)
    circuit.sx(1)
    circuit.u(0.1, 0.2, 0.3, 0)
    basis = [
        "rx",
        "ry",
        "rz",
        "h",
        "sx",
        "sxdg",
        "cx",
        "cz",
        "swap",
        "cp",
        "u",
        "x",
        "y",
        "z",
        "s",
        "sdg",
        "t",
        "tdg",
        "id",
    ]
    transpiled = transpile(circuit, basis_gates=basis, optimization_level=0)
    text = dumps(transpiled)
    assert "1.0e-05" in text and "X90 q[1]" in text
    back = to_circuit(parse(text))
    assert Operator(back).equiv(Operator(transpiled))
    measured = transpiled.copy()
    measured.measure([0, 1, 2], [2, 1, 0])
    assert "b[2] = measure q[0]" in dumps(measured)


def test_cqasm3_writer_refuses_what_cqasm3_cannot_say():
    circuit = QuantumCircuit(3)
    circuit.ccx(0, 1, 2)
    with pytest.raises(CqasmError, match="'ccx' has no cQASM 3 form"):
        dumps(circuit)


def test_cqasm3_writer_puts_a_barrier_on_an_index_list():
    circuit = QuantumCircuit(3)
    circuit.h(2)
    circuit.measure_all()  # a barrier across every qubit, then the measurements
    text = dumps(circuit)
    assert "barrier q[0, 1, 2]\n" in text
    back = to_circuit(parse(text))
    assert [op.operation.name for op in back.data].count("barrier") == 1
    assert [len(op.qubits) for op in back.data if op.operation.name == "barrier"] == [3]
