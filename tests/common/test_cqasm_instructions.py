"""Every instruction of libqasm's instruction sets, used rightly and wrongly, in both versions.

The tables are transcribed from libqasm itself (not taken from the code under test): cQASM 1.0
from libqasm 0.6's default instruction set (`register_instruction(name, operand types,
allow_conditional, allow_parallel)` in `qasm_new_to_old.hpp`), cQASM 3.0 from libqasm 1.x's
`instruction_set.cpp` (named gates with parameter and operand types, non-gate instructions,
modifiers). From each entry the cases are generated: a valid use, each parameter of the wrong
type, one argument too many and too few, an operand too many and too few, a qubit out of
range, and (cQASM 1.0) a condition and a bundle where libqasm forbids them. Each invalid use
must be refused naming the rule and the line, never with another exception.
"""

from __future__ import annotations

import pytest

from qrt_common.cqasm import parse, to_circuit
from qrt_common.errors import CqasmError

# cQASM 1.0: name -> (overloads, conditional, parallel). Types: Q qubits, B bits, i integer,
# r real (an integer promotes to it), u complex matrix, a axis, s string.
LIBQASM_V1 = {
    **{
        g: (["Q"], True, True)
        for g in ["x", "y", "z", "i", "h", "x90", "y90", "mx90", "my90", "s", "sdag", "t", "tdag"]
    },
    **{g: (["Qr"], True, True) for g in ("rx", "ry", "rz")},
    **{g: (["QQ"], True, True) for g in ("cnot", "cz", "swap")},
    "cr": (["QQr"], True, True),
    "crk": (["QQi"], True, True),
    "toffoli": (["QQQ"], True, True),
    **{g: (["Q"], False, True) for g in ["prep", "prep_x", "prep_y", "prep_z"]},
    **{g: (["Q"], False, True) for g in ["measure", "measure_x", "measure_y", "measure_z"]},
    "measure_all": ([""], False, False),
    "display": (["", "B"], False, False),
    "display_binary": (["", "B"], False, False),
    "skip": (["i"], False, False),
    "wait": (["Qi"], False, False),
    "barrier": (["Q"], False, False),
    "reset-averaging": (["", "Q"], False, False),
}
V1_UNSUPPORTED = {"u": "Qu", "not": "B", "measure_parity": "QaQa", "load_state": "s"}
"""libqasm has them; qrt refuses them as `unsupported` (matrices, classical bit logic, ...)."""

# cQASM 3.0 gates: name -> (parameter types, qubit operands). f float (an integer or a bool
# promotes to it), i integer (a bool promotes to it).
LIBQASM_V3_GATES = {
    **{
        g: ("", 1)
        for g in [
            "H",
            "I",
            "mX90",
            "mY90",
            "mZ90",
            "S",
            "Sdag",
            "T",
            "Tdag",
            "X",
            "X90",
            "Y",
            "Y90",
            "Z",
            "Z90",
        ]
    },
    **{g: ("f", 1) for g in ("Rx", "Ry", "Rz")},
    "Rn": ("fffff", 1),
    "U": ("fff", 1),
    **{g: ("", 2) for g in ("CNOT", "CZ", "SWAP")},
    "CR": ("f", 2),
    "CRk": ("i", 2),
}
V1_HEADER = "version 1.0\nqubits 5\n"
V3_HEADER = "version 3.0\nqubit[5] q\nbit[5] b\n"
VALUES = {"Q": ["q[0]", "q[1]", "q[2]"], "B": ["b[0]"], "i": ["3"], "r": ["0.25"]}
WRONG = {"Q": "0.5", "B": "q[3]", "i": "0.5", "r": "q[3]"}
"""An argument of another type (an integer would promote to a real: 0.5 does not)."""


def v1_args(overload: str) -> list[str]:
    qubits = iter(VALUES["Q"])
    return [next(qubits) if kind == "Q" else VALUES[kind][0] for kind in overload]


def v1_statement(name: str, args: list[str]) -> str:
    return f"{name} {', '.join(args)}".strip()


def v1_cases() -> list[tuple[str, str, str | None]]:
    """(id, statement on line 3, the rule that refuses it or None if valid)."""
    cases: list[tuple[str, str, str | None]] = []
    for name, (overloads, conditional, parallel) in LIBQASM_V1.items():
        arities = {len(o) for o in overloads}
        for overload in overloads:
            args = v1_args(overload)
            cases.append((f"{name}({overload})", v1_statement(name, args), None))
            for position, kind in enumerate(overload):
                wrong = [*args[:position], WRONG[kind], *args[position + 1 :]]
                cases.append(
                    (f"{name} {kind}{position} wrong type", v1_statement(name, wrong), "signature")
                )
                if kind == "r":  # an integer promotes to a real
                    promoted = [*args[:position], "2", *args[position + 1 :]]
                    cases.append((f"{name} int as real", v1_statement(name, promoted), None))
                if kind == "Q":
                    outside = [*args[:position], "q[5]", *args[position + 1 :]]
                    cases.append((f"{name} q[5]", v1_statement(name, outside), "syntax"))
            if len(overload) + 1 not in arities:
                more = [*args, "q[4]" if "Q" not in overload else "1"]
                cases.append((f"{name} one more", v1_statement(name, more), "signature"))
            if overload and len(overload) - 1 not in arities:
                cases.append((f"{name} one fewer", v1_statement(name, args[:-1]), "signature"))
        args = v1_args(overloads[-1])
        conditioned = f"c-{name} b[4]" + (", " + ", ".join(args) if args else "")
        cases.append((f"c-{name}", conditioned, None if conditional else "conditional"))
        bundled = "{ " + v1_statement(name, args) + " | i q[4] }"
        cases.append((f"{{{name} | i}}", bundled, None if parallel else "bundle"))
    for name in V1_UNSUPPORTED:
        cases.append((f"{name} unsupported", f"{name} q[0]", "unsupported"))
    return cases


def v3_gate(name: str, params: list[str], operands: list[str]) -> str:
    inside = f"({', '.join(params)})" if params else ""
    return f"{name}{inside} {', '.join(operands)}"


def v3_cases() -> list[tuple[str, str, str | None]]:
    cases: list[tuple[str, str, str | None]] = []
    for name, (types, qubits) in LIBQASM_V3_GATES.items():
        params = ["3" if kind == "i" else "0.25" for kind in types]
        operands = [f"q[{n}]" for n in range(qubits)]
        cases.append((name, v3_gate(name, params, operands), None))
        cases.append(
            (
                f"{name} on registers",
                v3_gate(name, params, [f"q[0:{4 - qubits}]", f"q[{qubits}:4]"][:qubits]),
                None,
            )
        )
        for position, kind in enumerate(types):
            wrong = "0.5" if kind == "i" else "q[3]"
            bad = [*params[:position], wrong, *params[position + 1 :]]
            cases.append(
                (f"{name} param {position} wrong type", v3_gate(name, bad, operands), "signature")
            )
            promoted = [*params[:position], "true", *params[position + 1 :]]
            cases.append((f"{name} bool promotes", v3_gate(name, promoted, operands), None))
        cases.append(
            (f"{name} one more param", v3_gate(name, [*params, "1.0"], operands), "signature")
        )
        if params:
            cases.append(
                (f"{name} one fewer param", v3_gate(name, params[:-1], operands), "signature")
            )
        cases.append(
            (f"{name} one more operand", v3_gate(name, params, [*operands, "q[4]"]), "signature")
        )
        # With no operand left the statement does not parse, unless `Rx(0.25)` reads as the
        # gate Rx and the operand (0.25): then Rx lacks its parameter.
        fewer = "signature" if qubits > 1 or len(types) == 1 else "syntax"
        cases.append((f"{name} one fewer operand", v3_gate(name, params, operands[:-1]), fewer))
        outside = ["q[5]", *operands[1:]]
        cases.append((f"{name} q[5]", v3_gate(name, params, outside), "syntax"))
        modified = ["inv", "pow(2)", "pow(0.5)"]
        for modifier in modified:
            rule = None if qubits == 1 else "signature"
            cases.append(
                (f"{modifier}.{name}", v3_gate(f"{modifier}.{name}", params, operands), rule)
            )
        controlled = v3_gate(f"ctrl.{name}", params, ["q[4]", *operands])
        cases.append((f"ctrl.{name}", controlled, None if qubits == 1 else "signature"))
    cases += [
        ("measure", "b = measure q", None),
        ("measure indexed", "b[0:1] = measure q[3:4]", None),
        ("measure(x axis)", "b[0] = measure(1.0, 0.0, 0.0) q[0]", None),
        ("measure one param", "b[0] = measure(1.0) q[0]", "signature"),
        ("measure two params", "b[0] = measure(1.0, 0.0) q[0]", "signature"),
        ("measure sizes", "b[0:1] = measure q[0]", "operands"),
        ("measure into qubits", "q[0] = measure q[1]", "signature"),
        ("measure q[5]", "b[0] = measure q[5]", "syntax"),
        ("reset", "reset q", None),
        ("reset param", "reset(1) q", "syntax"),
        ("reset bits", "reset b", "signature"),
        ("init", "init q[0:1]", None),
        ("barrier", "barrier q", None),
        ("barrier bits", "barrier b[0]", "signature"),
        ("wait", "wait(3) q[0]", None),
        ("wait float", "wait(1.5) q[0]", "signature"),
        ("wait no param", "wait q[0]", "syntax"),
        ("gate on bits", "X b[0]", "signature"),
        ("unknown gate", "Toffoli q[0], q[1], q[2]", "signature"),
        ("ctrl.ctrl", "ctrl.ctrl.X q[0], q[1], q[2]", "signature"),
        ("inv.ctrl", "inv.ctrl.X q[0], q[1]", "signature"),
    ]
    return cases


@pytest.mark.parametrize(
    ("statement", "rule"), [c[1:] for c in v1_cases()], ids=[c[0] for c in v1_cases()]
)
def test_cqasm1_instruction_set(statement, rule):
    check(V1_HEADER + "\n" + statement + "\n", rule, 4)


@pytest.mark.parametrize(
    ("statement", "rule"), [c[1:] for c in v3_cases()], ids=[c[0] for c in v3_cases()]
)
def test_cqasm3_instruction_set(statement, rule):
    check(V3_HEADER + statement + "\n", rule, 4)


def check(source: str, rule: str | None, line: int) -> None:
    if rule is None:
        to_circuit(parse(source))
        return
    with pytest.raises(CqasmError) as caught:
        parse(source)
    assert caught.value.rule == rule, caught.value
    assert caught.value.line == line, caught.value
    assert str(caught.value).startswith(f"line {line}: ")


@pytest.mark.parametrize(
    ("source", "rule", "line", "message"),
    [
        (
            "version 1.0\nqubits 3\ncrk q[0], q[2], 0.1234\n",
            "signature",
            3,
            "crk takes (qubits, qubits, integer), got (qubits, qubits, real 0.1234)",
        ),
        (
            "version 1.0\nqubits 3\n.flip(0)\nx q[0]\n",
            "iterations",
            3,
            "subcircuit iteration count must be positive, but is 0",
        ),
        (
            "version 1.0\nqubits 3\n.flip(-1)\nx q[0]\n",
            "iterations",
            3,
            "subcircuit iteration count must be positive, but is -1",
        ),
        ("version 1.0\nqubits 3\n.flip(1.5)\nx q[0]\n", "syntax", 3, "must be an integer"),
        ("version 1.0\nqubits 2.0\n", "syntax", 2, "must be an integer"),
        ("version 1.0\nqubits 0\n", "qubits", 2, "invalid number of qubits: 0"),
        ("version 1.0\nqubits 3\ncnot q[0:1], q[1:2]\n", "operands", 3, "index 1 is used more"),
        ("version 1.0\nqubits 3\ncnot q[0], q[1:2]\n", "operands", 3, "number of indices (2)"),
        ("version 1.0\nqubits 3\nh q[0,0]\n", "operands", 3, "qubit with index 0"),
        ("version 1.0\nqubits 3\nmeasure_all q[0]\n", "signature", 3, "measure_all takes ()"),
        ("version 1.0\nqubits 3\nc-measure b[0], q[1]\n", "conditional", 3, "not supported"),
        ("version 1.0\nqubits 3\n{ skip 1 | x q[0] }\n", "bundle", 3, "not parallelizable"),
        ("version 1.0\nqubits 3\nc-x 1, q[0]\n", "conditional", 3, "must be bits or a bool"),
        ("version 1.0\nqubits 3\nrx q[0], +1\n", "syntax", 3, "unexpected '+'"),
        ("version 1.0\nqubits 3\nmap q[0] , foo\nh foo[1]\n", "syntax", 4, "out of range"),
        ("version 1.0\nqubits 3\nerror_model depolarizing_channel, q[0]\n", "signature", 3, ""),
        ("version 1.0\nqubits 3\nerror_model nonsense, 0.1\n", "signature", 3, "unknown"),
    ],
)
def test_cqasm1_rules_are_libqasms(source, rule, line, message):
    with pytest.raises(CqasmError) as caught:
        to_circuit(parse(source))
    assert (caught.value.rule, caught.value.line) == (rule, line), caught.value
    assert message in str(caught.value)


def test_cqasm1_forms_libqasm_reads():
    program = parse(
        "version 1.0\nqubits 4\nmap anc = q[1:2]\nmap b[0], flag\n{ h q[0]\n x anc[1] }\n"
        "cond (flag) x anc[0]\nc-x true, q[3]\nc-z false, q[3]\nmeasure q\n"
        "error_model depolarizing_channel, 0.001\nwait q[0:1], 2\nbarrier q\nreset-averaging\n"
        "skip 2\ndisplay\ndisplay_binary b[0:1]\nprep q[0]\n"
    )
    names = [(op.name, op.qubits, op.condition) for op in program.operations]
    assert names == [
        ("H", (0,), ()),
        ("X", (2,), ()),
        ("X", (1,), (0,)),
        ("X", (3,), ()),  # `c-z false, ...` never runs: libqasm drops it
        ("measure", (0, 1, 2, 3), ()),
        ("wait", (0, 1), ()),
        ("barrier", (0, 1, 2, 3), ()),
        ("init", (0,), ()),
    ]
