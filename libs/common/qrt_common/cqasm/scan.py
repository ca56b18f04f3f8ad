"""A first look at a circuit's text, before any parser (Python's or libqasm's) reads it.

Comments are blanked (same length, newlines kept, so lines and columns stay where they were)
and every statement's operators, parentheses, brackets and gate modifiers are counted: an
expression can nest no deeper than that count, so the `nesting` limit keeps every recursive
parser (libqasm's C++ one runs out of stack at a few thousand levels and kills the process)
within its stack.
"""

from __future__ import annotations

import re

from ..errors import CqasmError

_V1_COMMENTS = re.compile(r"#[^\n]*")
# libqasm's cQASM 3 lexer: `//` and `/* */` comments, and `asm(...)` bodies in ''' quotes.
_V3_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/|'''.*?'''", re.S)
_NESTING = re.compile(
    r"\*\*|<<|>>>?|<=|>=|==|!=|&&|\|\||\^\^|[-+*/%<>&|^~!?(\[]|\b(?:inv|pow|ctrl)\b"
)
# cQASM 1.0 separates statements by newlines and `;`, and bundled instructions by `|`.
_V1_STATEMENTS = re.compile(r"[;|{}]")
_V3_STATEMENTS = re.compile(r";")


def _blank(match: re.Match[str]) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def strip_comments(text: str, version: int) -> str:
    """`text` with its comments (and cQASM 3 asm bodies) replaced by spaces."""
    pattern = _V1_COMMENTS if version == 1 else _V3_COMMENTS
    return pattern.sub(_blank, text)


def check_nesting(stripped: str, version: int, limit: int) -> None:
    """Raise CqasmError (rule `nesting`) for the first statement of `stripped` (comments
    already blanked) with more than `limit` operators, parentheses, brackets or modifiers."""
    separators = _V1_STATEMENTS if version == 1 else _V3_STATEMENTS
    for number, line in enumerate(stripped.split("\n"), start=1):
        if len(line) <= limit:  # Too short to hold more than `limit` of them.
            continue
        for statement in separators.split(line):
            count = len(_NESTING.findall(statement))
            if count > limit:
                raise CqasmError(
                    f"a statement holds {count} operators, parentheses, brackets or gate "
                    f"modifiers; at most {limit} are read",
                    number,
                    rule="nesting",
                )
