"""cQASM 3.0 through libqasm's analyzer (types, gate signatures and index bounds checked there).

libqasm's own Python tree (`cqasm.v3x.Analyzer.analyze_string`) rebuilds the whole semantic
tree from its CBOR serialization in pure Python, which costs 60 ms and more for a few hundred
gates. The same CBOR decoded by cbor2's C decoder into plain dicts and walked here costs a
fraction of that; the keys read below (`@t` type, `@d` list items, `@i` node id, `@l` link,
`x` primitive) are that serialization's format.
"""

from __future__ import annotations

import json
import re
from typing import Any

import cbor2
import libqasm

from ..errors import CqasmError
from .circuit import Circuit, Modifier, Operation

_LOCATION = re.compile(r"^Error at [^:]*:(\d+):\d+(?:\.\.\d+)?: (.*)$", re.S)
_QUBIT_TYPES = {"Qubit", "QubitArray"}
_BIT_TYPES = {"Bit", "BitArray"}
_MODIFIERS = {"inv", "pow", "ctrl"}
_CIRCUIT = "circuit"


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
    if match is None:
        return CqasmError(first.removeprefix("Error: ") + more)
    return CqasmError(match.group(2) + more, int(match.group(1)))


def _locate(text: str) -> tuple[list[int], int]:
    """Statement lines and qubit declaration line, from libqasm's syntax tree (slow: only
    called to report an error)."""
    tree = json.loads(libqasm.V3xAnalyzer.parse_string_to_json(text, _CIRCUIT))
    statements = tree.get("Program", {}).get("block", {}).get("GlobalBlock", {})
    lines: list[int] = []
    declaration = 0
    for statement in statements.get("statements", []):
        (kind, body), *_ = statement.items()
        line = int(body.get("source_location", ":0:").split(":")[1] or 0)
        if kind == "Variable":
            type_name = body.get("typ", {}).get("Type", {}).get("name", {})
            if declaration == 0 and type_name.get("Keyword", {}).get("name") == "qubit":
                declaration = line
        else:
            lines.append(line)
    return lines, declaration


class _Walker:
    def __init__(self, variables: list[dict[str, Any]]) -> None:
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
            exponent = [float(p["value"]["x"]) for p in _items(node["parameters"])]
            modifiers.append(Modifier(name, exponent[0] if exponent else 1.0))
            node = node["gate"]
        name = _text(node["name"])
        params = tuple(float(p["value"]["x"]) for p in _items(node["parameters"]))
        operands = [self.operand(o) for o in _items(statement["operands"])]
        width = len(operands[0])
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
        params = tuple(float(p["value"]["x"]) for p in _items(statement["parameters"]))
        if name == "measure":
            bits, qubits = operands
            if len(bits) != len(qubits):
                raise CqasmError("measure writes a different number of bits than qubits read")
            self.touched.update(qubits)
            out.append(Operation(name, tuple(qubits), index, bits=tuple(bits)))
            return
        qubits = operands[0] if operands else []
        if name == "init" and self.touched.intersection(qubits):
            raise CqasmError(
                "init must come before any other instruction on its qubits", rule="init"
            )
        if name in ("init", "reset"):
            self.touched.update(qubits)
        out.append(Operation(name, tuple(qubits), index, params))


def parse_v3(text: str) -> Circuit:
    """Parse and check a cQASM 3.0 circuit; raises CqasmError with the line of the problem."""
    # A fresh analyzer per circuit: an instance keeps the variables it declared.
    result = libqasm.V3xAnalyzer().analyze_string(text, _CIRCUIT)
    if len(result) != 1:
        raise _error([str(message) for message in result[1:]] or ["cannot read the circuit"])
    tree = cbor2.loads(str(result[0]).encode("utf-8", "surrogateescape"))
    walker = _Walker(_items(tree["variables"]))
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
