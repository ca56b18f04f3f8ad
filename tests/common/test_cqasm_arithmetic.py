"""Constant expressions: what libqasm would evaluate natively and crash on (an integer division
or remainder by zero is SIGFPE, an overflow or a wide shift undefined) is refused by rule
`arithmetic` first, in every place an expression can stand; an angle that is not a finite
number (`0.0/0.0`, `1.0/0.0`, an overflowing expression) is refused by rule `parameters`, in
both versions, and never reaches a simulator.

The cQASM 3 circuits run in a child process (`parse_in_child`): without the checks libqasm
kills it, and the test fails naming the signal instead of pytest dying.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit.quantum_info import Operator

from qrt_common.cqasm import parse, to_circuit
from qrt_common.errors import CqasmError
from tests.support.cqasm_child import parse_in_child

V3 = "version 3.0\nqubit[5] q\nbit[5] b\n"
V1 = "version 1.0\nqubits 5\n"
INT_MIN = "(-9223372036854775807-1)"

NATIVE_FAULTS = [
    # (statement on line 4, fragment of the error)
    ("X q[1/0]", "integer division by zero: 1 / 0"),
    ("X q[1%0]", "integer remainder by zero: 1 % 0"),
    (f"X q[{INT_MIN}/-1]", "-9223372036854775808 / -1 does not fit in 64 bits"),
    (f"X q[{INT_MIN}%-1]", "does not fit in 64 bits"),
    ("X q[true/false]", "division by zero"),  # bools promote to integers
    ("X q[1/(3-3)]", "division by zero"),
    ("X q[2/(1/2)]", "division by zero"),  # 1/2 is the integer 0
    ("Rx(true ? 1/0 : 2) q[0]", "division by zero"),  # both branches are evaluated
    ("Rx(false ? 1.0 : 1%0) q[0]", "remainder by zero"),
    ("X q[1/((0.1 + 0.2 == 0.3) ? 1 : 0)]", "division by zero"),  # 0.1 + 0.2 != 0.3
    ("wait(1/0) q[0]", "division by zero"),
    ("pow(2/0).X q[0]", "division by zero"),
    ("CRk(1%0) q[0], q[1]", "remainder by zero"),
    ("b[1/0] = measure q[0]", "division by zero"),
    ("b[0] = measure q[0:1/0]", "division by zero"),
    ("Rx(sin(1/0)) q[0]", "division by zero"),
    ("X q[abs(1/0)]", "division by zero"),
    ("X q[-(1/0)]", "division by zero"),
    ("X q[0]; X q[1/0]", "division by zero"),
    ("X q[1/0] // a comment: 1/1", "division by zero"),
    ("X q[(9223372036854775807 + 1) / 1]", "integer overflow"),
    (f"X q[-{INT_MIN} / 1]", "integer overflow"),
    (f"X q[abs({INT_MIN}) / 1]", "integer overflow"),
    ("X q[4611686018427387904 * 2 % 3]", "integer overflow"),
    ("X q[1 << 64]", "shift by 64 bits"),
    ("X q[1 >> -1]", "shift by -1 bits"),
    ("X q[1 << 63 / 1]", "integer overflow"),
]


def test_what_would_crash_libqasm_is_refused_by_rule():
    sources = [V3 + statement + "\n" for statement, _ in NATIVE_FAULTS]
    # After a line libqasm already refuses, it goes on analysing (and would crash).
    sources.append(V3 + "Y r\nX q[1/0]\n")
    results = parse_in_child(sources)
    for (statement, fragment), result in zip(NATIVE_FAULTS, results, strict=False):
        assert result.get("rule") == "arithmetic", (statement, result)
        assert result["line"] == 4, (statement, result)
        assert fragment in result["error"], (statement, result)
    assert results[-1].get("rule") == "arithmetic" and results[-1]["line"] == 5, results[-1]


def test_text_libqasm_cannot_quote_is_refused_too():
    # libqasm's syntax tree (JSON) of a line with a non-ASCII or control character is not valid
    # JSON: such a line is refused as it stands, and a comment may hold anything.
    sources = [
        V3 + "X q[1/0]\nH \u00e9 q[0]\n",
        V3 + "X q[1/\u00e90]\n",
        V3 + "X q[1/0] // \u00e9\n",
        V3 + "X q[1/0] \x00\n",
        V3 + "X q[1/0]\nH q[0] \x01\n",
    ]
    results = parse_in_child(sources)
    expected = [("syntax", 5), ("syntax", 4), ("arithmetic", 4), ("syntax", 4), ("arithmetic", 4)]
    for source, result, (rule, line) in zip(sources, results, expected, strict=True):
        assert (result.get("rule"), result.get("line")) == (rule, line), (source, result)


@pytest.mark.parametrize(
    ("statement", "qubits"),
    [
        ("X q[7/2]", (3,)),  # integer division truncates
        ("X q[-7/2 + 4]", (1,)),
        ("X q[-7 % 3 + 2]", (1,)),  # the remainder takes the dividend's sign, as in C++
        ("X q[true + true]", (2,)),
        ("X q[1/((0.5 + 0.25 == 0.75) ? 1 : 0)]", (1,)),
        ("X q[8/2:9/2]", (4,)),
        ("X q[1 << 2]", (4,)),
        ("X q[(1 << 62) / 4611686018427387904]", (1,)),
        ("CNOT q[4/4], q[0:1/1][0]", None),  # libqasm's own error, not a crash
    ],
)
def test_integer_arithmetic_is_libqasms(statement, qubits):
    source = V3 + statement + "\n"
    if qubits is None:
        with pytest.raises(CqasmError):
            parse(source)
        return
    assert parse(source).operations[0].qubits == qubits


NON_FINITE_V3 = [
    "Rx(0.0/0.0) q[0]",
    "Rx(1.0/0.0) q[0]",
    "Ry(-1/0.0) q[0]",
    "Rz(1.0e308 * 10.0) q[0]",
    "Rx(2.0 ** 10000.0) q[0]",
    "Rx(exp(1000.0)) q[0]",
    "Rx(sqrt(-1.0)) q[0]",
    "Rx(log(0.0)) q[0]",
    "U(1.0, 2.0, 0.0/0.0) q[0]",
    "CR(1.0/0.0) q[0], q[1]",
    "Rn(1.0, 0.0, 0.0, 1.0/0.0, 0.0) q[0]",
    "pow(0.0/0.0).X q[0]",
    "ctrl.pow(1.0/0.0).X q[0], q[1]",
    "ctrl.Rx(1.0e308 * 10.0) q[0], q[1]",
    "b[0] = measure(0.0/0.0, 0.0, 1.0) q[0]",
]
NON_FINITE_V1 = [
    "rx q[0], 0.0/0.0",
    "ry q[0], 1/0",  # cQASM 1.0's `/` divides reals
    "rz q[0], -1.0/0",
    "rx q[0], 1.0e308 * 10",
    "rx q[0], 2.0 ** 10000",
    "cr q[0], q[1], exp(1000)",
    "c-rx b[0], q[1], sqrt(-1.0)",
    ".r(2)\nrz q[0], log(0.0)",
]


def test_non_finite_angles_are_refused_in_both_versions():
    sources = [V3 + s + "\n" for s in NON_FINITE_V3] + [V1 + s + "\n" for s in NON_FINITE_V1]
    # convert=True: had any got past the parser, converting it would be the next step.
    results = parse_in_child(sources, convert=True)
    for source, result in zip(sources, results, strict=True):
        assert result.get("rule") == "parameters", (source, result)
        assert "must be a finite number" in result["error"], (source, result)
        assert result["line"] in (3, 4), (source, result)


def test_a_double_literal_out_of_range_is_refused():
    for source in (V1 + "rx q[0], 1.0e999\n", V3 + "Rx(1.0e999) q[0]\n"):
        with pytest.raises(CqasmError) as caught:
            parse(source)
        assert "out of the" in str(caught.value) and "range" in str(caught.value)


@pytest.mark.parametrize(
    "statement",
    ["CRk(-2000) q[0], q[1]", "CRk(0) q[0], q[1]", "CRk(9223372036854775807) q[0], q[1]"],
)
def test_crk_of_any_integer_is_a_finite_phase(statement):
    # 2π/2^k: a whole number of turns for k <= 0 (identity), vanishing for large k.
    circuit = to_circuit(parse("version 3.0\nqubit[2] q\n" + statement + "\n"))
    assert np.allclose(Operator(circuit).data, np.eye(4), atol=1e-12)


def test_rn_with_huge_axis_components_is_unitary():
    circuit = to_circuit(parse("version 3.0\nqubit q\nRn(1.0e200, 1.0e200, 0.0, 1.0, 0.5) q\n"))
    matrix = Operator(circuit).data
    assert np.allclose(matrix @ matrix.conj().T, np.eye(2), atol=1e-12)
    for axis in ("0.0, 0.0, 0.0", "1.0e308 * 10.0, 0.0, 0.0"):
        with pytest.raises(CqasmError) as caught:
            parse(f"version 3.0\nqubit q\nRn({axis}, 1.0, 0.5) q\n")
        assert caught.value.rule == "parameters"


def test_finite_expressions_keep_their_values():
    v3 = parse(V3 + "Rx(2.0 ** 0.5 * sqrt(2.0) - tau / pi) q[0]\nCR(-eu) q[0], q[1]\n")
    assert v3.operations[0].params[0] == pytest.approx(0.0, abs=1e-12)
    assert v3.operations[1].params == (-math.e,)
    v1 = parse(V1 + "rx q[0], 2 ** 0.5 * sqrt(2) - 2 * pi / pi\ncrk q[0], q[1], 7 // 2 + 5 % 3\n")
    assert v1.operations[0].params[0] == pytest.approx(0.0, abs=1e-12)
    assert v1.operations[1].params == (5.0,)
    for source, fragment in [
        (V1 + "crk q[0], q[1], 1 // 0\n", "division by zero"),
        (V1 + "crk q[0], q[1], 1 % 0\n", "remainder by zero"),
        (V1 + "crk q[0], q[1], 9223372036854775807 + 1\n", "integer overflow"),
        (V1 + "crk q[0], q[1], 99999999999999999999\n", "does not fit in 64 bits"),
    ]:
        with pytest.raises(CqasmError) as caught:
            parse(source)
        assert caught.value.rule == "arithmetic" and fragment in str(caught.value)
        assert caught.value.line == 3


BIG = "999999999999999999"  # 18 digits: ten of them sum past 2**63
OVERFLOWS = [
    # (statement on line 4, the error: the expression that overflows, as evaluated)
    ("X q[9223372036854775807 + 1]", "integer overflow: 9223372036854775807 + 1 does not fit"),
    ("X q[-9223372036854775807 - 2]", "integer overflow: -9223372036854775807 - 2 does not"),
    ("X q[3037000500 * 3037000500]", "integer overflow: 3037000500 * 3037000500 does not"),
    ("X q[0, " + "*".join(["2"] * 64) + "]", "integer overflow: 4611686018427387904 * 2 does"),
    (f"X q[-{INT_MIN}]", "integer overflow: -(-9223372036854775808) does not fit"),
    ("X q[~9223372036854775807 - 1 - 1]", "integer overflow: -9223372036854775808 - 1 does"),
    ("Rx(9223372036854775807 + 1) q[0]", "9223372036854775807 + 1 does not fit"),
    ("CRk(9223372036854775807 + true) q[0], q[1]", "9223372036854775807 + 1 does not fit"),
    # A line too long to be read off the text: its parameter is evaluated all the same.
    ("Rx(" + " + ".join([BIG] * 12) + ") q[0]", "does not fit in 64 bits"),
    ("X q[9223372036854775808]", "the integer literal 9223372036854775808 does not fit"),
    ("X q[-9223372036854775808]", "the integer literal 9223372036854775808 does not fit"),
    ("Rx(99999999999999999999999) q[0]", "the integer literal 9999999999999999999"),
]


@pytest.mark.parametrize("version", [3, 1])
@pytest.mark.parametrize(("statement", "fragment"), OVERFLOWS)
def test_integer_overflow_is_refused_by_rule_arithmetic_naming_it(version, statement, fragment):
    # libqasm wraps an overflowing integer (`q[9223372036854775807 + 1]` is q[-2**63], an
    # angle of -2**63 is run) or refuses a long literal as a syntax error; cQASM 1.0's
    # evaluation is qrt's own: both versions refuse them alike.
    if version == 1:
        statement = statement.replace("X q", "x q").replace("Rx(", "rx q[0], (")
        statement = statement.replace(") q[0]", ")").replace("CRk(", "crk q[0], q[1], (")
        statement = statement.replace(") q[0], q[1]", ")").replace("~", "-1 - ")
        if "true" in statement:
            return  # cQASM 1.0 has no booleans in arithmetic
    with pytest.raises(CqasmError) as caught:
        parse((V3 if version == 3 else V1) + statement + "\n")
    assert (caught.value.rule, caught.value.line) == ("arithmetic", 3 + (version == 3)), (
        statement,
        caught.value,
    )
    assert fragment in str(caught.value), (statement, caught.value)


@pytest.mark.parametrize(
    ("statement", "qubits", "params"),
    [
        ("X q[9223372036854775807 - 9223372036854775806]", (1,), ()),
        ("X q[" + " + ".join(["1"] * 4) + " - 1000000000000000000 + 999999999999999999]", (3,), ()),
        ("CRk(9223372036854775807) q[0], q[1]", (0, 1), (9223372036854775807.0,)),
        (
            "Rx(1.5707963267948966 + 0.7853981633974483) q[0]",
            (0,),
            (1.5707963267948966 + 0.7853981633974483,),
        ),
        (
            "Rx(" + " + ".join(["99999999999999999"] * 12) + ") q[0]",
            (0,),
            (12 * 99999999999999999.0,),
        ),
    ],
)
def test_integers_near_64_bits_keep_their_values(statement, qubits, params):
    operation = parse(V3 + statement + "\n").operations[0]
    assert operation.qubits == qubits
    assert operation.params == pytest.approx(params)
