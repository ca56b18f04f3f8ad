"""cQASM 1.0, which no maintained parser reads any more: a lark grammar and its semantics.

cQASM 1.0 is case-insensitive. `qubits N` declares `q[N]` and `b[N]`; `measure q[i]` writes
`b[i]`; statements are separated by newlines or `;`; `#` starts a comment. Supported: every
QX gate (`c-` conditional forms too), `prep_*`, `measure_*`, `measure_all`, `map` aliases,
`.name(N)` subcircuits (repeated N times), `{ a | b }` bundles, and `display`, `skip`,
`wait` and `error_model`, which change nothing here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ..errors import CqasmError
from .circuit import Circuit, Operation
from .gates import CQASM1_GATES

GRAMMAR = r"""
start: [_SEP] statement (_SEP statement)* [_SEP]

?statement: instruction | subcircuit | bundle
subcircuit: "." NAME ["(" INT ")"]
bundle: "{" instruction ("|" instruction)* "}"
instruction: [COND] NAME [argument ("," argument)*]

?argument: NAME "[" index ("," index)* "]" -> indexed
         | expr
index: INT [":" INT]

?expr: term | expr "+" term -> add | expr "-" term -> sub
?term: factor | term "*" factor -> mul | term "/" factor -> div
?factor: atom | "-" factor -> neg | "+" factor
?atom: NUMBER -> number | NAME -> name | "(" expr ")"

COND.2: /c-/i
NAME: /[a-z_][a-z0-9_]*/i
INT: /[0-9]+/
NUMBER: /([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(e[+-]?[0-9]+)?/i
// One token for a run of separators, blank lines and comment lines between statements.
_SEP: /[;\n]([ \t\f\r]*(#[^\n]*)?[;\n])*/
COMMENT: /#[^\n]*/
%ignore /[ \t\f\r]+/
%ignore COMMENT
"""

MEASURES = {"measure": "z", "measure_z": "z", "measure_x": "x", "measure_y": "y"}
PREPARES = {"prep_z": "z", "prep_x": "x", "prep_y": "y"}
IGNORED = {"display", "display_binary", "skip", "wait", "error_model"}
UNSUPPORTED = {"measure_parity", "not", "load_state", "reset_averaging"}


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=False, maybe_placeholders=True)


@dataclass(slots=True)
class _Operand:
    register: str
    """`q` or `b`."""
    indices: list[int]


@dataclass(slots=True)
class _Block:
    repetitions: int
    instructions: list[tuple[Tree[Token], int]] = field(default_factory=list)


def _line(tree: Tree[Token] | Token) -> int:
    if isinstance(tree, Token):
        return tree.line or 0
    for token in tree.scan_values(lambda v: isinstance(v, Token)):
        return int(token.line or 0)
    return 0


class _Reader:
    def __init__(self) -> None:
        self.num_qubits = -1
        self.aliases: dict[str, _Operand] = {}
        self.lines: list[int] = []
        self.declaration_line = 0
        self.operations: list[Operation] = []

    def evaluate(self, tree: Tree[Token] | Token, line: int) -> float:
        if isinstance(tree, Token):
            raise CqasmError(f"expected a number, got {tree!s}", line)
        kind, children = tree.data, tree.children
        if kind == "number":
            return float(str(children[0]))
        if kind == "name":
            if str(children[0]).lower() == "pi":
                return math.pi
            raise CqasmError(f"expected a number, got {children[0]!s}", line)
        if kind == "neg":
            return -self.evaluate(children[0], line)
        if kind == "factor":
            return self.evaluate(children[0], line)
        left, right = (self.evaluate(c, line) for c in children)
        if kind == "add":
            return left + right
        if kind == "sub":
            return left - right
        if kind == "mul":
            return left * right
        if right == 0:
            raise CqasmError("division by zero", line)
        return left / right

    def operand(self, tree: Tree[Token] | Token, line: int) -> _Operand | None:
        """The register indices `tree` names, or None if it is not an operand."""
        if isinstance(tree, Tree) and tree.data == "indexed":
            name, *indices = tree.children
            register = str(name).lower()
            if register not in ("q", "b"):
                raise CqasmError(f"unknown register {name!s}; cQASM 1.0 has q and b", line)
            selected: list[int] = []
            for index in indices:
                assert isinstance(index, Tree)
                first, last = index.children
                start = int(str(first))
                stop = int(str(last)) if last is not None else start
                if stop < start:
                    raise CqasmError(f"empty index range {start}:{stop}", line)
                selected.extend(range(start, stop + 1))
            size = self.num_qubits
            for i in selected:
                if i >= size:
                    raise CqasmError(f"index {register}[{i}] out of range (size {size})", line)
            return _Operand(register, selected)
        if isinstance(tree, Tree) and tree.data == "name":
            return self.aliases.get(str(tree.children[0]).lower())
        return None

    def qubits(self, tree: Tree[Token] | Token, line: int) -> list[int]:
        operand = self.operand(tree, line)
        if operand is None or operand.register != "q":
            raise CqasmError("expected qubits such as q[0] or q[0:2]", line)
        return operand.indices

    def add(self, operation: Operation) -> None:
        if len(set(operation.qubits)) != len(operation.qubits):
            raise CqasmError(
                f"{operation.name} acts on one qubit twice",
                self.lines[operation.statement],
                rule="operands",
            )
        self.operations.append(operation)

    def instruction(self, tree: Tree[Token], line: int, statement: int) -> None:
        condition_token, name_token, *arguments = tree.children
        arguments = [a for a in arguments if a is not None]
        name = str(name_token).lower()
        condition: tuple[int, ...] = ()
        if condition_token is not None:
            if name not in CQASM1_GATES:
                raise CqasmError(f"c-{name_token!s}: only gates can be conditional", line)
            bits = self.operand(arguments[0], line) if arguments else None
            if bits is None or bits.register != "b":
                raise CqasmError(f"c-{name_token!s} needs the condition bits first", line)
            condition, arguments = tuple(bits.indices), arguments[1:]
        if name in CQASM1_GATES:
            self.gate(name, arguments, line, statement, condition)
        elif name in MEASURES:
            if not arguments:
                raise CqasmError(f"{name} needs qubits", line)
            qubits = [q for a in arguments for q in self.qubits(a, line)]
            measured = tuple(qubits)
            self.add(Operation("measure", measured, statement, bits=measured, axis=MEASURES[name]))
        elif name == "measure_all":
            everything = tuple(range(self.num_qubits))
            self.add(Operation("measure", everything, statement, bits=everything))
        elif name in PREPARES:
            for argument in arguments:
                for q in self.qubits(argument, line):
                    self.add(Operation("init", (q,), statement, axis=PREPARES[name]))
        elif name == "map":
            if len(arguments) != 2 or not isinstance(arguments[1], Tree):
                raise CqasmError("map needs an operand and a name: map q[0], ancilla", line)
            target = self.operand(arguments[0], line)
            if target is None:
                raise CqasmError("map needs an operand such as q[0]", line)
            self.aliases[str(arguments[1].children[0]).lower()] = target
        elif name in IGNORED:
            return
        elif name in UNSUPPORTED:
            raise CqasmError(f"{name_token!s} is not supported", line, rule="unsupported")
        elif name in ("qubits", "version"):
            raise CqasmError(f"{name_token!s} may appear only once, at the top", line)
        else:
            raise CqasmError(f"unknown instruction {name_token!s}", line)

    def gate(
        self,
        name: str,
        arguments: list[Tree[Token] | Token],
        line: int,
        statement: int,
        condition: tuple[int, ...],
    ) -> None:
        gate = CQASM1_GATES[name]
        quis, arity, nparams = gate.name, gate.qubits, gate.params
        if len(arguments) != arity + nparams:
            expected = f"{arity} qubit operand(s)" + (f" and {nparams} angle" if nparams else "")
            raise CqasmError(f"{quis} takes {expected}", line)
        operands = [self.qubits(a, line) for a in arguments[:arity]]
        params = tuple(self.evaluate(a, line) for a in arguments[arity:])
        width = len(operands[0])
        if any(len(o) != width for o in operands):
            raise CqasmError(f"the operands of {quis} have different lengths", line)
        for qubits in zip(*operands, strict=True):
            self.add(Operation(quis, qubits, statement, params, condition=condition))

    def read(self, root: Tree[Token]) -> None:
        statements = [child for child in root.children if isinstance(child, Tree)]
        if not statements or not _is(statements[0], "version"):
            raise CqasmError("the circuit must start with `version 1.0`", 1)
        blocks = [_Block(1)]
        for tree in statements[1:]:
            line = _line(tree)
            if _is(tree, "qubits"):
                if self.num_qubits >= 0:
                    raise CqasmError("qubits may be declared only once", line)
                args = tree.children[2:]
                if len(args) != 1 or not isinstance(args[0], Tree) or args[0].data != "number":
                    raise CqasmError("expected `qubits N`", line)
                count = float(str(args[0].children[0]))
                if count != int(count) or count < 1:
                    raise CqasmError("the number of qubits must be a positive integer", line)
                self.num_qubits, self.declaration_line = int(count), line
            elif self.num_qubits < 0:
                raise CqasmError("`qubits N` must come before the first instruction", line)
            elif tree.data == "subcircuit":
                repetitions = int(str(tree.children[1])) if tree.children[1] is not None else 1
                blocks.append(_Block(repetitions))
            elif tree.data == "bundle":
                blocks[-1].instructions.extend(
                    (child, line) for child in tree.children if isinstance(child, Tree)
                )
            else:
                blocks[-1].instructions.append((tree, line))
        if self.num_qubits < 0:
            raise CqasmError("the circuit declares no qubits (`qubits N`)", 1)
        for block in blocks:
            for _ in range(block.repetitions):
                for tree, line in block.instructions:
                    self.lines.append(line)
                    self.instruction(tree, line, len(self.lines) - 1)


def _is(tree: Tree[Token], keyword: str) -> bool:
    return tree.data == "instruction" and str(tree.children[1]).lower() == keyword


def parse_v1(text: str) -> Circuit:
    """Parse a cQASM 1.0 circuit; raises CqasmError with the line of the problem."""
    try:
        tree = _parser().parse(text)
    except UnexpectedCharacters as exc:
        raise CqasmError(f"unexpected character {exc.char!r}", exc.line) from None
    except UnexpectedToken as exc:
        found = "end of input" if exc.token.type == "$END" else repr(str(exc.token))
        raise CqasmError(f"unexpected {found}", exc.line) from None
    except UnexpectedInput as exc:
        raise CqasmError("cannot read the circuit", exc.line) from None
    reader = _Reader()
    reader.read(tree)
    lines, declaration = reader.lines, reader.declaration_line
    return Circuit(
        "1.0", reader.num_qubits, reader.num_qubits, reader.operations, lambda: (lines, declaration)
    )
