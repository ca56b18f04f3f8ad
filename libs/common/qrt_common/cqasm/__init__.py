"""cQASM 1.0 and 3.0: parse either dialect, run it as a Qiskit circuit, write cQASM 3."""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any

from ..errors import CqasmError
from .circuit import Circuit, Modifier, Operation
from .limits import DEFAULT_LIMITS, Limits

if TYPE_CHECKING:
    from .convert import to_circuit
    from .export import dumps
    from .sampling import Sample, sample

# What needs Qiskit (and numpy, scipy) is imported on first use: a process that only reads
# circuits' shapes or the gate table (a device's front, the gateway) never loads them.
_LAZY = {"to_circuit": ".convert", "dumps": ".export", "Sample": ".sampling", "sample": ".sampling"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_LIMITS",
    "Circuit",
    "Limits",
    "Modifier",
    "Operation",
    "Sample",
    "dumps",
    "parse",
    "sample",
    "to_circuit",
]

_VERSION = re.compile(r"^[ \t]*version[ \t]+([0-9]+(?:\.[0-9]+)*)", re.I | re.M)
# Clients in the field send a cQASM 3 body (`qubit[2] q`, `b = measure q`) under a
# `version 1.0` header; cQASM 1.0 itself has neither statement.
_V3_BODY = re.compile(r"^[ \t]*(?:qubit|bit)\b|=[ \t]*measure\b", re.M)


def parse(text: str, limits: Limits = DEFAULT_LIMITS) -> Circuit:
    """Parse a cQASM circuit of either dialect, chosen by its `version` statement.

    Raises CqasmError (naming the rule broken and its line) for a circuit that cannot be read
    or would ask for more than `limits`; each limit is checked before the work it bounds.
    """
    # The parsers (lark, libqasm, numpy) load on the first circuit, not with the package.
    from .v1 import parse_v1
    from .v3 import parse_v3

    match = _VERSION.search(text)
    if match is None:
        raise CqasmError("the circuit has no `version` statement (1.0 or 3.0)", 1)
    major = match.group(1).split(".")[0]
    if major == "3":
        return parse_v3(text, limits)
    if major != "1":
        line = text.count("\n", 0, match.start()) + 1
        raise CqasmError(f"cQASM version {match.group(1)} is not supported (1.0 or 3.0)", line)
    if _V3_BODY.search(text):
        return parse_v3(text[: match.start(1)] + "3.0" + text[match.end(1) :], limits)
    return parse_v1(text, limits)
