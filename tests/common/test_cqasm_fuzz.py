"""Random mutations of valid circuits (seeded, so every run tries the same ones): each must
parse (and convert to Qiskit) within the limits, or be refused with the module's own
CqasmError; never another exception, never a crash of the process, never more operations than
the limits allow. They run in a child process with a memory limit (`parse_in_child`).
"""

from __future__ import annotations

import random

import pytest

from qrt_common.cqasm import Limits
from tests.support.cqasm_child import parse_in_child

V1_PROGRAMS = [
    "version 1.0\nqubits 5\nh q[0]\ncnot q[0], q[1]\n.loop(3)\nrx q[2], pi/4\n"
    "{ x q[3] | y q[4] }\nmeasure q[0:1]\nc-x b[0,1], q[2]\nmeasure_all\n",
    "version 1.0\nqubits 4\nmap anc = q[3]\nprep_x q[0]\ncr q[0], anc, 0.5\n"
    "crk q[1], q[2], 3\ntoffoli q[0], q[1], q[2]\nwait q[0], 2\nbarrier q\n"
    "measure_y q[2]\ncond (b[2]) z q[1]\nskip 1\n",
]
V3_PROGRAMS = [
    "version 3.0\nqubit[5] q\nbit[5] b\nH q[0]\nCNOT q[0], q[1:4]\nRx(pi/2) q[2]\n"
    "CRk(2) q[0], q[3]\nctrl.pow(0.5).X q[1], q[2]\ninv.T q[4]\nb[0:4] = measure q\n",
    "version 3.0\nqubit[3] q\nqubit r\nbit[4] b\ninit q\nU(0.1, 0.2, 0.3) q[1]\n"
    "Rn(1.0, 0.0, 0.0, pi, 0.5) r\nwait(3) q[0]\nbarrier q\nreset q[2]\n"
    "b[0] = measure(1.0, 0.0, 0.0) q[0]\nb[1:3] = measure q[1:2, 0]\n",
]
TOKENS = [
    "/0",
    "%0",
    "/",
    "%",
    "<<64",
    ">>-1",
    "**",
    "(",
    ")",
    "[",
    "]",
    ":",
    ",",
    ";",
    "\n",
    "-",
    "+",
    "*",
    "0.0/0.0",
    "1.0e308*10.0",
    "99999999999999999999",
    "9223372036854775807",
    "1e999",
    ".a(1000000000)",
    "inv.",
    "pow(",
    "ctrl.",
    "q",
    "b",
    "q[0:99999]",
    "true",
    "false",
    "?",
    "pi",
    "sqrt(",
    "c-",
    "{",
    "}",
    "|",
    "//",
    "/*",
    "#",
    "'''",
    "\t",
    "\r",
    "é",
    "\x00",
    "measure",
    "reset",
    "init",
    "barrier",
    "wait(",
    "CRk(0.5)",
    "crk",
    "qubit[100000] x",
    "bit[100000] y",
    "qubits 100000",
]
NUMBERS = ["0", "-1", "1000000000", "99999999999999999999", "2.5", "1.0e308", "(1/0)"]
LIMITS = Limits(max_qubits=8, max_bits=16, max_operations=2000, max_nesting=60)


def mutate(source: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        position = rng.randrange(len(source) + 1)
        if choice == 0:
            source = source[:position] + rng.choice(TOKENS) + source[position:]
        elif choice == 1:
            end = min(len(source), position + rng.randint(1, 12))
            source = source[:position] + source[end:]
        elif choice == 2:
            digits = [i for i, c in enumerate(source) if c.isdigit()]
            if digits:
                at = rng.choice(digits)
                source = source[:at] + rng.choice(NUMBERS) + source[at + 1 :]
        elif choice == 3:
            lines = source.split("\n")
            line = rng.randrange(len(lines))
            lines[line:line] = [lines[line]] * rng.randint(1, 60)
            source = "\n".join(lines)
        elif choice == 4:
            lines = source.split("\n")
            a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[a], lines[b] = lines[b], lines[a]
            source = "\n".join(lines)
        else:
            source = (
                source[:position] + rng.choice(TOKENS) * rng.randint(2, 200) + source[position:]
            )
    return source


@pytest.mark.timeout(600)
@pytest.mark.parametrize("version", [1, 3])
def test_mutated_circuits_parse_or_are_refused_by_rule(version):
    rng = random.Random(18 + version)
    programs = V1_PROGRAMS if version == 1 else V3_PROGRAMS
    mutants = [mutate(rng.choice(programs), rng) for _ in range(400)]
    results = parse_in_child(mutants, LIMITS, convert=True, timeout=500)
    refused = 0
    for mutant, result in zip(mutants, results, strict=True):
        assert "crashed" not in result and "unexpected" not in result, (mutant[:300], result)
        if "rule" in result:
            refused += 1
            assert result["rule"] and result["error"], result
        else:
            assert result["operations"] <= LIMITS.max_operations, (mutant[:300], result)
    # The mutations are meant to break things: most, not all, are refused.
    assert 0 < refused < len(mutants)
