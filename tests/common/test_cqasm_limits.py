"""Every size rule of a cQASM circuit is checked before the work it bounds: each circuit here
asks for minutes of work or gigabytes (10^9 operations, a 10^12-qubit range, an expression
nested 10^4 deep) and is refused by rule, naming the line, before any of it is done.

The circuits run in a child process with a memory limit (`parse_in_child`): without the
checks, they exhaust it, crash or hang there instead of in pytest.
"""

from __future__ import annotations

import numpy as np
import pytest
from qiskit.circuit.library import HGate, RYGate, TGate, XGate
from qiskit.quantum_info import Operator
from qiskit_aer import AerSimulator

from qrt_common.cqasm import Limits, parse, sample, to_circuit
from qrt_common.cqasm.convert import unitary_power
from qrt_common.errors import CqasmError
from tests.support.cqasm_child import parse_in_child

V1 = "version 1.0\nqubits 5\n"
V3 = "version 3.0\nqubit[5] q\n"
BIG = "version 3.0\nqubit[64] q\n"

EXPANSIONS = [
    # (circuit, rule, line, fragment)
    (
        "version 1.0\nqubits 5\n.a(1000000000)\nx q[0]",
        "size",
        3,
        "subcircuit .a repeats its operations 1000000000 times: the circuit expands to "
        "1000000000 operations; at most 100000 are run",
    ),
    # One repetition of a subcircuit is cheap; its count times its body is not.
    (V1 + ".a(25000)\nh q\n", "size", 3, "expands to 125000 operations"),
    (V1 + ".a(20001)\nmeasure_all\n", "size", 3, "expands to 100005 operations"),
    (V1 + ".a(10000)\nh q\n.b(10001)\nh q\n", "size", 5, "expands to 100005 operations"),
    (V1 + "h q\n" * 20001, "size", 20003, "expands to 100005 operations"),
    ("version 1.0\nqubits 1000000000\nmeasure_all\n", "qubits", 2, "declares 1000000000 qubits"),
    ("version 1.0\nqubits 99999999999999999999999\n", "arithmetic", 2, "does not fit in 64"),
    (V1 + "h q[0:99999999999]\n", "syntax", 3, "index 99999999999 out of range (size 5)"),
    (V1 + "h q[0:4" + ", 0:4" * 100000 + "]\n", "operands", 3, "used more than once"),
    (V1 + "rx q[0], " + "(" * 10000 + "1" + ")" * 10000 + "\n", "nesting", 3, "10001"),
    (V1 + "rx q[0], " + "-" * 100000 + "1\n", "nesting", 3, "at most 100 are read"),
    ("version 3.0\nqubit[1000000000] q\nH q\n", "qubits", 2, "declares 1000000000 qubits"),
    ("version 3.0\nqubit[40] q\nqubit[40] r\n", "qubits", 3, "declares 80 qubits"),
    ("version 3.0\nqubit q\nbit[1000000000] b\n", "bits", 3, "declares 1000000000 bits"),
    (V3 + "H q[0:999999999999]\n", "syntax", 3, "index 999999999999 out of range (size 5)"),
    (V3 + "H q[0:2+999999999999]\n", "syntax", 3, "index 1000000000001 out of range"),
    (V3 + "H q[4:2]\n", "syntax", 3, "last index is lower than first index"),
    (BIG + "H q[0:63]\n" * 1600, "size", 1565, "expands to 100032 operations"),
    (BIG + "H q\n" * 1600, "size", 1565, "expands to 100032 operations"),
    (BIG + "bit[64] b\n" + "b[0:63] = measure q[0:63]\n" * 1600, "size", 1566, "100032"),
    (V3 + "X q[" + ",".join(["0"] * 100001) + "]\n", "size", 3, "expands to 100001"),
    (V3 + "Rx(" + "(" * 10000 + "1.0" + ")" * 10000 + ") q[0]\n", "nesting", 3, "10002"),
    (V3 + "Rx(" + "+".join(["1.0"] * 10000) + ") q[0]\n", "nesting", 3, "10001"),
    (V3 + "Rx(" + "-" * 100000 + "1.0) q[0]\n", "nesting", 3, "at most 100 are read"),
    (V3 + "inv." * 100000 + "X q[0]\n", "nesting", 3, "100001"),
    (V3 + "X q[" + "(" * 100000 + "0" + ")" * 100000 + "]\n", "nesting", 3, "100001"),
]


def test_work_is_bounded_before_it_is_done():
    results = parse_in_child([circuit for circuit, *_ in EXPANSIONS])
    for (circuit, rule, line, fragment), result in zip(EXPANSIONS, results, strict=True):
        shown = circuit[:60]
        assert result.get("rule") == rule, (shown, result)
        assert result["line"] == line, (shown, result)
        assert fragment in result["error"], (shown, result)
        assert result["error"].startswith(f"line {line}: "), (shown, result)


@pytest.mark.parametrize(
    ("circuit", "operations"),
    [
        (V1 + ".a(20000)\nh q\n", 100_000),
        (V1 + ".a(3)\nx q[0]\n.b\nmeasure_all\n", 4),
        (V1 + "c-x b[0,0,0,1], q[2]\n", 1),  # a repeated condition bit is one condition
        (BIG + "H q[0:63]\n" * 1562, 99_968),
        (V3 + "Rx(" + "(" * 98 + "1.0" + ")" * 98 + ") q[0]\n", 1),
        (V3 + "inv." * 99 + "X q[0]\n", 1),
    ],
)
def test_circuits_up_to_the_limits_still_parse(circuit, operations):
    assert len(parse(circuit).operations) == operations


def test_limits_are_the_callers():
    small = Limits(max_qubits=3, max_bits=2, max_operations=10, max_nesting=4)
    for circuit, rule in [
        ("version 3.0\nqubit[4] q\n", "qubits"),
        ("version 3.0\nqubit q\nbit[3] b\n", "bits"),
        ("version 1.0\nqubits 3\n.r(4)\nh q\n", "size"),
        ("version 3.0\nqubit[3] q\nRx(((((1.0))))) q[0]\n", "nesting"),
    ]:
        with pytest.raises(CqasmError) as caught:
            parse(circuit, small)
        assert caught.value.rule == rule, caught.value
    assert len(parse("version 1.0\nqubits 3\n.r(3)\nh q\n", small).operations) == 9


@pytest.mark.parametrize("shots", [0, -1, True, 1.5, "10", 1_000_001, 10**12])
def test_shots_are_checked_before_anything_runs(shots):
    # A circuit that measures nothing would otherwise build a list of `shots` bitstrings.
    for circuit in ("version 3.0\nqubit q\nH q\n", "version 3.0\nqubit q\nbit b\nb = measure q\n"):
        with pytest.raises(CqasmError) as caught:
            sample(AerSimulator(), parse(circuit), shots, raw_data=True)
        assert caught.value.rule == "max_shots"
        assert "shots must be an integer from 1 to 1000000" in str(caught.value)
    ran = sample(
        AerSimulator(), parse("version 3.0\nqubit q\nH q\n"), 3, limits=Limits(max_shots=3)
    )
    assert ran.counts == {"0": 3}


def test_a_modified_gate_is_computed_once_per_statement():
    # 64 operations under 99 modifiers each: one matrix for all of them, not 64 x 99 powers.
    circuit = to_circuit(parse("version 3.0\nqubit[64] q\n" + "pow(0.3)." * 33 + "X q\n"))
    gates = {id(instruction.operation) for instruction in circuit.data}
    assert len(circuit.data) == 64 and len(gates) == 1


@pytest.mark.parametrize("exponent", [0.5, -0.5, 0.3, 2.0, -3.0, 1000.5, 7.25])
@pytest.mark.parametrize("gate", [XGate(), HGate(), TGate(), RYGate(2.0)], ids=lambda g: g.name)
def test_unitary_power_is_qiskits(gate, exponent):
    matrix = np.asarray(gate.to_matrix(), dtype=complex)
    expected = Operator(matrix).power(exponent).data
    assert np.allclose(unitary_power(matrix, exponent), expected, atol=1e-9)


def test_a_long_identifier_is_read_once_not_once_per_letter():
    # The pre-check's operand pattern tried a match at every letter of an identifier that no
    # `[` follows, each reading to its end: 20,000 letters took 12 s, 200,000 (a small circuit)
    # would have held a device past its execute limit. A match now starts only where an
    # identifier does, so this line is read in linear time.
    from qrt_common.cqasm.v3check import _INDEXED

    assert _INDEXED.search("ab[0]", 1) is None and _INDEXED.search("ab[0]")
    with pytest.raises(CqasmError, match="line 3"):
        parse("version 3.0\nqubit[5] q\n" + "a" * 200_000)
