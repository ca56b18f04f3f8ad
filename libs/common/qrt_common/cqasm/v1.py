"""cQASM 1.0, which no maintained parser reads any more: a lark grammar and its semantics.

The rules are libqasm 0.6's (the last version that read cQASM 1.0): its default instruction set
(`V1_INSTRUCTIONS`: every overload's operand types, whether it may be conditional or share a
bundle), its types (integers promote to reals, never the reverse: `crk q[0], q[1], 0.5` is
refused), its checks (a qubit used twice by one instruction, operands of different lengths,
`.name(N)` with N < 1, indices out of range) and its constant arithmetic (64-bit integers,
doubles; see `arithmetic`). cQASM 1.0 is case-insensitive; `qubits N` declares `q[N]` and
`b[N]`; `measure q[i]` writes `b[i]`; statements are separated by newlines or `;`; `#` starts
a comment. Not read (refused as `unsupported`): `u` (matrices), `not`, `measure_parity`,
`load_state`, cQASM 1.1+ variables and 1.2 control flow.

Nothing is expanded before it is counted: a subcircuit's repetitions times its operations,
range lengths and register sizes are checked against `Limits` first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import NoReturn

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ..errors import CqasmError
from . import arithmetic
from .circuit import Circuit, Operation
from .gates import CQASM1_GATES
from .limits import DEFAULT_LIMITS, Budget, Limits, check_register
from .scan import check_nesting, strip_comments

GRAMMAR = r"""
start: [_SEP] statement (_SEP statement)* [_SEP]

?statement: instruction | subcircuit | bundle | mapping
mapping: MAP expr "," NAME | MAP NAME "=" expr
subcircuit: "." NAME ["(" expr ")"]
bundle: "{" [_SEP] instruction ((_SEP | "|") instruction)* [_SEP] "}"
instruction: [COND] _name [expr ("," expr)*]
           | COND_KEYWORD "(" expr ")" _name [expr ("," expr)*] -> cond_instruction
_name: NAME | RESET_AVERAGING

?expr: sum
?sum: product | sum "+" product -> add | sum "-" product -> sub
?product: power
        | product "*" power -> mul
        | product "/" power -> div
        | product "//" power -> intdiv
        | product "%" power -> mod
?power: unary | unary "**" power -> pow
?unary: atom | "-" unary -> neg
?atom: INT -> int
     | FLOAT -> float
     | NAME -> name
     | NAME "[" index ("," index)* "]" -> indexed
     | NAME "(" [expr ("," expr)*] ")" -> call
     | "(" expr ")"
index: expr [":" expr]

COND.2: /c-/i
COND_KEYWORD: "cond"i
MAP: "map"i
RESET_AVERAGING.3: /reset-averaging/i
NAME: /[a-z_][a-z0-9_]*/i
INT: /[0-9]+/
FLOAT.2: /[0-9]*\.[0-9]+(e[+-]?[0-9]+)?/i
// One token for a run of separators, blank lines and comment lines between statements.
_SEP: /[;\n]([ \t\f\r]*(#[^\n]*)?[;\n])*/
COMMENT: /#[^\n]*/
%ignore /[ \t\f\r]+/
%ignore COMMENT
"""


@dataclass(frozen=True, slots=True)
class V1Instruction:
    """One instruction of libqasm's default cQASM 1.0 instruction set."""

    overloads: tuple[str, ...]
    """Operand types of each overload, in libqasm's letters: `Q` qubits, `B` bits, `i` integer,
    `r` real (an integer promotes to it)."""
    conditional: bool = True
    """May be made conditional (`c-x b[0], q[1]`, `cond (b[0]) x q[1]`)."""
    parallel: bool = True
    """May share a bundle (`{ a | b }`) with other instructions."""
    action: str = "gate"
    """What it does here: `gate`, `measure`, `prep`, `measure_all`, `barrier`, `wait`, `ignore`
    (timing and simulator meta-instructions) or `unsupported`."""


def _gate_overload(qubits: int, params: int, integer: bool) -> str:
    return "Q" * qubits + ("i" if integer else "r") * params


V1_INSTRUCTIONS: dict[str, V1Instruction] = {
    **{
        name: V1Instruction((_gate_overload(g.qubits, g.params, g.integer_params),))
        for name, g in CQASM1_GATES.items()
    },
    "u": V1Instruction(("Qu",), action="unsupported"),
    **{
        name: V1Instruction(("Q",), conditional=False, action="prep")
        for name in ("prep", "prep_x", "prep_y", "prep_z")
    },
    **{
        name: V1Instruction(("Q",), conditional=False, action="measure")
        for name in ("measure", "measure_x", "measure_y", "measure_z")
    },
    "measure_all": V1Instruction(("",), False, False, "measure_all"),
    "measure_parity": V1Instruction(("QaQa",), False, False, "unsupported"),
    "not": V1Instruction(("B",), action="unsupported"),
    "display": V1Instruction(("", "B"), False, False, "ignore"),
    "display_binary": V1Instruction(("", "B"), False, False, "ignore"),
    "skip": V1Instruction(("i",), False, False, "ignore"),
    "wait": V1Instruction(("Qi",), False, False, "wait"),
    "barrier": V1Instruction(("Q",), False, False, "barrier"),
    "reset-averaging": V1Instruction(("", "Q"), False, False, "ignore"),
    "load_state": V1Instruction(("s",), False, False, "unsupported"),
}
"""libqasm 0.6's default cQASM 1.0 instruction set (its `register_instruction` calls), by
lower-case name. `error_model`, `map`, `qubits` and `version` are statements of their own."""

_AXES = {"": "z", "z": "z", "x": "x", "y": "y"}
_TYPE_NAMES = {"Q": "qubits", "B": "bits", "i": "integer", "r": "real", "u": "matrix"}
_TYPE_NAMES |= {"a": "axis", "s": "string", "": ""}
_CONSTANTS: dict[str, float | bool] = {"pi": math.pi, "eu": math.e, "true": True, "false": False}
_ERROR_MODELS = {"depolarizing_channel": 50}
"""Error models libqasm knows, with their most real parameters (ignored here)."""


@dataclass(frozen=True, slots=True)
class _Refs:
    """Qubits (`q`) or bits (`b`) an operand selects, in order."""

    register: str
    indices: tuple[int, ...]


_Value = int | float | bool | _Refs


def _type_of(value: _Value) -> str:
    if isinstance(value, _Refs):
        return "Q" if value.register == "q" else "B"
    if isinstance(value, bool):
        return "bool"
    return "i" if isinstance(value, int) else "r"


def _describe(value: _Value) -> str:
    kind = _type_of(value)
    if kind == "bool":
        return "bool"
    return f"{_TYPE_NAMES[kind]} {value}" if kind in ("i", "r") else _TYPE_NAMES[kind]


def _matches(value: _Value, kind: str) -> bool:
    actual = _type_of(value)
    return actual == kind or (kind == "r" and actual == "i")


@dataclass(slots=True)
class _Block:
    name: str
    repetitions: int
    line: int
    operations: list[Operation] = field(default_factory=list)


def _line(tree: Tree[Token] | Token) -> int:
    if isinstance(tree, Token):
        return tree.line or 0
    for token in tree.scan_values(lambda v: isinstance(v, Token)):
        return int(token.line or 0)
    return 0


def _signature_error(
    name: str, overloads: tuple[str, ...], args: list[_Value], line: int
) -> NoReturn:
    wanted = " or ".join(
        "(" + ", ".join(_TYPE_NAMES[k] for k in overload) + ")" for overload in overloads
    )
    got = ", ".join(_describe(a) for a in args)
    raise CqasmError(f"{name} takes {wanted}, got ({got})", line, rule="signature")


class _Reader:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.budget = Budget(limits)
        self.num_qubits = -1
        self.aliases: dict[str, _Value] = {}
        self.lines: list[int] = []
        self.declaration_line = 0
        self.blocks = [_Block("", 1, 1)]

    # Expressions -------------------------------------------------------------------------

    def evaluate(self, tree: Tree[Token] | Token, line: int) -> _Value:
        """The value of an expression, with libqasm's types and overloads."""
        if isinstance(tree, Token):
            raise CqasmError(f"unexpected {tree!s}", line)
        kind, children = tree.data, tree.children
        if kind == "int":
            return arithmetic.literal(str(children[0]), line)
        if kind == "float":
            value = float(str(children[0]))
            if math.isinf(value):
                raise CqasmError(
                    f"the number {children[0]!s} is out of the range of a double",
                    line,
                    rule="arithmetic",
                )
            return value
        if kind == "name":
            return self.resolve(str(children[0]), line)
        if kind == "indexed":
            return self.indexed(children, line)
        if kind == "call":
            return self.call(children, line)
        if kind == "neg":
            operand = self.evaluate(children[0], line)
            if _type_of(operand) == "i":
                assert isinstance(operand, int)
                return arithmetic.int_negate(operand, line)
            if _type_of(operand) == "r":
                assert isinstance(operand, float)
                return -operand
            raise CqasmError(f"cannot negate {_describe(operand)}", line, rule="signature")
        left, right = (self.evaluate(c, line) for c in children)
        return self.binary(kind, left, right, line)

    def binary(self, kind: str, left: _Value, right: _Value, line: int) -> _Value:
        symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}.get(kind)
        symbol = symbol or {"intdiv": "//", "mod": "%"}[kind]
        types = (_type_of(left), _type_of(right))
        if types == ("i", "i") and kind not in ("div", "pow"):
            assert isinstance(left, int) and isinstance(right, int)
            return arithmetic.int_binary("mod" if kind == "mod" else symbol, left, right, line)
        if kind not in ("intdiv", "mod") and all(t in ("i", "r") for t in types):
            assert isinstance(left, int | float) and isinstance(right, int | float)
            return arithmetic.float_binary(symbol, float(left), float(right))
        operands = f"{_describe(left)} {symbol} {_describe(right)}"
        wanted = "integers" if kind in ("intdiv", "mod") else "numbers"
        raise CqasmError(f"{symbol} takes {wanted}, got {operands}", line, rule="signature")

    def call(self, children: Sequence[Tree[Token] | Token | None], line: int) -> _Value:
        name = str(children[0]).lower()
        if name not in arithmetic.FLOAT_FUNCTIONS:
            raise CqasmError(f"unknown function {children[0]!s}", line, rule="signature")
        args = [self.evaluate(c, line) for c in children[1:] if c is not None]
        if len(args) == 1:
            (arg,) = args
            if name == "abs" and _type_of(arg) == "i":
                assert isinstance(arg, int)
                return arithmetic.int_abs(arg, line)
            if _type_of(arg) in ("i", "r"):
                assert isinstance(arg, int | float)
                return arithmetic.float_function(name, float(arg))
        _signature_error(name, ("r",), args, line)

    def resolve(self, name: str, line: int) -> _Value:
        lower = name.lower()
        if lower in self.aliases:
            return self.aliases[lower]
        if lower in ("q", "b"):
            return _Refs(lower, tuple(range(self.num_qubits)))
        if lower in _CONSTANTS:
            return _CONSTANTS[lower]
        if lower in ("x", "y", "z", "im"):
            raise CqasmError(f"{name} (an axis or complex number) is not supported here", line)
        raise CqasmError(f"failed to resolve {name}", line)

    def indexed(self, children: Sequence[Tree[Token] | Token | None], line: int) -> _Refs:
        base = self.resolve(str(children[0]), line)
        if not isinstance(base, _Refs):
            raise CqasmError(f"{children[0]!s} is not a register to index", line, rule="operands")
        size, register = len(base.indices), base.register
        selected: list[int] = []
        seen: set[int] = set()
        for index in children[1:]:
            assert isinstance(index, Tree)
            first_tree, last_tree = index.children
            assert first_tree is not None
            first = self.index(first_tree, size, line)
            last = first if last_tree is None else self.index(last_tree, size, line)
            if first > last:
                raise CqasmError(f"last index is lower than first index ({first}:{last})", line)
            # At most `size` steps each: both ends were checked against the register first.
            for position in range(first, last + 1):
                target = base.indices[position]
                if target in seen:
                    if register == "q":
                        raise CqasmError(
                            f"qubit with index {target} is used more than once",
                            line,
                            rule="operands",
                        )
                    continue  # A repeated condition bit changes nothing (bits are ANDed).
                seen.add(target)
                selected.append(target)
        return _Refs(register, tuple(selected))

    def index(self, tree: Tree[Token] | Token, size: int, line: int) -> int:
        value = self.evaluate(tree, line)
        if _type_of(value) != "i":
            raise CqasmError(f"expected an integer index, got {_describe(value)}", line)
        assert isinstance(value, int)
        if not 0 <= value < size:
            raise CqasmError(f"index {value} out of range (size {size})", line)
        return value

    def integer(self, tree: Tree[Token] | Token, what: str, line: int) -> int:
        value = self.evaluate(tree, line)
        if _type_of(value) != "i":
            raise CqasmError(f"{what} must be an integer, got {_describe(value)}", line)
        assert isinstance(value, int)
        return value

    # Statements --------------------------------------------------------------------------

    def declare_qubits(self, tree: Tree[Token], line: int) -> None:
        arguments = [a for a in tree.children[2:] if a is not None]
        if len(arguments) != 1:
            raise CqasmError("expected `qubits N`", line, rule="signature")
        count = self.integer(arguments[0], "the number of qubits", line)
        if count < 1:
            raise CqasmError(f"invalid number of qubits: {count}", line, rule="qubits")
        check_register("qubits", count, self.limits.max_qubits, line)
        self.num_qubits, self.declaration_line = count, line

    def subcircuit(self, tree: Tree[Token], line: int) -> None:
        name, count = tree.children
        repetitions = 1
        if count is not None:
            repetitions = self.integer(count, "a subcircuit's iteration count", line)
            if repetitions < 1:
                raise CqasmError(
                    f"subcircuit iteration count must be positive, but is {repetitions}",
                    line,
                    rule="iterations",
                )
        self.blocks.append(_Block(f".{name!s}", repetitions, line))

    def mapping(self, tree: Tree[Token], line: int) -> None:
        _, first, second = tree.children
        target, alias = (first, second) if isinstance(second, Token) else (second, first)
        assert target is not None and isinstance(alias, Token)
        # As in libqasm, an alias may shadow anything (`q`, `pi`, an instruction's name).
        self.aliases[str(alias).lower()] = self.evaluate(target, line)

    def statement(self, tree: Tree[Token], line: int, bundled: int) -> None:
        """Read one instruction (one of `bundled` in its bundle)."""
        condition_tree: Tree[Token] | Token | None
        if tree.data == "cond_instruction":
            _, condition_tree, name_token, *rest = tree.children
        else:
            condition_token, name_token, *rest = tree.children
            condition_tree = None
            if condition_token is not None:
                if not rest or rest[0] is None:
                    raise CqasmError(f"c-{name_token!s} needs a condition", line, rule="signature")
                condition_tree, rest = rest[0], rest[1:]
        trees = [a for a in rest if a is not None]
        name = str(name_token).lower()
        if name == "error_model" and condition_tree is None:
            self.error_model(trees, line, bundled)
            return
        if name in ("qubits", "version"):
            raise CqasmError(f"{name_token!s} may appear only once, at the top", line)
        instruction = V1_INSTRUCTIONS.get(name)
        if instruction is None:
            raise CqasmError(f"unknown instruction {name_token!s}", line)
        if instruction.action == "unsupported":
            raise CqasmError(f"{name_token!s} is not supported", line, rule="unsupported")
        args = [self.evaluate(a, line) for a in trees]
        overload = next(
            (
                o
                for o in instruction.overloads
                if len(o) == len(args) and all(_matches(a, k) for a, k in zip(args, o, strict=True))
            ),
            None,
        )
        if overload is None:
            _signature_error(str(name_token), instruction.overloads, args, line)
        if bundled > 1 and not instruction.parallel:
            raise CqasmError(
                f"{name_token!s} is not parallelizable, but is bundled with {bundled - 1} other "
                f"instruction{'s' if bundled > 2 else ''}",
                line,
                rule="bundle",
            )
        condition = self.condition(str(name_token), instruction, condition_tree, line)
        if condition is None:
            return  # A constant false condition: libqasm drops the instruction.
        self.check_operands(args, line)
        self.lines.append(line)
        self.emit(name, instruction, args, condition, line, len(self.lines) - 1)

    def condition(
        self, name: str, instruction: V1Instruction, tree: Tree[Token] | Token | None, line: int
    ) -> tuple[int, ...] | None:
        """The condition bits (empty: unconditional; None: never runs)."""
        if tree is None:
            return ()
        if not instruction.conditional:
            raise CqasmError(
                f"conditional execution is not supported for {name}", line, rule="conditional"
            )
        value = self.evaluate(tree, line)
        if isinstance(value, bool):
            return () if value else None
        if isinstance(value, _Refs) and value.register == "b":
            return value.indices
        raise CqasmError(
            f"the condition must be bits or a boolean, got {_describe(value)}",
            line,
            rule="conditional",
        )

    @staticmethod
    def check_operands(args: list[_Value], line: int) -> None:
        """libqasm's instruction checks: no qubit twice, all operands of one length."""
        used: set[int] = set()
        width = -1
        for arg in args:
            if not isinstance(arg, _Refs):
                continue
            if arg.register == "q":
                for q in arg.indices:
                    if q in used:
                        raise CqasmError(
                            f"qubit with index {q} is used more than once", line, rule="operands"
                        )
                    used.add(q)
            if width >= 0 and len(arg.indices) != width:
                raise CqasmError(
                    f"the number of indices ({len(arg.indices)}) doesn't match previously found "
                    f"number of indices ({width})",
                    line,
                    rule="operands",
                )
            width = len(arg.indices)

    def emit(
        self,
        name: str,
        instruction: V1Instruction,
        args: list[_Value],
        condition: tuple[int, ...],
        line: int,
        statement: int,
    ) -> None:
        action = instruction.action
        if action == "ignore":
            return
        block = self.blocks[-1]
        refs = [a.indices for a in args if isinstance(a, _Refs)]
        cost = self.num_qubits if action == "measure_all" else len(refs[0])
        if block.repetitions > 1:
            self.budget.spend(cost, block.line, repeats=block.repetitions, subcircuit=block.name)
        else:
            self.budget.spend(cost, line)
        out = block.operations
        if action == "gate":
            gate = CQASM1_GATES[name]
            params = tuple(float(a) for a in args if not isinstance(a, _Refs))
            for value in params:
                if not math.isfinite(value):
                    raise CqasmError(
                        f"a parameter of {name} is {value}: every parameter must be a finite "
                        "number",
                        line,
                        rule="parameters",
                    )
            for qubits in zip(*refs, strict=True):
                out.append(Operation(gate.name, qubits, statement, params, condition=condition))
        elif action == "measure":
            measured = refs[0]
            axis = _AXES[name.partition("_")[2]]
            out.append(Operation("measure", measured, statement, bits=measured, axis=axis))
        elif action == "measure_all":
            everything = tuple(range(self.num_qubits))
            out.append(Operation("measure", everything, statement, bits=everything))
        elif action == "prep":
            axis = _AXES[name.partition("_")[2]]
            out.extend(Operation("init", (q,), statement, axis=axis) for q in refs[0])
        else:  # barrier, wait
            params = tuple(float(a) for a in args if not isinstance(a, _Refs))
            out.append(Operation(action, refs[0], statement, params))

    def error_model(self, trees: list[Tree[Token] | Token], line: int, bundled: int) -> None:
        if bundled > 1:
            raise CqasmError("error_model must be a statement of its own", line, rule="bundle")
        if not trees or not (isinstance(trees[0], Tree) and trees[0].data == "name"):
            raise CqasmError(
                "the first argument of an error model must be its name", line, rule="signature"
            )
        model = str(trees[0].children[0]).lower()
        if model not in _ERROR_MODELS:
            raise CqasmError(f"unknown error model {model}", line, rule="signature")
        args = [self.evaluate(a, line) for a in trees[1:]]
        if len(args) > _ERROR_MODELS[model] or not all(_matches(a, "r") for a in args):
            _signature_error(model, ("r" * min(len(args), 50),), args, line)

    def read(self, root: Tree[Token]) -> list[Operation]:
        statements = [child for child in root.children if isinstance(child, Tree)]
        if not statements or not _is(statements[0], "version"):
            raise CqasmError("the circuit must start with `version 1.0`", 1)
        for tree in statements[1:]:
            line = _line(tree)
            if _is(tree, "qubits"):
                if self.num_qubits >= 0:
                    raise CqasmError("qubits may be declared only once", line)
                self.declare_qubits(tree, line)
            elif self.num_qubits < 0:
                raise CqasmError("`qubits N` must come before the first instruction", line)
            elif tree.data == "subcircuit":
                self.subcircuit(tree, line)
            elif tree.data == "mapping":
                self.mapping(tree, line)
            elif tree.data == "bundle":
                items = [child for child in tree.children if isinstance(child, Tree)]
                for item in items:
                    self.statement(item, _line(item), len(items))
            else:
                self.statement(tree, line, 1)
        if self.num_qubits < 0:
            raise CqasmError("the circuit declares no qubits (`qubits N`)", 1, rule="qubits")
        # The budget has counted every repetition already, so this stays within its limit.
        return [op for block in self.blocks for op in block.operations * block.repetitions]


def _is(tree: Tree[Token], keyword: str) -> bool:
    condition, name, *_ = tree.children if tree.data == "instruction" else (1, None)
    return condition is None and str(name).lower() == keyword


_OPENING = re.compile(r"[ \t]*(?:c-)?([A-Za-z_][A-Za-z0-9_]*)")
_PARTS = re.compile(r"[;|{}]")
_PRODUCING = frozenset(
    name
    for name, instruction in V1_INSTRUCTIONS.items()
    if instruction.action not in ("ignore", "unsupported")
)


def _check_instruction_count(stripped: str, limits: Limits) -> None:
    """Each gate, measurement, preparation, barrier and wait is at least one operation: a
    circuit with more of them than operations allowed is refused before the (slow) grammar
    reads any of it."""
    budget = Budget(limits)
    for number, line in enumerate(stripped.split("\n"), start=1):
        for part in _PARTS.split(line):
            opening = _OPENING.match(part)
            if opening and opening.group(1).lower() in _PRODUCING:
                budget.spend(1, number)


@cache
def _parser() -> Lark:
    return Lark(GRAMMAR, parser="lalr", propagate_positions=False, maybe_placeholders=True)


def parse_v1(text: str, limits: Limits = DEFAULT_LIMITS) -> Circuit:
    """Parse a cQASM 1.0 circuit; raises CqasmError with the rule it breaks and its line.

    Every bound in `limits` is checked before the work it bounds is done.
    """
    stripped = strip_comments(text, 1)
    check_nesting(stripped, 1, limits.max_nesting)
    _check_instruction_count(stripped, limits)
    try:
        tree = _parser().parse(text)
    except UnexpectedCharacters as exc:
        raise CqasmError(f"unexpected character {exc.char!r}", exc.line) from None
    except UnexpectedToken as exc:
        found = "end of input" if exc.token.type == "$END" else repr(str(exc.token))
        raise CqasmError(f"unexpected {found}", exc.line) from None
    except UnexpectedInput as exc:
        raise CqasmError("cannot read the circuit", exc.line) from None
    reader = _Reader(limits)
    operations = reader.read(tree)
    lines, declaration = reader.lines, reader.declaration_line
    return Circuit(
        "1.0", reader.num_qubits, reader.num_qubits, operations, lambda: (lines, declaration)
    )
