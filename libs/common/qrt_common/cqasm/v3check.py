"""cQASM 3.0 checked before libqasm analyses it, for what would crash or swamp libqasm.

libqasm's analyzer runs in this process, in C++: it evaluates constant expressions natively
(`X q[1/0]`, an integer division by zero, kills the process with SIGFPE), expands an index range
before checking it against its register (`H q[0:999999999999]` allocates gigabytes), and parses
and walks expressions recursively (a few thousand nested operators overflow its stack). So before
libqasm sees a circuit:

- every statement's nesting is bounded (`scan.check_nesting`, rule `nesting`);
- register declarations are summed against `max_qubits` and `max_bits` (rules `qubits`, `bits`);
- instructions are counted (each is at least one operation; rule `size`), and the operands of
  statements with literal ranges or long index lists (`CNOT q[0:3], q[1:4]`) are read off the
  text, checked against their registers and counted;
- an integer literal that does not fit in 64 bits is refused (rule `arithmetic`; libqasm
  refuses it as a syntax error);
- other statements that divide, take a remainder, shift or index a range, or whose digits and
  operators could make an integer of 64 bits or more (`q[9223372036854775807 + 1]`, which
  libqasm wraps to a negative index or angle), are parsed by libqasm's syntactic parser alone
  (no evaluation), and their constant expressions evaluated here with libqasm's types and
  overloads (a bool promotes to an integer, an integer to a float; both branches of `?:` are
  evaluated) and `arithmetic`'s checks (rule `arithmetic`); each index range is checked
  against its register and the operations the statement expands to are counted (rule `size`)
  before libqasm builds them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import libqasm

from ..errors import CqasmError
from . import arithmetic
from .limits import Budget, Limits, check_register
from .scan import check_nesting, strip_comments

_FILE = "circuit"
_DECLARATION = re.compile(
    r"\b(qubit|bit)(?:[ \t]*\[[ \t]*([0-9]+)[ \t]*\][ \t]*|[ \t]+)([A-Za-z_][A-Za-z0-9_]*)",
    re.ASCII,
)
# Only these can fault (integer `/` and `%`, shifts) or expand (ranges, and `?:` whose `:`
# looks the same); a statement without them is left to libqasm alone.
_RISKY = re.compile(r"[/%:]|<<|>>")
_VERSION = re.compile(r"^[ \t]*version\b")
_DECLARES = re.compile(r"[ \t]*(qubit|bit)\b")
_GROWING = "+-~&|^<>=!"
_LOG2_10 = math.log2(10)
_FLOAT = re.compile(r"[0-9]*\.[0-9]*(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+")
# An integer literal (not a float's digits, not part of a name) too long to be below 2**63.
_LONG_LITERAL = re.compile(r"(?<![\w.])[0-9]{19,}(?![\w.])", re.ASCII)
# A statement whose ranges are all literal (`CNOT q[0:3], q[1:4]`) is checked without a parser.
_FAULTS = re.compile(r"[/%?]|<<|>>")
# Outside comments and asm bodies, libqasm's lexer reads ASCII only.
_NOT_ASCII = re.compile(r"[^\x00-\x7f]")
_INDEXED = re.compile(r"(?<![A-Za-z0-9_])([A-Za-z_][A-Za-z0-9_]*)[ \t]*\[([^\[\]]*)\]")
_LITERAL = re.compile(r"[ \t]*([0-9]{1,19})[ \t]*(?::[ \t]*([0-9]{1,19})[ \t]*)?")
_CONSTANTS = {"pi": math.pi, "eu": math.e, "tau": math.tau}
_LOCATION = re.compile(r":(\d+):(\d+)\.\.(\d+)$")
_MAX_OPERANDS = 2
"""No cQASM 3.0 instruction takes more operands (`measure` takes a bit target and qubits)."""
_CHUNK = 2000
"""Lines parsed at once: libqasm's syntax tree as JSON is about 1 kB per statement."""
_LONG_LINE = 200
"""A longer line may hold a long index list: its operands are counted before libqasm reads it."""

_Value = tuple[str, Any] | None
"""("i", int), ("b", bool), ("f", float), or None: not a constant libqasm can evaluate."""

_INT_OPERATORS = {
    "ProductExpression": "*",
    "DivisionExpression": "/",
    "ModuloExpression": "%",
    "AdditionExpression": "+",
    "SubtractionExpression": "-",
    "ShiftLeftExpression": "<<",
    "ShiftRightExpression": ">>",
    "BitwiseAndExpression": "&",
    "BitwiseXorExpression": "^",
    "BitwiseOrExpression": "|",
}
_FLOAT_OPERATORS = {"+", "-", "*", "/"}
_COMPARISONS = {
    "CmpEqExpression": lambda a, b: a == b,
    "CmpNeExpression": lambda a, b: a != b,
    "CmpGtExpression": lambda a, b: a > b,
    "CmpGeExpression": lambda a, b: a >= b,
    "CmpLtExpression": lambda a, b: a < b,
    "CmpLeExpression": lambda a, b: a <= b,
}
_LOGICAL = {
    "LogicalAndExpression": lambda a, b: a and b,
    "LogicalOrExpression": lambda a, b: a or b,
    "LogicalXorExpression": lambda a, b: a != b,
}


def _node(tree: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((kind, body),) = tree.items()
    return kind, body


def _items(tree: Any) -> list[Any]:
    if not isinstance(tree, dict):
        return []
    items: list[Any] = _node(tree)[1].get("items", [])
    return items


def _declarations(stripped: str, limits: Limits) -> dict[str, int]:
    """Register name to size, with the totals checked against `limits`."""
    sizes: dict[str, int] = {}
    totals = {"qubit": 0, "bit": 0}
    for match in _DECLARATION.finditer(stripped):
        kind, digits, name = match.groups()
        # More than 19 digits cannot be a size; converting 10^6 of them would take long.
        size = 1 if digits is None else int(digits) if len(digits) <= 19 else arithmetic.INT_MAX
        sizes[name] = size
        totals[kind] += size
        line = stripped.count("\n", 0, match.start()) + 1
        check_register("qubits", totals["qubit"], limits.max_qubits, line)
        check_register("bits", totals["bit"], limits.max_bits, line)
    return sizes


def _may_overflow(text: str) -> bool:
    """Whether an integer expression in `text` could reach 64 bits by `+ - * ~` and the like
    (`/`, `%` and shifts are always evaluated: see `_RISKY`).

    A bound, not an evaluation: an expression's magnitude stays below 10**d * 2**g, where d
    counts its digits and g the operators that can add a bit (`+ - ~ & | ^`, comparisons,
    `true`): a product adds its factors' digits, a sum or a bitwise operator one bit. So a
    statement with fewer than 63 bits of digits and such operators cannot overflow.
    """
    if len(text) * _LOG2_10 < 63:  # no character adds more than log2(10) bits
        return False
    if "." in text or "e" in text or "E" in text:
        text = _FLOAT.sub("", text)  # a float never becomes an integer again
    digits = sum(map(text.count, "0123456789"))
    growth = sum(map(text.count, _GROWING)) + text.count("true")
    return digits * _LOG2_10 + growth >= 63


def _check_literals(stripped: str) -> None:
    """Refuse an integer literal of 64 bits or more (rule `arithmetic`), naming it."""
    for match in _LONG_LITERAL.finditer(stripped):
        arithmetic.literal(match.group(0), stripped.count("\n", 0, match.start()) + 1)


def statements(stripped: str) -> tuple[list[int], int]:
    """The line of every statement of `stripped` (comments blanked) but the version and the
    declarations, in libqasm's order, and the first qubit declaration's line."""
    lines: list[int] = []
    declaration = 0
    version = True
    for number, line in enumerate(stripped.split("\n"), start=1):
        for part in line.split(";"):
            if not part.strip():
                continue
            if version:  # a circuit starts with its version statement
                version = False
                continue
            declared = _DECLARES.match(part)
            if declared is None:
                lines.append(number)
            elif declaration == 0 and declared.group(1) == "qubit":
                declaration = number
    return lines, declaration


def _syntax(text: str) -> dict[str, Any] | None:
    """libqasm's syntax tree of `text` (parsed only: nothing evaluated), None on syntax errors."""
    try:
        # Not strict: libqasm's messages quote control characters of the text as they are.
        tree = json.loads(libqasm.V3xAnalyzer.parse_string_to_json(text, _FILE), strict=False)
    except json.JSONDecodeError:
        # Unreadable as JSON, it cannot be checked: refused rather than given to libqasm.
        raise CqasmError("cannot read the circuit") from None
    if not isinstance(tree, dict) or "errors" in tree or "Program" not in tree:
        return None
    return tree


def _line_of(body: dict[str, Any], default: int) -> int:
    match = _LOCATION.search(str(body.get("source_location", "")))
    return int(match.group(1)) if match else default


_Literal = list[tuple[str, list[tuple[int, int | None]]]]
"""A statement's indexed operands: register name, then each index or range (start, stop)."""


def _literal(statement: str) -> _Literal | None:
    """The indexed operands of a statement whose only ranges have literal ends (`CNOT q[0:3],
    q[1:4]`), or None if it needs the parser."""
    outside = _INDEXED.sub("", statement)
    if _FAULTS.search(statement) or ":" in outside or _may_overflow(outside):
        return None
    operands: _Literal = []
    for name, entries in _INDEXED.findall(statement):
        matches = [_LITERAL.fullmatch(entry) for entry in entries.split(",")]
        if not all(matches):
            return None
        operands.append(
            (name, [(int(m[1]), None if m[2] is None else int(m[2])) for m in matches if m])
        )
    return operands


def _register(registers: dict[str, int], name: str, line: int) -> int:
    size = registers.get(name)
    if size is None:
        raise CqasmError(f"failed to resolve variable '{name}'", line)
    return size


def _check_range(start: int, stop: int, size: int, line: int) -> int:
    """How many indices `start:stop` selects of a register of `size`, checked first."""
    for index in (start, stop):
        if not 0 <= index < size:
            raise CqasmError(f"index {index} out of range (size {size})", line)
    if start > stop:
        raise CqasmError("last index is lower than first index", line)
    return stop - start + 1


class _Evaluator:
    def __init__(self, registers: dict[str, int], limits: Limits) -> None:
        self.registers = registers
        self.budget = Budget(limits)
        self.lines: list[str] = []
        """The text parsed, by line (for float literals, which the tree rounds)."""
        self.numbers: list[int] = []
        """The line of the circuit each of `lines` is."""

    def literal(self, operands: _Literal, line: int) -> None:
        """Check and count a statement's operands read by `_literal` (no parser needed)."""
        widths = [0]
        for name, entries in operands:
            size = _register(self.registers, name, line)
            widths.append(
                sum(
                    1 if stop is None else _check_range(start, stop, size, line)
                    for start, stop in entries
                )
            )
        self.budget.spend(max(widths), line)

    def program(self, lines: list[str], numbers: list[int]) -> bool:
        """Evaluate the statements of `lines` (lines `numbers` of the circuit); False if they
        do not parse (libqasm then reports the syntax error and evaluates nothing)."""
        tree = _syntax("\n".join(lines))
        if tree is None:
            return False
        self.lines, self.numbers = lines, numbers
        _, body = _node(tree["Program"]["block"])
        for statement in body.get("statements", []):
            kind, node = _node(statement)
            if kind in ("GateInstruction", "NonGateInstruction"):
                line = _line_of(node, 0)
                self.instruction(kind, node, numbers[line - 1] if 0 < line <= len(numbers) else 0)
        return True

    def instruction(self, kind: str, node: dict[str, Any], line: int) -> None:
        if kind == "GateInstruction":
            gate = node["gate"]
            while isinstance(gate, dict):  # modifiers nest: pow(2).inv.X
                _, body = _node(gate)
                for parameter in _items(body.get("parameters")):
                    self.value(parameter, line)
                gate = body.get("gate")
        else:
            for parameter in _items(node.get("parameters")):
                self.value(parameter, line)
        operands = _items(node.get("operands"))
        if len(operands) > _MAX_OPERANDS:
            raise CqasmError(
                f"an instruction takes at most {_MAX_OPERANDS} operands, got {len(operands)}",
                line,
                rule="signature",
            )
        widths = [self.operand(operand, line) for operand in operands]
        self.budget.spend(max(widths, default=1), line)

    def operand(self, tree: dict[str, Any], line: int) -> int:
        """How many qubits or bits an operand selects (1 if it is not a register)."""
        kind, body = _node(tree)
        if kind == "Identifier":
            return self.registers.get(body.get("name", ""), 1)
        if kind != "Index":
            self.value(tree, line)
            return 1
        _, target = _node(body["expr"])
        count = 0
        for entry in _items(body.get("indices")):
            entry_kind, entry_body = _node(entry)
            if entry_kind == "IndexItem":
                self.value(entry_body["index"], line)
                count += 1
                continue
            first = self.value(entry_body["first"], line)
            last = self.value(entry_body["last"], line)
            if first is None or last is None or first[0] == "f" or last[0] == "f":
                continue  # libqasm refuses it ("expected an integer") without expanding it
            size = _register(self.registers, target.get("name", ""), line)
            count += _check_range(int(first[1]), int(last[1]), size, line)
        return count

    def float_literal(self, body: dict[str, Any]) -> float:
        # The tree rounds floats to 6 digits; the source text has them exactly.
        match = _LOCATION.search(str(body.get("source_location", "")))
        if match:
            number, start, stop = (int(group) for group in match.groups())
            if 0 < number <= len(self.lines):
                try:
                    return float(self.lines[number - 1][start - 1 : stop - 1])
                except ValueError:
                    pass
        return float(body["value"])

    def value(self, tree: Any, line: int) -> _Value:
        """The constant value of an expression (every subexpression evaluated, as libqasm
        evaluates every one); raises CqasmError where libqasm's native arithmetic would fault."""
        if not isinstance(tree, dict):
            return None
        kind, body = _node(tree)
        if kind == "IntegerLiteral":
            return ("i", int(body["value"]))
        if kind == "FloatLiteral":
            return ("f", self.float_literal(body))
        if kind == "BooleanLiteral":
            return ("b", body["value"] in ("1", "true"))
        if kind == "Identifier":
            constant = _CONSTANTS.get(body.get("name", ""))
            return None if constant is None else ("f", constant)
        if kind == "Index":
            raise CqasmError(
                "a qubit or bit operand cannot be used as a number", line, rule="signature"
            )
        if kind == "FunctionCall":
            return self.call(body, line)
        if kind == "TernaryConditionalExpression":
            condition = self.value(body["cond"], line)
            branches = [self.value(body["if_true"], line), self.value(body["if_false"], line)]
            if condition is None or condition[0] != "b" or None in branches:
                return None
            chosen = branches[0] if condition[1] else branches[1]
            assert chosen is not None
            if any(b is not None and b[0] == "f" for b in branches):
                return ("f", float(chosen[1]))
            return chosen
        if "expr" in body:  # unary
            return self.unary(kind, self.value(body["expr"], line), line)
        if "lhs" in body:
            left, right = self.value(body["lhs"], line), self.value(body["rhs"], line)
            return self.binary(kind, left, right, line)
        return None

    def call(self, body: dict[str, Any], line: int) -> _Value:
        name = _node(body["name"])[1].get("name", "")
        args = [self.value(arg, line) for arg in _items(body.get("arguments"))]
        if name not in arithmetic.FLOAT_FUNCTIONS or len(args) != 1 or args[0] is None:
            return None
        arg = args[0]
        if name == "abs" and arg[0] != "f":
            return ("i", arithmetic.int_abs(int(arg[1]), line))
        return ("f", arithmetic.float_function(name, float(arg[1])))

    @staticmethod
    def unary(kind: str, operand: _Value, line: int) -> _Value:
        if operand is None:
            return None
        type_, value = operand
        if kind == "UnaryMinusExpression":
            if type_ == "f":
                return ("f", -value)
            return ("i", arithmetic.int_negate(int(value), line))
        if kind == "BitwiseNotExpression":
            return None if type_ == "f" else ("i", ~int(value))
        if kind == "LogicalNotExpression":
            return ("b", not value) if type_ == "b" else None
        return None

    @staticmethod
    def binary(kind: str, left: _Value, right: _Value, line: int) -> _Value:
        if left is None or right is None:
            return None
        types = {left[0], right[0]}
        if kind in _LOGICAL:
            return ("b", _LOGICAL[kind](left[1], right[1])) if types == {"b"} else None
        if kind in _COMPARISONS:
            if "f" in types:
                return ("b", _COMPARISONS[kind](float(left[1]), float(right[1])))
            return ("b", _COMPARISONS[kind](int(left[1]), int(right[1])))
        if kind == "PowerExpression":
            return ("f", arithmetic.float_binary("**", float(left[1]), float(right[1])))
        symbol = _INT_OPERATORS.get(kind)
        if symbol is None:
            return None
        if "f" not in types:  # a bool promotes to an integer
            return ("i", arithmetic.int_binary(symbol, int(left[1]), int(right[1]), line))
        if symbol not in _FLOAT_OPERATORS:
            return None  # libqasm has no float overload: it refuses the types
        return ("f", arithmetic.float_binary(symbol, float(left[1]), float(right[1])))


def precheck(text: str, limits: Limits) -> None:
    """Raise CqasmError for what in cQASM 3.0 `text` would crash libqasm or make it expand more
    than `limits` allow; return if libqasm can be given the text safely."""
    stripped = strip_comments(text, 3)
    foreign = _NOT_ASCII.search(stripped)
    if foreign is not None:
        number = stripped.count("\n", 0, foreign.start()) + 1
        raise CqasmError(f"unexpected character {foreign.group(0)!r}", number)
    check_nesting(stripped, 3, limits.max_nesting)
    registers = _declarations(stripped, limits)
    _check_literals(stripped)
    # Every instruction is at least one operation: more of them than operations allowed is
    # refused before libqasm reads (and this module parses) any.
    instructions, _ = statements(stripped)
    if len(instructions) > limits.max_operations:
        counted = Budget(limits)
        for number in instructions:
            counted.spend(1, number)
    lines = stripped.split("\n")
    evaluator = _Evaluator(registers, limits)
    keep: list[int] = []
    for n, line in enumerate(lines):
        # A long line may hold a long index list, which libqasm is slow to read: counted too.
        if not _RISKY.search(line) and len(line) <= _LONG_LINE and not _may_overflow(line):
            continue
        literal = [_literal(part) for part in line.split(";")]
        if any(operands is None for operands in literal):
            keep.append(n)
            continue
        for operands in literal:
            assert operands is not None
            evaluator.literal(operands, n + 1)
    if not keep:
        return
    # Only the lines that need it are parsed, a chunk at a time, each after the version line
    # (a line holds whole statements: comments and asm bodies are blanked). The version
    # line's own statements, if any, are evaluated with the first chunk only.
    version = next((n for n, line in enumerate(lines) if _VERSION.match(line)), 0)
    rest = [n for n in keep if n != version]
    chunks = [rest[i : i + _CHUNK] for i in range(0, len(rest), _CHUNK)] or [[]]
    for index, chunk in enumerate(chunks):
        head = lines[version] if index == 0 else "version 3.0"
        parsed = [head] + [lines[n] for n in chunk]
        if not evaluator.program(parsed, [version + 1] + [n + 1 for n in chunk]):
            return
