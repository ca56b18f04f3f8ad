"""Constant arithmetic as libqasm does it natively: 64-bit integers and IEEE doubles.

libqasm evaluates constant expressions in C++ (`int64_t`, `double`): an integer division or
remainder by zero (or of INT64_MIN by -1) kills the process with SIGFPE, and an integer
overflow or an out-of-range shift is undefined behaviour. Both dialects use these functions:
cQASM 1.0 for its own evaluation, cQASM 3.0 to find such an expression before libqasm sees it.
Each fault raises `CqasmError` with rule `arithmetic`; floating-point operations follow C
(`1.0/0.0` is inf, `0.0/0.0` is nan) and never raise, so a non-finite angle is refused where
it is used (rule `parameters`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import CqasmError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1


def _fault(message: str, line: int) -> CqasmError:
    return CqasmError(message, line, rule="arithmetic")


def checked(value: int, what: str, line: int) -> int:
    """`value` if it fits in 64 bits; raises CqasmError (rule `arithmetic`) naming `what`."""
    if INT_MIN <= value <= INT_MAX:
        return value
    raise _fault(f"integer overflow: {what} does not fit in 64 bits", line)


def literal(text: str, line: int) -> int:
    """An integer literal; more than 64 bits is refused, as libqasm refuses it."""
    if len(text.lstrip("0")) > 19:  # Skip converting a huge literal at all.
        raise _fault(f"the integer literal {text[:30]}... does not fit in 64 bits", line)
    return checked(int(text), f"the integer literal {text}", line)


def _divisor(a: int, b: int, symbol: str, line: int) -> None:
    if b == 0:
        word = "division" if symbol in ("/", "//") else "remainder"
        raise _fault(f"integer {word} by zero: {a} {symbol} 0", line)
    if a == INT_MIN and b == -1:
        raise _fault(f"integer overflow: {a} {symbol} -1 does not fit in 64 bits", line)


def _truncated_division(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def int_binary(symbol: str, a: int, b: int, line: int) -> int:
    """`a symbol b` on 64-bit integers, as C++ computes it where C++ defines it.

    `/` and `%` truncate towards zero (cQASM 3.0); `//` and `mod` floor (cQASM 1.0's `//` and
    `%`). Raises CqasmError (rule `arithmetic`) for a division by zero, an overflow, or a shift
    by less than 0 or more than 63 bits.
    """
    what = f"{a} {symbol} {b}"
    if symbol == "+":
        return checked(a + b, what, line)
    if symbol == "-":
        return checked(a - b, what, line)
    if symbol == "*":
        return checked(a * b, what, line)
    if symbol in ("/", "%", "//", "mod"):
        _divisor(a, b, "%" if symbol == "mod" else symbol, line)
        if symbol == "/":
            return _truncated_division(a, b)
        if symbol == "%":
            return a - _truncated_division(a, b) * b
        return a // b if symbol == "//" else a % b
    if symbol in ("<<", ">>", ">>>"):
        if not 0 <= b <= 63:
            raise _fault(f"shift by {b} bits: {what} (a shift takes 0 to 63 bits)", line)
        if symbol == "<<":
            return checked(a << b, what, line)
        if symbol == ">>":
            return a >> b
        return (a % 2**64) >> b
    if symbol == "&":
        return a & b
    if symbol == "|":
        return a | b
    if symbol == "^":
        return a ^ b
    raise ValueError(f"no integer operator {symbol}")


def int_negate(a: int, line: int) -> int:
    """-a on 64-bit integers (raises CqasmError for -INT64_MIN)."""
    return checked(-a, f"-({a})", line)


def int_abs(a: int, line: int) -> int:
    """abs(a) on 64-bit integers (raises CqasmError for abs(INT64_MIN))."""
    return checked(abs(a), f"abs({a})", line)


_FLOAT_BINARY: dict[str, Callable[[np.float64, np.float64], np.float64]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "**": np.power,
}

FLOAT_FUNCTIONS: dict[str, Callable[[np.float64], np.float64]] = {
    "sqrt": np.sqrt,
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "abs": np.abs,
}
"""The real functions both dialects define (as C's <cmath> computes them)."""


def float_binary(symbol: str, a: float, b: float) -> float:
    """`a symbol b` on doubles, as C computes it (inf and nan instead of exceptions)."""
    with np.errstate(all="ignore"):
        return float(_FLOAT_BINARY[symbol](np.float64(a), np.float64(b)))


def float_function(name: str, x: float) -> float:
    """The real function `name` (a key of FLOAT_FUNCTIONS) of `x`, as C computes it."""
    with np.errstate(all="ignore"):
        return float(FLOAT_FUNCTIONS[name](np.float64(x)))
