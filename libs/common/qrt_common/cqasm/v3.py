"""cQASM 3.0 through libqasm's analyzer (types, gate signatures and index bounds checked there).

libqasm runs in this process: `v3check.precheck` refuses first what would crash it or make it
expand more than `Limits` allow. libqasm accepts some circuits that cannot run as written; they
are refused here: a non-finite parameter (`Rx(0.0/0.0)`, `pow(1.0/0.0).X`; rule `parameters`),
`Rn` about a zero axis, `measure` along an axis other than x, y or z, a gate on one qubit twice
(rule `operands`), `init` after another instruction on its qubits (rule `init`).

libqasm's own Python tree (`cqasm.v3x.Analyzer.analyze_string`) rebuilds the whole semantic
tree from its CBOR serialization in pure Python, which costs 60 ms and more for a few hundred
gates. The same CBOR decoded by cbor2's C decoder into plain dicts and walked here costs a
fraction of that; the keys read below (`@t` type, `@d` list items, `@i` node id, `@l` link,
`x` primitive) are that serialization's format.
"""

from __future__ import annotations

import math
import re
from typing import Any

import cbor2
import libqasm

from ..errors import CqasmError
from .circuit import Circuit, Modifier, Operation
from .limits import DEFAULT_LIMITS, Budget, Limits, check_register
from .scan import strip_comments
from .v3check import precheck, statements

_LOCATION = re.compile(r"^Error at [^:]*:(\d+):\d+(?:\.\.\d+)?: (.*)$", re.S)
_QUBIT_TYPES = {"Qubit", "QubitArray"}
_BIT_TYPES = {"Bit", "BitArray"}
_MODIFIERS = {"inv", "pow", "ctrl"}
_CIRCUIT = "circuit"
# libqasm's messages for a call that matches no overload, and for a bad operand.
_SIGNATURE = re.compile(
    r"failed to resolve|couldn't find|expects|does not have an overload|modifier"
)
_OPERANDS = re.compile(r"different sizes")
_AXES = {(1.0, 0.0, 0.0): "x", (0.0, 1.0, 0.0): "y", (0.0, 0.0, 1.0): "z"}


def _text(node: dict[str, Any]) -> str:
    value = node["x"]
    return value.decode() if isinstance(value, bytes) else str(value)


def _items(node: dict[str, Any]) -> list[Any]:
    items: list[Any] = node.get("@d", [])
    return items


def _error(messages: list[str]) -> CqasmError:
    first = messages[0]
    more = f" (and {len(messages) - 1} more errors)" if len(messages) > 1 else ""
    match = _LOCATION.match(first)
    message, line = (first.removeprefix("Error: "), 0) if match is None else match.group(2, 1)
    rule = "signature" if _SIGNATURE.search(message) else "syntax"
    rule = "operands" if _OPERANDS.search(message) else rule
    return CqasmError(message + more, int(line), rule=rule)


def _finite(values: list[float], what: str) -> list[float]:
    for value in values:
        if not math.isfinite(value):
            raise CqasmError(
                f"{what} is {value}: every parameter must be a finite number", rule="parameters"
            )
    return values


def _parameters(node: dict[str, Any], what: str) -> list[float]:
    return _finite([float(p["value"]["x"]) for p in _items(node["parameters"])], what)


def _locate(text: str) -> tuple[list[int], int]:
    """Statement lines and the first qubit declaration's line (see `v3check.statements`)."""
    return statements(strip_comments(text, 3))


class _Walker:
    def __init__(self, variables: list[dict[str, Any]], limits: Limits) -> None:
        self.budget = Budget(limits)
        self.qubits = 0
        self.bits = 0
        self.offsets: dict[int, tuple[str, int, int]] = {}
        for variable in variables:
            kind = variable["typ"]["@t"]
            size = int(variable["typ"]["size"]["x"])
            if kind in _QUBIT_TYPES:
                self.offsets[variable["@i"]] = ("qubit", self.qubits, size)
                self.qubits += size
            elif kind in _BIT_TYPES:
                self.offsets[variable["@i"]] = ("bit", self.bits, size)
                self.bits += size
            else:
                raise CqasmError(f"variables of type {kind} are not supported")
        # Checked on the text already (v3check); libqasm's own sizes are checked again here.
        check_register("qubits", self.qubits, limits.max_qubits, 0)
        check_register("bits", self.bits, limits.max_bits, 0)
        self.touched: set[int] = set()

    def operand(self, node: dict[str, Any]) -> list[int]:
        _, offset, size = self.offsets[node["variable"]["@l"]]
        if node["@t"] == "VariableRef":
            return list(range(offset, offset + size))
        return [offset + int(index["value"]["x"]) for index in _items(node["indices"])]

    def gate(self, statement: dict[str, Any], index: int, out: list[Operation]) -> None:
        node = statement["gate"]
        modifiers: list[Modifier] = []
        while _text(node["name"]) in _MODIFIERS:
            name = _text(node["name"])
            exponent = _parameters(node, f"the exponent of {name}")
            modifiers.append(Modifier(name, exponent[0] if exponent else 1.0))
            node = node["gate"]
        name = _text(node["name"])
        params = tuple(_parameters(node, f"a parameter of {name}"))
        if name == "Rn" and not 0 < math.hypot(*params[:3]) < math.inf:
            raise CqasmError(f"Rn's axis {params[:3]} is not a direction", rule="parameters")
        operands = [self.operand(o) for o in _items(statement["operands"])]
        width = len(operands[0])
        self.budget.spend(width, 0)
        if any(len(o) != width for o in operands):
            raise CqasmError(f"the operands of {name} have different lengths", rule="operands")
        mods = tuple(modifiers)
        for qubits in zip(*operands, strict=True):
            if len(set(qubits)) != len(qubits):
                raise CqasmError(f"{name} acts on one qubit twice", rule="operands")
            self.touched.update(qubits)
            out.append(Operation(name, qubits, index, params, modifiers=mods))

    def non_gate(self, statement: dict[str, Any], index: int, out: list[Operation]) -> None:
        name = _text(statement["name"])
        operands = [self.operand(o) for o in _items(statement["operands"])]
        params = tuple(_parameters(statement, f"a parameter of {name}"))
        self.budget.spend(max((len(o) for o in operands), default=1), 0)
        if name == "measure":
            bits, qubits = operands
            if len(bits) != len(qubits):
                raise CqasmError(
                    "measure writes a different number of bits than qubits read", rule="operands"
                )
            self.touched.update(qubits)
            out.append(Operation(name, tuple(qubits), index, bits=tuple(bits), axis=_axis(params)))
            return
        qubits = operands[0] if operands else []
        if name == "init" and self.touched.intersection(qubits):
            raise CqasmError(
                "init must come before any other instruction on its qubits", rule="init"
            )
        if name in ("init", "reset"):
            self.touched.update(qubits)
        out.append(Operation(name, tuple(qubits), index, params))


def _axis(params: tuple[float, ...]) -> str:
    """The basis of `measure(x, y, z)`: one of the three axes (libqasm takes any vector)."""
    if not params:
        return "z"
    norm = math.hypot(*params)
    if norm == 0:
        raise CqasmError(f"measure's axis {params} is not a direction", rule="parameters")
    x, y, z = (p / norm for p in params)
    axis = _AXES.get((x, y, z))
    if axis is None:
        raise CqasmError(
            f"measure along {params}: only the x, y and z axes are supported",
            rule="unsupported",
        )
    return axis


def parse_v3(text: str, limits: Limits = DEFAULT_LIMITS) -> Circuit:
    """Parse and check a cQASM 3.0 circuit; raises CqasmError with the rule it breaks and its
    line. Every bound in `limits` is checked before the work it bounds is done, and nothing
    that would crash libqasm reaches it."""
    precheck(text, limits)
    # A fresh analyzer per circuit: an instance keeps the variables it declared.
    result = libqasm.V3xAnalyzer().analyze_string(text, _CIRCUIT)
    if len(result) != 1:
        raise _error([str(message) for message in result[1:]] or ["cannot read the circuit"])
    # Modifiers nest the CBOR tree (a few levels each); their number is bounded by max_nesting.
    depth = 32 + 4 * limits.max_nesting
    tree = cbor2.loads(str(result[0]).encode("utf-8", "surrogateescape"), max_depth=depth)
    walker = _Walker(_items(tree["variables"]), limits)
    index = 0
    operations: list[Operation] = []
    try:
        for index, statement in enumerate(_items(tree["block"]["statements"])):
            kind = statement["@t"]
            if kind == "GateInstruction":
                walker.gate(statement, index, operations)
            elif kind == "NonGateInstruction":
                walker.non_gate(statement, index, operations)
            else:
                raise CqasmError(f"{kind} statements are not supported", rule="unsupported")
    except CqasmError as exc:
        lines, _ = _locate(text)
        if exc.line == 0 and index < len(lines):
            exc.line = lines[index]
        raise
    return Circuit("3.0", walker.qubits, walker.bits, operations, lambda: _locate(text))
